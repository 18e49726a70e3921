"""``spec``: what a WorkerPool asks for (broker, autoscaling, the worker pods).

Autoscaling defaults come from ``scaling.ScalingPolicy()``, the one set of defaults the
decision uses as well. Pure module.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, JsonValue, WithJsonSchema

from itl_controlplane_sdk.contract.replication import QueueType
from itl_controlplane_sdk.contract.settings import WorkerSettings
from itl_controlplane_sdk.contract.topology import DEFAULT_JOB_QUEUE
from workerpool_operator.api.base import GROUP, Model, rules
from workerpool_operator.scaling import (
    DEFAULT_SCALE_DOWN_POLICIES,
    DEFAULT_SCALE_UP_POLICIES,
    ScalingPolicy,
)

MANAGED_ENV_FIELDS = (
    "worker_id",
    "rabbitmq_url",
    "log_level",
    "health_check_port",
    "max_concurrent_jobs",
    "job_timeout",
    "pool_name",
    "job_queue",
    "job_bindings",
    "queue_type",
    "drain_timeout",
    "rabbitmq_tls_ca_file",
    "rabbitmq_tls_cert_file",
    "rabbitmq_tls_key_file",
)
"""WorkerSettings fields the operator sets (TLS files from ``spec.rabbitmq.tls``);
``spec.env`` may not override them."""

MANAGED_ENV_NAMES = tuple(WorkerSettings.env_name(field) for field in MANAGED_ENV_FIELDS)

RESERVED_POD_LABELS = ("app.kubernetes.io/name", f"{GROUP}/workerpool")
"""Pod labels the selector depends on; ``spec.podLabels`` may not set them."""

_FREE_FORM = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

FreeForm = Annotated[dict[str, Any], WithJsonSchema(_FREE_FORM)]
"""A Kubernetes object passed through untouched (affinity, a toleration, valueFrom)."""

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
            r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A resource quantity such as ``500m`` or ``1Gi``, with the API server's own pattern."""


class SecretKeyRef(Model):
    """A key in a Secret in the pool's namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        description="Name of the Secret, in the WorkerPool's namespace.",
    )
    key: str = Field(
        default="url",
        min_length=1,
        max_length=253,
        description="Key in the Secret whose value is the AMQP URL.",
    )


class BrokerTlsSecret(Model):
    """A Secret with the CA of an amqps:// broker and, optionally, a client certificate."""

    secret_name: str = Field(
        min_length=1,
        max_length=253,
        description="Secret in the WorkerPool's namespace, mounted read-only into the workers.",
    )
    ca_key: str = Field(
        default="ca.crt",
        min_length=1,
        max_length=253,
        description="Key of the PEM CA bundle that signed the broker's certificate.",
    )
    client_certificate: bool = Field(
        default=False,
        description="Also mount tls.crt and tls.key (a kubernetes.io/tls Secret's keys) as the "
        "client certificate, for brokers that require one.",
    )


class RabbitMQ(Model):
    """How the workers reach RabbitMQ. Only a Secret reference: the URL carries a password."""

    secret_ref: SecretKeyRef = Field(
        description=(
            "Secret key holding the broker URL (amqp://user:password@host:5672/vhost, or "
            "amqps:// for TLS), or the URLs of a RabbitMQ cluster's nodes comma-separated. "
            "Mounted into the workers as RABBITMQ_URL; the operator never copies its value."
        ),
    )
    queue_type: QueueType = Field(
        default="classic",
        description=(
            "classic: single-node queues with priorities. replicated: quorum queues in "
            "priority bands and replicated streams, for a RabbitMQ cluster (set on the "
            "workers as QUEUE_TYPE). Every pool and client of one broker must agree."
        ),
    )
    tls: BrokerTlsSecret | None = Field(
        default=None,
        description="CA (and client certificate) for amqps:// brokers with a private CA; the "
        "workers verify the broker's certificate either way.",
    )


class RatePolicy(Model):
    """One rate limit on replica changes, as in the HPA's behavior policies."""

    type: Literal["Pods", "Percent"] = Field(
        description="Pods: an absolute number of pods; Percent: a share of the current replicas.",
    )
    value: int = Field(ge=1, le=10000, description="Pods or percent allowed per period.")
    period_seconds: int = Field(
        ge=1, le=1800, description="Window the change is measured over, in seconds."
    )


_DEFAULTS = ScalingPolicy()
"""The decision's defaults, which the CRD's defaults repeat."""

_STABILIZATION_DOC = (
    "Recommendations over this many past seconds are considered: scale-up takes the lowest, "
    "scale-down the highest, so short spikes or dips do not move replicas."
)
_SELECT_POLICY_DOC = (
    "Max: the policy allowing the most change wins; Min: the least; "
    "Disabled: never scale in this direction."
)


