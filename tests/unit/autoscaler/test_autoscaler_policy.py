"""``policy_from_spec``: the CRD's autoscaling section and annotations to a policy."""

from __future__ import annotations

import pytest

from workerpool_operator import api, scaling
from workerpool_operator.autoscaler import policy as policy_mod


def _spec(**autoscaling: object) -> api.WorkerPoolSpec:
    return api.WorkerPoolSpec.model_validate(
        {
            "rabbitmq": {"secretRef": {"name": "broker"}},
            "maxConcurrentJobs": 4,
            "autoscaling": {"enabled": True, **autoscaling},
        }
    )


def test_crd_defaults_become_hpa_defaults() -> None:
    p = policy_mod.policy_from_spec(_spec())
    assert p == scaling.ScalingPolicy(
        min_replicas=0,
        max_replicas=10,
        target_jobs_per_replica=4,  # defaults to maxConcurrentJobs
        worker_capacity=4,
        activation_threshold=0,
        cooldown_seconds=300,
        tolerance=0.1,
        scale_up=scaling.default_scale_up(),
        scale_down=scaling.default_scale_down(),
        fallback_failure_threshold=3,
        fallback_replicas=None,
        heartbeat_stale_seconds=30.0,
    )


def test_every_knob_is_carried_over() -> None:
    p = policy_mod.policy_from_spec(
        _spec(
            minReplicas=1,
            maxReplicas=7,
            targetJobsPerReplica=8,
            activationThreshold=5,
            cooldownSeconds=60,
            tolerance=0.2,
            scaleUp={
                "stabilizationWindowSeconds": 30,
                "selectPolicy": "Min",
                "policies": [{"type": "Pods", "value": 2, "periodSeconds": 10}],
            },
            scaleDown={"stabilizationWindowSeconds": 0, "policies": []},
            fallback={"failureThreshold": 5, "replicas": 3},
        )
    )
    assert (p.min_replicas, p.max_replicas, p.target_jobs_per_replica) == (1, 7, 8)
    assert (p.activation_threshold, p.cooldown_seconds, p.tolerance) == (5, 60, 0.2)
    assert p.scale_up == scaling.ScalingRule(30, "Min", (scaling.RatePolicy("Pods", 2, 10),))
    assert p.scale_down.stabilization_window_seconds == 0
    assert p.scale_down.policies == scaling.DEFAULT_SCALE_DOWN_POLICIES  # empty = defaults
    assert (p.fallback_failure_threshold, p.fallback_replicas) == (5, 3)


@pytest.mark.parametrize(
    ("annotations", "paused", "pinned"),
    [
        ({}, False, None),
        ({policy_mod.PAUSED: "true"}, True, None),
        ({policy_mod.PAUSED: "false"}, False, None),
        ({policy_mod.PAUSED_REPLICAS: "3"}, False, 3),
        ({policy_mod.PAUSED_REPLICAS: "three"}, True, None),  # unreadable: freeze
        ({policy_mod.PAUSED_REPLICAS: "-1"}, True, None),
        ({policy_mod.PAUSED_REPLICAS: "50"}, False, 10),  # clamped to maxReplicas
    ],
)
def test_pause_annotations(annotations: dict[str, str], paused: bool, pinned: int | None) -> None:
    p = policy_mod.policy_from_spec(_spec(), annotations)
    assert (p.paused, p.paused_replicas) == (paused, pinned)


def test_scale_in_and_out_can_be_paused_separately() -> None:
    p = policy_mod.policy_from_spec(_spec(), {policy_mod.PAUSED_SCALE_IN: "true"})
    assert p.scale_down.select_policy == "Disabled"
    assert p.scale_up.select_policy == "Max"
    p = policy_mod.policy_from_spec(_spec(), {policy_mod.PAUSED_SCALE_OUT: "true"})
    assert p.scale_up.select_policy == "Disabled"


def test_tolerance_of_one_is_accepted() -> None:
    assert policy_mod.policy_from_spec(_spec(tolerance=1)).tolerance < 1
