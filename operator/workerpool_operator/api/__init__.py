"""The WorkerPool API (``controlplane.itlusions.com/v1alpha1``) as pydantic models.

These models are the single source of truth for the custom resource: ``crd.py`` turns them
into the CRD's OpenAPI schema (descriptions become ``kubectl explain`` text, ``ge``/``le``
become bounds, ``x-kubernetes-validations`` carry the CEL rules), ``builders/`` read them to
render the children, and ``docs/workerpool.md`` lists their fields. ``base`` holds the group,
version and kind; ``spec`` what a pool asks for; ``status`` what was observed; ``pool`` the
resource and what follows from it (its queue, its replicas).

Pure package: no kopf, no Kubernetes client, no broker client.
"""

from workerpool_operator.api.base import (
    API_VERSION,
    CRD_NAME,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    Model,
    rules,
)
from workerpool_operator.api.pool import (
    ObjectMeta,
    WorkerPool,
    desired_replicas,
    effective_queue,
    job_bindings,
    parse_pool,
    pool_identity,
    target_jobs_per_replica,
)
from workerpool_operator.api.spec import (
    MANAGED_ENV_FIELDS,
    MANAGED_ENV_NAMES,
    RESERVED_POD_LABELS,
    Autoscaling,
    EnvVar,
    Fallback,
    FreeForm,
    LocalObjectReference,
    ProviderName,
    Quantity,
    RabbitMQ,
    RatePolicy,
    ResourceRequirements,
    ScaleDownRules,
    ScaleUpRules,
    SecretKeyRef,
    WorkerPoolSpec,
)
from workerpool_operator.api.status import (
    MAX_DECISIONS,
    Condition,
    QueueStatus,
    ScalingDecision,
    WorkerPoolStatus,
    parse_status,
)

__all__ = [
    "API_VERSION",
    "CRD_NAME",
    "GROUP",
    "KIND",
    "MANAGED_ENV_FIELDS",
    "MANAGED_ENV_NAMES",
    "MAX_DECISIONS",
    "PLURAL",
    "RESERVED_POD_LABELS",
    "SHORT_NAMES",
    "SINGULAR",
    "VERSION",
    "Autoscaling",
    "Condition",
    "EnvVar",
    "Fallback",
    "FreeForm",
    "LocalObjectReference",
    "Model",
    "ObjectMeta",
    "ProviderName",
    "Quantity",
    "QueueStatus",
    "RabbitMQ",
    "RatePolicy",
    "ResourceRequirements",
    "ScaleDownRules",
    "ScaleUpRules",
    "ScalingDecision",
    "SecretKeyRef",
    "WorkerPool",
    "WorkerPoolSpec",
    "WorkerPoolStatus",
    "desired_replicas",
    "effective_queue",
    "job_bindings",
    "parse_pool",
    "parse_status",
    "pool_identity",
    "rules",
    "target_jobs_per_replica",
]
