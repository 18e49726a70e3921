"""The API server's environment contract.

``OFFLOADING_ENABLED``, ``RABBITMQ_URL`` and ``JOB_TIMEOUT`` are the names the API reference
gives the API server; the rest are ours. Authentication is on by default (``AUTH_MODE=oidc``):
a control plane that acts for subscriptions must not start open by accident, so without an
issuer and audience the settings are refused; ``AUTH_MODE=none`` opts out explicitly. Like
``WorkerSettings``, this model is the single source of truth for the variables (a Helm chart
or manifest builder asks ``env_name``).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator

from itl_controlplane_sdk.contract.settings import (
    DEFAULT_RABBITMQ_URL,
    BrokerClientSettings,
    LogFormat,
    LogLevel,
)
from itl_controlplane_sdk.contract.tls import BrokerTlsSettings
from itl_controlplane_sdk.contract.topology import DEFAULT_JOB_QUEUE
from itl_controlplane_sdk.envsettings import CommaList, EnvSettings


class ApiSettings(BrokerClientSettings, BrokerTlsSettings, EnvSettings):
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
        description=(
            "AMQP URL of the broker (offloading only), or a cluster's node URLs "
            "comma-separated. Secret: it carries a password."
        ),
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
    log_format: LogFormat = Field(
        default="plain",
        validation_alias="LOG_FORMAT",
        description="plain lines, or json: one object per line (job_id and trace_id in jobs).",
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
    declare_topology: bool = Field(
        default=True,
        validation_alias="API_DECLARE_TOPOLOGY",
        description=(
            "Declare the exchanges, streams and JOB_QUEUE at start. false: rely on workers or "
            "an admin having declared them (a least-privilege submitter user cannot)."
        ),
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

    auth_mode: Literal["oidc", "none"] = Field(
        default="oidc",
        validation_alias="AUTH_MODE",
        description=(
            "oidc: every ARM and /operations route needs an OpenID Connect bearer token. "
            "none: no authentication (local development only; logged loudly at start-up)."
        ),
    )
    auth_issuer: str | None = Field(
        default=None,
        validation_alias="AUTH_ISSUER",
        description="Issuer URL the tokens' iss claim must equal; its discovery document "
        "(/.well-known/openid-configuration) names the JWKS unless AUTH_JWKS_URL is set.",
    )
    auth_audience: str | None = Field(
        default=None,
        validation_alias="AUTH_AUDIENCE",
        description="Audience the tokens' aud claim must contain (this API's client id or URI).",
    )
    auth_jwks_url: str | None = Field(
        default=None,
        validation_alias="AUTH_JWKS_URL",
        description="JWKS URL of the issuer's signing keys; unset: from the discovery document.",
    )
    auth_algorithms: CommaList = Field(
        default_factory=lambda: ["RS256", "ES256"],
        validation_alias="AUTH_ALGORITHMS",
        description="Accepted signature algorithms (asymmetric only: never HS* or none).",
    )
    auth_clock_skew: float = Field(
        default=60.0,
        ge=0,
        le=300,
        validation_alias="AUTH_CLOCK_SKEW_SECONDS",
        description="Leeway in seconds for exp, nbf and iat between this host and the issuer.",
    )
    auth_subscriptions_claim: str = Field(
        default="subscriptions",
        min_length=1,
        validation_alias="AUTH_SUBSCRIPTIONS_CLAIM",
        description=(
            "Claim listing what the caller may act on: subscription ids, or (with "
            "AUTH_CLAIM_MAP) role or group names. '*' grants every subscription."
        ),
    )
    auth_claim_map: dict[str, list[str]] = Field(
        default_factory=dict,
        validation_alias="AUTH_CLAIM_MAP",
        description=(
            'JSON object mapping claim values to subscription ids, e.g. {"team-a": '
            '["sub-1", "sub-2"], "platform-admins": ["*"]}. Empty: claim values are '
            "subscription ids. Values it does not name grant nothing."
        ),
    )
    auth_jwks_cache_seconds: float = Field(
        default=300.0,
        ge=10,
        validation_alias="AUTH_JWKS_CACHE_SECONDS",
        description="How long fetched signing keys are trusted before the JWKS is fetched again.",
    )
    auth_jwks_refetch_seconds: float = Field(
        default=30.0,
        ge=1,
        validation_alias="AUTH_JWKS_REFETCH_SECONDS",
        description=(
            "Least time between two JWKS fetches caused by an unknown key id (key rotation), "
            "so tokens with made-up key ids cannot make the API hammer the issuer."
        ),
    )
    auth_ca_bundle: str | None = Field(
        default=None,
        validation_alias="AUTH_CA_BUNDLE",
        description="CA bundle to verify the issuer's HTTPS certificate (default: system CAs).",
    )

    @model_validator(mode="after")
    def _auth_configured(self) -> Self:
        if self.auth_mode == "oidc":
            missing = [
                self.env_name(name)
                for name in ("auth_issuer", "auth_audience")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(
                    f"AUTH_MODE=oidc (the default) needs {' and '.join(missing)}; "
                    "set AUTH_MODE=none to run without authentication (development only)"
                )
        bad = [a for a in self.auth_algorithms if not a.startswith(("RS", "ES", "PS", "Ed"))]
        if bad:
            raise ValueError(f"AUTH_ALGORITHMS: only asymmetric algorithms, not {', '.join(bad)}")
        return self