def _default_up_policies() -> list[RatePolicy]:
    return [
        RatePolicy(type=p.type, value=p.value, period_seconds=p.period_seconds)
        for p in DEFAULT_SCALE_UP_POLICIES
    ]


def _default_down_policies() -> list[RatePolicy]:
    return [
        RatePolicy(type=p.type, value=p.value, period_seconds=p.period_seconds)
        for p in DEFAULT_SCALE_DOWN_POLICIES
    ]


def _dumped(policies: list[RatePolicy]) -> list[JsonValue]:
    return [policy.model_dump(mode="json") for policy in policies]


class ScaleUpRules(Model):
    """Stabilization and rate limits for scaling up (HPA defaults)."""

    stabilization_window_seconds: int = Field(
        default=_DEFAULTS.scale_up.stabilization_window_seconds,
        ge=0,
        le=3600,
        description=_STABILIZATION_DOC,
    )
    select_policy: Literal["Max", "Min", "Disabled"] = Field(
        default=_DEFAULTS.scale_up.select_policy, description=_SELECT_POLICY_DOC
    )
    policies: list[RatePolicy] = Field(
        default_factory=_default_up_policies,
        max_length=10,
        description="Rate limits (default: 100% or 4 pods per 15 s, whichever is more).",
        json_schema_extra={"default": _dumped(_default_up_policies())},
    )


class ScaleDownRules(Model):
    """Stabilization and rate limits for scaling down (HPA defaults)."""

    stabilization_window_seconds: int = Field(
        default=_DEFAULTS.scale_down.stabilization_window_seconds,
        ge=0,
        le=3600,
        description=_STABILIZATION_DOC,
    )
    select_policy: Literal["Max", "Min", "Disabled"] = Field(
        default=_DEFAULTS.scale_down.select_policy, description=_SELECT_POLICY_DOC
    )
    policies: list[RatePolicy] = Field(
        default_factory=_default_down_policies,
        max_length=10,
        description="Rate limits (default: 100% per 15 s).",
        json_schema_extra={"default": _dumped(_default_down_policies())},
    )


class Fallback(Model):
    """What to do when queue statistics cannot be read several times in a row."""

    failure_threshold: int = Field(
        default=_DEFAULTS.fallback_failure_threshold,
        ge=1,
        le=100,
        description="Consecutive failed polls before ScalingActive turns False and the "
        "fallback applies; fewer hold replicas without a status change.",
    )
    replicas: int | None = Field(
        default=_DEFAULTS.fallback_replicas,
        ge=0,
        le=1000,
        description="Replicas to scale up to (never down) after the threshold; "
        "unset means hold the current replicas.",
    )


class Autoscaling(Model):
    """Queue-depth autoscaling. Off by default: the pool then runs replicaCount replicas,
    which kubectl scale or an external HPA/KEDA may drive through the scale subresource."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                # has(): the CRD's own `default: {}` is validated before nested defaulting.
                "!has(self.minReplicas) || !has(self.maxReplicas) "
                "|| self.minReplicas <= self.maxReplicas",
                "spec.autoscaling.minReplicas must be less than or equal to maxReplicas",
            ),
        )
    )

    enabled: bool = Field(default=False, description="Turn the built-in autoscaler on.")
    min_replicas: int = Field(
        default=_DEFAULTS.min_replicas,
        ge=0,
        le=1000,
        description="Lowest replica count; 0 allows scale to zero.",
    )
    max_replicas: int = Field(
        default=_DEFAULTS.max_replicas, ge=1, le=1000, description="Highest replica count."
    )
    target_jobs_per_replica: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Ready plus in-flight jobs one replica should carry; "
        "defaults to maxConcurrentJobs.",
    )
    poll_interval_seconds: int = Field(
        default=2,
        ge=1,
        le=3600,
        description="Seconds between queue-depth polls (a burst is seen within one interval).",
    )
    activation_threshold: int = Field(
        default=_DEFAULTS.activation_threshold,
        ge=0,
        le=1000000,
        description="Scale up from zero only when more than this many jobs are waiting.",
    )
    cooldown_seconds: int = Field(
        default=_DEFAULTS.cooldown_seconds,
        ge=0,
        le=86400,
        description=(
            "Seconds with no job arriving before scaling to zero; a busy worker still stays"
            " until its jobs end."
        ),
    )
    tolerance: float = Field(
        default=_DEFAULTS.tolerance,
        ge=0,
        le=1,
        description="Relative change in load ignored to avoid flapping (0.1 = 10%).",
    )
    scale_up: ScaleUpRules = Field(
        default_factory=ScaleUpRules,
        description="Scale-up behaviour (HPA defaults: no window, 100% or 4 pods per 15 s).",
        json_schema_extra={"default": {}},
    )
    scale_down: ScaleDownRules = Field(
        default_factory=ScaleDownRules,
        description="Scale-down behaviour (HPA defaults: 300 s window, 100% per 15 s).",
        json_schema_extra={"default": {}},
    )
    fallback: Fallback = Field(
        default_factory=Fallback,
        description="Behaviour when queue statistics are missing.",
        json_schema_extra={"default": {}},
    )


# --- spec: pod-level settings -------------------------------------------------------------


class ResourceRequirements(Model):
    """Compute resources of the worker container (corev1 ResourceRequirements)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Minimum resources the scheduler reserves."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, description="Maximum resources the container may use."
    )


