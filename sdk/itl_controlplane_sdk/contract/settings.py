"""The worker process's environment contract.

This model is the single source of truth for the variables a worker reads. The operator's
Deployment builder asks it for variable names (``WorkerSettings.env_name(...)``) instead of
spelling them out, so the two sides cannot drift apart.
"""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from itl_controlplane_sdk.contract.replication import QueueType
from itl_controlplane_sdk.contract.tls import BrokerTlsSettings
from itl_controlplane_sdk.contract.topology import DEFAULT_JOB_QUEUE
from itl_controlplane_sdk.envsettings import CommaList, EnvSettings

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@localhost/"

DEFAULT_MAX_JOB_BYTES = 1024 * 1024
"""Largest job message body a worker decodes (1 MiB): a ResourceRequest is a few kB, and a
bigger body is far more likely a mistake than a job."""

ResultsProtocol = Literal["auto", "amqp", "stream"]
RESULTS_PROTOCOLS: tuple[ResultsProtocol, ...] = ("auto", "amqp", "stream")
STREAM_PORT_OFFSET = 120
"""Without ``RESULTS_STREAM_PORT``, a node's stream port is its AMQP port minus this: RabbitMQ's
defaults pair 5672 with 5552 and 5671 (TLS) with 5551, and the project's local brokers
(``tools/rabbitmq``) follow the same rule for every node, so the nodes of a cluster on one host
get ports of their own with no setting."""
RESULTS_PROTOCOL_DESCRIPTION = (
    "auto: over RabbitMQ's stream protocol when the broker's stream port answers as the same "
    "cluster (the rabbitmq_stream plugin), else over AMQP 0.9.1; chosen once at connect and "
    "logged. stream: always over the stream protocol (connecting fails without it). amqp: "
    "always over AMQP 0.9.1, like the jobs. The same results stream and guarantees either "
    "way, with less broker work per job over the stream protocol; processes of one broker "
    "may differ."
)
RESULTS_STREAM_PORT_DESCRIPTION = (
    "Stream protocol port of every broker node in RABBITMQ_URL. Unset: each node's AMQP port "
    "minus 120 (5552 for 5672, 5551 for amqps on 5671: RabbitMQ's defaults). The same host, "
    "user and vhost as the URL, TLS for amqps:// URLs (as RABBITMQ_TLS_*)."
)


class BrokerClientSettings(BaseModel):
    """What workers and API servers alike set about their use of the broker: the queue type
    every process of one broker must agree on, and how this process writes and reads the
    results stream."""

    queue_type: QueueType = Field(
        default="classic",
        validation_alias="QUEUE_TYPE",
        description=(
            "classic: single-node queues with priorities (one broker). replicated: quorum "
            "queues in priority bands and replicated streams (a RabbitMQ cluster). Every "
            "process on one broker must use the same type."
        ),
    )
    results_protocol: ResultsProtocol = Field(
        default="auto",
        validation_alias="RESULTS_PROTOCOL",
        description=RESULTS_PROTOCOL_DESCRIPTION,
    )
    results_stream_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        validation_alias="RESULTS_STREAM_PORT",
        description=RESULTS_STREAM_PORT_DESCRIPTION,
    )


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["plain", "json"]


def _generated_worker_id() -> str:
    return f"worker-{secrets.token_hex(4)}"


class WorkerSettings(BrokerClientSettings, BrokerTlsSettings, EnvSettings):
    """Configuration of one worker process, read from the environment."""

    worker_id: str = Field(
        default_factory=_generated_worker_id,
        validation_alias="WORKER_ID",
        description="Unique worker id; the pod name in Kubernetes. Auto-generated if unset.",
        min_length=1,
    )
    rabbitmq_url: SecretStr = Field(
        default=SecretStr(DEFAULT_RABBITMQ_URL),
        validation_alias="RABBITMQ_URL",
        description=(
            "AMQP URL of the broker, or the URLs of a cluster's nodes comma-separated "
            "(tried in order, failed over between). Secret: it usually carries a password."
        ),
    )
    log_level: LogLevel = Field(
        default="INFO", validation_alias="LOG_LEVEL", description="Log level of the process."
    )
    log_format: LogFormat = Field(
        default="plain",
        validation_alias="LOG_FORMAT",
        description="plain lines, or json: one object per line with job_id, trace_id, worker_id.",
    )
    health_check_host: str = Field(
        default="0.0.0.0",
        validation_alias="HEALTH_CHECK_HOST",
        description="Address the health server binds; 0.0.0.0 so kubelet probes reach it.",
    )
    health_check_port: int = Field(
        default=8001,
        ge=0,
        le=65535,
        validation_alias="HEALTH_CHECK_PORT",
        description="Port of /health, /status and /metrics (0 picks a free port).",
    )
    max_concurrent_jobs: int = Field(
        default=10,
        ge=1,
        le=1000,
        validation_alias="MAX_CONCURRENT_JOBS",
        description="Jobs one worker runs at once; also the AMQP prefetch.",
    )
    job_timeout: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        validation_alias="JOB_TIMEOUT",
        description="Seconds a job may run before it fails with a timeout error.",
    )
    pool_name: str = Field(
        default="default",
        validation_alias="WORKER_POOL",
        description="Name of the WorkerPool this worker belongs to (reported in heartbeats).",
    )
    job_queue: str = Field(
        default=DEFAULT_JOB_QUEUE,
        validation_alias="JOB_QUEUE",
        description="Queue this worker consumes.",
    )
    job_bindings: CommaList = Field(
        default_factory=list,
        validation_alias="JOB_BINDINGS",
        description=(
            "Routing-key patterns bound to a dedicated queue, e.g. provider.ITL.Compute.#. "
            "Empty for the default queue, which receives every job no other queue claims."
        ),
    )
    providers: CommaList = Field(
        default_factory=list,
        validation_alias="WORKER_PROVIDERS",
        description=(
            "module:factory entries whose factory(registry) registers providers. "
            "Empty means: load the 'itl_controlplane_sdk.providers' entry points."
        ),
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        validation_alias="JOB_MAX_ATTEMPTS",
        description="Attempts for a retryably failing job before it is dead-lettered.",
    )
    retry_base_delay: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        validation_alias="JOB_RETRY_BASE_DELAY",
        description="Delay before the first retry; each further retry doubles it.",
    )
    heartbeat_interval: float = Field(
        default=2.0,
        gt=0,
        le=300,
        validation_alias="HEARTBEAT_INTERVAL",
        description="Seconds between heartbeats to the operator.",
    )
    drain_timeout: float | None = Field(
        default=None,
        gt=0,
        validation_alias="DRAIN_TIMEOUT",
        description="Seconds SIGTERM waits for in-flight jobs; defaults to JOB_TIMEOUT.",
    )
    max_job_bytes: int = Field(
        default=DEFAULT_MAX_JOB_BYTES,
        ge=1024,
        validation_alias="MAX_JOB_BYTES",
        description="Largest job message body accepted; bigger ones are dead-lettered.",
    )
    result_retention: float = Field(
        default=3600.0,
        gt=0,
        validation_alias="RESULT_RETENTION_SECONDS",
        description="How long results stay readable by get_result from any process.",
    )

    @property
    def effective_drain_timeout(self) -> float:
        return self.drain_timeout if self.drain_timeout is not None else self.job_timeout
