"""The API server's environment contract.

``OFFLOADING_ENABLED``, ``RABBITMQ_URL`` and ``JOB_TIMEOUT`` are the names the API reference
gives the API server; the rest are ours. Like ``WorkerSettings``, this model is the single
source of truth for the variables (a Helm chart or manifest builder asks ``env_name``).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from itl_controlplane_sdk.contract.settings import DEFAULT_RABBITMQ_URL, LogLevel
from itl_controlplane_sdk.contract.topology import DEFAULT_JOB_QUEUE
from itl_controlplane_sdk.envsettings import CommaList, EnvSettings


class ApiSettings(EnvSettings):
    """Configuration of one API server process, read from the environment."""

    offloading_enabled: bool = Field(
        default=False,
        validation_alias="OFFLOADING_ENABLED",
        description=(
            "true: operations become jobs for the worker fleet (202 + operation status). "
            "false: providers run inside the API process (200/201)."
        ),
    )
    rabbitmq_url: SecretStr = Field(
        default=SecretStr(DEFAULT_RABBITMQ_URL),
        validation_alias="RABBITMQ_URL",
        description="AMQP URL of the broker (offloading only). Secret: it carries a password.",
    )
    job_timeout: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        validation_alias="JOB_TIMEOUT",
        description=(
            "Seconds a job may wait for a worker before it fails as timed out; also the "
            "longest a ?wait=true request blocks."
        ),
    )
    host: str = Field(
        default="127.0.0.1",
        validation_alias="API_HOST",
        description=(
            "Address the HTTP server binds: loopback unless asked (0.0.0.0 in a pod, so a "
            "Service reaches it)."
        ),
    )
    port: int = Field(
        default=8000, ge=0, le=65535, validation_alias="API_PORT", description="HTTP port."
    )
    log_level: LogLevel = Field(
        default="INFO", validation_alias="LOG_LEVEL", description="Log level of the process."
    )
    admin_token: SecretStr | None = Field(
        default=None,
        validation_alias="ADMIN_TOKEN",
        description="Bearer token of the /admin endpoints; unset disables them.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        validation_alias="API_MAX_BODY_BYTES",
        description="Larger request bodies are refused with 413 before they are parsed.",
    )
    retry_after: int = Field(
        default=5,
        ge=1,
        le=3600,
        validation_alias="API_RETRY_AFTER",
        description="Retry-After seconds sent with 503 while the broker is unreachable.",
    )
    poll_interval: int = Field(
        default=1,
        ge=1,
        le=60,
        validation_alias="API_POLL_INTERVAL",
        description="Retry-After seconds sent with 202: how often clients should poll.",
    )
    providers: CommaList = Field(
        default_factory=list,
        validation_alias=AliasChoices("API_PROVIDERS", "WORKER_PROVIDERS"),
        description=(
            "module:factory entries, as for workers. In-process mode runs these providers; "
            "offloading mode uses them as the catalogue of known provider types (404 for "
            "others). Empty: the 'itl_controlplane_sdk.providers' entry points."
        ),
    )
    resource_group_provider: str = Field(
        default="ITL.Core/ResourceGroup",
        pattern=r"^[^/]+/[^/]+$",
        validation_alias="API_RESOURCE_GROUP_PROVIDER",
        description="Namespace/Type of the provider behind the /resourceGroups/{name} routes.",
    )
    job_queue: str = Field(
        default=DEFAULT_JOB_QUEUE,
        validation_alias="JOB_QUEUE",
        description="Queue the API declares at start, so jobs wait even before workers exist.",
    )
    job_bindings: CommaList = Field(
        default_factory=list,
        validation_alias="JOB_BINDINGS",
        description="Routing-key patterns of JOB_QUEUE (empty: the catch-all queue).",
    )
    result_retention: float = Field(
        default=3600.0,
        gt=0,
        validation_alias="RESULT_RETENTION_SECONDS",
        description="How long operation results stay readable from any replica.",
    )