def _default_resources() -> ResourceRequirements:
    return ResourceRequirements(
        requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "512Mi"}
    )


class EnvVar(Model):
    """An extra environment variable for the worker container (corev1 EnvVar)."""

    name: str = Field(min_length=1, max_length=253, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: FreeForm | None = Field(
        default=None,
        description="Source for the value (secretKeyRef, configMapKeyRef, fieldRef, ...).",
    )


class LocalObjectReference(Model):
    """A reference to an object in the same namespace, by name."""

    name: str = Field(min_length=1, max_length=253, description="Name of the object.")


# --- spec ---------------------------------------------------------------------------------

_MANAGED_ENV_LIST = ", ".join(f"'{name}'" for name in MANAGED_ENV_NAMES)
_RESERVED_LABEL_RULE = " && ".join(f"!('{label}' in self)" for label in RESERVED_POD_LABELS)

ProviderName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]*(/[A-Za-z][A-Za-z0-9_.-]*)?$",
    ),
]


class WorkerPoolSpec(Model):
    """Desired state of a pool of SDK workers consuming jobs from RabbitMQ."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "!has(self.providers) || size(self.providers) == 0 || !has(self.queue) "
                f"|| self.queue != '{DEFAULT_JOB_QUEUE}'",
                f"spec.queue: a pool that serves a subset of providers needs its own queue, "
                f"not the default '{DEFAULT_JOB_QUEUE}'",
            ),
        )
    )

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Worker container image; defaults to the operator's default worker image.",
    )
    replica_count: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Replicas when autoscaling is off. Target of the scale subresource, so "
        "`kubectl scale wp` and an external HPA can set it.",
    )
    max_concurrent_jobs: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Jobs one worker runs at once (MAX_CONCURRENT_JOBS, also the prefetch).",
    )
    job_timeout: int = Field(
        default=300,
        ge=1,
        le=86400,
        description="Seconds a job may run (JOB_TIMEOUT). The pods' termination grace period "
        "is derived from it so a draining worker can finish its jobs.",
    )
    rabbitmq: RabbitMQ = Field(description="Broker connection (a Secret reference).")
    queue: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description=f"Queue the workers consume. Default: '{DEFAULT_JOB_QUEUE}', or a "
        "dedicated queue 'provider.jobs.<namespace>.<name>' when providers is set.",
        json_schema_extra=rules(
            ("!self.startsWith('amq.')", "spec.queue must not start with 'amq.' (reserved)")
        ),
    )
    providers: list[ProviderName] = Field(
        default_factory=list,
        max_length=100,
        description="Providers this pool serves, as 'Namespace/Type' or 'Namespace' "
        "(e.g. 'ITL.Compute/VirtualMachine'). Jobs for them are bound to the pool's queue. "
        "Empty: the pool serves every job no other pool claims.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Worker log level (LOG_LEVEL)."
    )
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling,
        description="Queue-depth autoscaling.",
        json_schema_extra={"default": {}},
    )
    resources: ResourceRequirements = Field(
        default_factory=_default_resources,
        description="Worker container resources.",
        json_schema_extra={"default": _default_resources().model_dump(mode="json")},
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=100,
        description="Extra environment variables. Variables the operator manages "
        f"({', '.join(MANAGED_ENV_NAMES)}) are rejected.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            **rules(
                (
                    f"self.all(e, !(e.name in [{_MANAGED_ENV_LIST}]))",
                    "spec.env must not set variables the operator manages",
                )
            ),
        },
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the worker pods must match."
    )
    tolerations: list[FreeForm] = Field(
        default_factory=list, max_length=50, description="Tolerations of the worker pods."
    )
    affinity: FreeForm | None = Field(default=None, description="Affinity of the worker pods.")
    service_account_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="ServiceAccount of the worker pods. Unset: the namespace default, "
        "with no API token mounted.",
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, max_length=20, description="Secrets for pulling the image."
    )
    priority_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, description="PriorityClass of the pods."
    )
    pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on the worker pods (the selector labels are reserved).",
        json_schema_extra=rules(
            (_RESERVED_LABEL_RULE, "spec.podLabels must not set the pool's selector labels")
        ),
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, description="Extra annotations on the worker pods."
    )
