"""The WorkerPool models: defaults, bounds, and the derived values builders rely on."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.operator.wp_factories import pool, pool_body
from workerpool_operator.api import (
    MANAGED_ENV_NAMES,
    WorkerPool,
    WorkerPoolSpec,
    desired_replicas,
    effective_queue,
    target_jobs_per_replica,
)


def test_defaults_match_the_documented_contract() -> None:
    spec = pool().spec
    assert (spec.replica_count, spec.max_concurrent_jobs, spec.job_timeout) == (1, 10, 300)
    assert spec.rabbitmq.secret_ref.key == "url"
    assert spec.log_level == "INFO"
    scaling = spec.autoscaling
    assert not scaling.enabled
    assert (scaling.min_replicas, scaling.max_replicas) == (0, 10)
    assert scaling.target_jobs_per_replica is None
    assert (scaling.poll_interval_seconds, scaling.activation_threshold) == (2, 0)
    assert (scaling.cooldown_seconds, scaling.tolerance) == (300, 0.1)
    assert scaling.scale_up.stabilization_window_seconds == 0
    assert scaling.scale_up.select_policy == "Max"
    assert [(p.type, p.value, p.period_seconds) for p in scaling.scale_up.policies] == [
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    ]
    assert scaling.scale_down.stabilization_window_seconds == 300
    assert [(p.type, p.value, p.period_seconds) for p in scaling.scale_down.policies] == [
        ("Percent", 100, 15)
    ]
    assert (scaling.fallback.failure_threshold, scaling.fallback.replicas) == (3, None)


def test_camel_case_on_the_wire_snake_case_in_python() -> None:
    spec = WorkerPoolSpec.model_validate(
        {"rabbitmq": {"secretRef": {"name": "s"}}, "maxConcurrentJobs": 4}
    )
    assert spec.max_concurrent_jobs == 4
    dumped = spec.model_dump()
    assert dumped["maxConcurrentJobs"] == 4
    assert dumped["autoscaling"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    by_name = WorkerPoolSpec.model_validate(
        {"rabbitmq": {"secret_ref": {"name": "s"}}, "max_concurrent_jobs": 3}
    )
    assert by_name.max_concurrent_jobs == 3


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"replicaCount": -1}, "replicaCount"),
        ({"maxConcurrentJobs": 0}, "maxConcurrentJobs"),
        ({"jobTimeout": 0}, "jobTimeout"),
        ({"autoscaling": {"maxReplicas": 0}}, "maxReplicas"),
        ({"autoscaling": {"tolerance": 1.5}}, "tolerance"),
        ({"autoscaling": {"scaleUp": {"selectPolicy": "Sometimes"}}}, "selectPolicy"),
        ({"providers": ["not a provider"]}, "providers"),
        ({"logLevel": "TRACE"}, "logLevel"),
    ],
)
def test_out_of_bounds_values_are_rejected_naming_the_field(
    spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        WorkerPool.model_validate(pool_body(**spec))


def test_rabbitmq_secret_reference_is_required() -> None:
    body = pool_body()
    del body["spec"]["rabbitmq"]
    with pytest.raises(ValidationError, match="rabbitmq"):
        WorkerPool.model_validate(body)


def test_queue_defaults_to_shared_queue_or_a_dedicated_one_for_providers() -> None:
    assert effective_queue(pool()) == "provider.jobs"
    dedicated = pool(name="compute", namespace="ns", providers=["ITL.Compute/VM"])
    assert effective_queue(dedicated) == "provider.jobs.ns.compute"
    assert effective_queue(pool(queue="custom.q", providers=["ITL.X"])) == "custom.q"


def test_target_jobs_per_replica_defaults_to_max_concurrent_jobs() -> None:
    assert target_jobs_per_replica(pool(maxConcurrentJobs=7).spec) == 7
    spec = pool(maxConcurrentJobs=7, autoscaling={"targetJobsPerReplica": 3}).spec
    assert target_jobs_per_replica(spec) == 3


@pytest.mark.parametrize(
    ("replica_count", "autoscaling", "expected"),
    [
        (3, {}, 3),
        (0, {}, 0),
        (3, {"enabled": True, "minReplicas": 1, "maxReplicas": 5}, 3),
        (9, {"enabled": True, "minReplicas": 1, "maxReplicas": 5}, 9),
        (0, {"enabled": True, "minReplicas": 2, "maxReplicas": 5}, 2),
    ],
)
def test_desired_replicas_follow_replica_count_raised_to_min_when_autoscaling(
    replica_count: int, autoscaling: dict[str, object], expected: int
) -> None:
    spec = pool(replicaCount=replica_count, autoscaling=autoscaling).spec
    assert desired_replicas(spec) == expected


def test_managed_env_names_come_from_the_worker_settings_contract() -> None:
    assert "WORKER_ID" in MANAGED_ENV_NAMES
    assert "RABBITMQ_URL" in MANAGED_ENV_NAMES
    assert "WORKER_POOL" in MANAGED_ENV_NAMES
