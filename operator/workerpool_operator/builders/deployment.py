"""The worker Deployment: SDK worker pods wired to the pool's queue and broker Secret.

Environment variable names come from the worker's own settings model
(``WorkerSettings.env_name``), never from literals, so the operator and the worker cannot
disagree about the contract. The pod passes the ``restricted`` Pod Security Standard.
"""

from __future__ import annotations

from typing import Any

from itl_controlplane_sdk.contract.settings import WorkerSettings
from workerpool_operator import labels
from workerpool_operator.api import (
    WorkerPool,
    WorkerPoolSpec,
    desired_replicas,
    effective_queue,
    job_bindings,
    pool_identity,
)

DRAIN_MARGIN_SECONDS = 30
"""Grace on top of jobTimeout: time to stop consuming, requeue leftovers and close the
connection after the last job has hit its timeout."""

BROKER_TLS_VOLUME = "broker-tls"
BROKER_TLS_DIR = "/etc/itl/broker-tls"
"""Where ``spec.rabbitmq.tls`` is mounted (read-only) in worker pods."""

RUN_AS_ID = 10001
"""Non-root uid/gid the worker runs as (restricted PSS requires non-root)."""


def termination_grace_seconds(spec: WorkerPoolSpec) -> int:
    """Pod grace period: long enough for a draining worker to let its longest job finish."""
    return spec.job_timeout + DRAIN_MARGIN_SECONDS


def _env(name_of: str, value: str) -> dict[str, Any]:
    return {"name": WorkerSettings.env_name(name_of), "value": value}


def worker_env(pool: WorkerPool) -> list[dict[str, Any]]:
    """The worker container's environment: the managed contract, then the user's extras."""
    spec = pool.spec
    secret = spec.rabbitmq.secret_ref
    env: list[dict[str, Any]] = [
        {
            "name": WorkerSettings.env_name("worker_id"),
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        },
        {
            "name": WorkerSettings.env_name("rabbitmq_url"),
            "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}},
        },
        _env("pool_name", pool_identity(pool)),
        _env("job_queue", effective_queue(pool)),
        _env("queue_type", spec.rabbitmq.queue_type),
        _env("max_concurrent_jobs", str(spec.max_concurrent_jobs)),
        _env("job_timeout", str(spec.job_timeout)),
        _env("drain_timeout", str(spec.job_timeout)),
        _env("log_level", spec.log_level),
        _env("health_check_port", str(labels.HEALTH_PORT)),
    ]
    tls = spec.rabbitmq.tls
    if tls is not None:
        env.append(_env("rabbitmq_tls_ca_file", f"{BROKER_TLS_DIR}/ca.crt"))
        if tls.client_certificate:
            env.append(_env("rabbitmq_tls_cert_file", f"{BROKER_TLS_DIR}/tls.crt"))
            env.append(_env("rabbitmq_tls_key_file", f"{BROKER_TLS_DIR}/tls.key"))
    if spec.providers:
        env.append(_env("job_bindings", ",".join(job_bindings(spec))))
    env.extend(var.model_dump(mode="json", exclude_none=True) for var in spec.env)
    return env


def _probe(*, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": labels.HEALTH_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _container(pool: WorkerPool, image: str) -> dict[str, Any]:
    return {
        "name": labels.CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": worker_env(pool),
        "ports": [
            {
                "name": labels.HEALTH_PORT_NAME,
                "containerPort": labels.HEALTH_PORT,
                "protocol": "TCP",
            }
        ],
        # /health turns 503 while the worker drains; readiness takes it out of the Service
        # and the startup probe gives a slow broker connection a minute before liveness.
        "startupProbe": _probe(period=2, failures=30),
        "livenessProbe": _probe(period=10, failures=3),
        "readinessProbe": _probe(period=5, failures=2),
        "resources": pool.spec.resources.model_dump(mode="json"),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            *(
                [{"name": BROKER_TLS_VOLUME, "mountPath": BROKER_TLS_DIR, "readOnly": True}]
                if pool.spec.rabbitmq.tls is not None
                else []
            ),
        ],
    }


def _broker_tls_volume(pool: WorkerPool) -> list[dict[str, Any]]:
    tls = pool.spec.rabbitmq.tls
    if tls is None:
        return []
    items = [{"key": tls.ca_key, "path": "ca.crt"}]
    if tls.client_certificate:
        items += [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}]
    # 0440 with fsGroup: the non-root worker reads the key, nobody else in the pod writes it.
    secret = {"secretName": tls.secret_name, "items": items, "defaultMode": 0o440}
    return [{"name": BROKER_TLS_VOLUME, "secret": secret}]


def _pod_spec(pool: WorkerPool, image: str) -> dict[str, Any]:
    spec = pool.spec
    pod: dict[str, Any] = {
        "containers": [_container(pool, image)],
        "terminationGracePeriodSeconds": termination_grace_seconds(spec),
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_ID,
            "runAsGroup": RUN_AS_ID,
            "fsGroup": RUN_AS_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [{"name": "tmp", "emptyDir": {}}, *_broker_tls_volume(pool)],
    }
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    else:
        # Workers do not talk to the Kubernetes API: no token unless a ServiceAccount is chosen.
        pod["automountServiceAccountToken"] = False
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = list(spec.tolerations)
    if spec.affinity:
        pod["affinity"] = dict(spec.affinity)
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [ref.model_dump(mode="json") for ref in spec.image_pull_secrets]
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
    return pod


def build_deployment(pool: WorkerPool, *, default_image: str) -> dict[str, Any]:
    """The apps/v1 Deployment running ``desired_replicas`` workers of ``pool``.

    Rollouts surge and never take a ready worker away first (``maxUnavailable: 0``), so a
    template change does not shrink capacity while old pods drain.
    """
    name = pool.metadata.name
    pod_labels = {**pool.spec.pod_labels, **labels.common_labels(name)}
    pod_annotations = {
        **pool.spec.pod_annotations,
        "kubectl.kubernetes.io/default-container": labels.CONTAINER_NAME,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": labels.child_metadata(pool),
        "spec": {
            "replicas": desired_replicas(pool.spec),
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": labels.selector_labels(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": _pod_spec(pool, pool.spec.image or default_image),
            },
        },
    }
