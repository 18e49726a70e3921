"""Conditions keep their transition time; status follows the Deployment's rollout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.operator.wp_factories import deployment_state, pool
from workerpool_operator import conditions
from workerpool_operator.api import Condition
from workerpool_operator.conditions import Desired
from workerpool_operator.status import (
    SECRET_NOT_FOUND,
    Failure,
    carried_failure,
    operator_status,
    status_is_current,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def _by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_transition_time_changes_only_when_status_flips() -> None:
    first = conditions.set_conditions(
        [], [Desired("Ready", "False", "ReplicasNotReady")], observed_generation=1, now=T0
    )
    reworded = conditions.set_conditions(
        first, [Desired("Ready", "False", "Other", "m")], observed_generation=2, now=T1
    )
    assert reworded[0].last_transition_time == "2026-01-01T12:00:00Z"
    assert (reworded[0].reason, reworded[0].observed_generation) == ("Other", 2)
    flipped = conditions.set_conditions(
        reworded, [Desired("Ready", "True", "AllReplicasReady")], observed_generation=2, now=T1
    )
    assert flipped[0].last_transition_time == "2026-01-01T12:05:00Z"


def test_other_writers_conditions_are_kept_in_order() -> None:
    scaling = Condition(
        type="ScalingActive", status="True", reason="Polling", last_transition_time="x"
    )
    result = conditions.set_conditions(
        [scaling], [Desired("Ready", "True", "AllReplicasReady")], observed_generation=1, now=T0
    )
    assert [c.type for c in result] == ["ScalingActive", "Ready"]
    assert result[0] is scaling


def test_complete_rollout_is_ready_and_not_progressing() -> None:
    status = operator_status(
        pool(replicaCount=2, generation=3), deployment_state(desired=2), None, now=T0
    )
    assert status["observedGeneration"] == 3
    assert (status["replicas"], status["readyReplicas"], status["desiredReplicas"]) == (2, 2, 2)
    assert status["selector"].endswith("controlplane.itlusions.com/workerpool=workers")
    found = _by_type(status)
    assert found["Ready"]["status"] == "True"
    assert found["Ready"]["reason"] == "AllReplicasReady"
    assert found["Progressing"]["status"] == "False"
    assert found["Degraded"]["status"] == "False"
    assert all(c["observedGeneration"] == 3 for c in found.values())


@pytest.mark.parametrize(
    "deployment",
    [
        deployment_state(desired=3, ready=1, updated=1),
        deployment_state(desired=3, ready=3, updated=3, replicas=4),  # old pod still there
        deployment_state(desired=3, generation=2, observed=1),  # controller has not looked
    ],
)
def test_incomplete_rollout_is_progressing_and_not_ready(deployment: dict[str, Any]) -> None:
    found = _by_type(operator_status(pool(replicaCount=3), deployment, None, now=T0))
    assert found["Progressing"]["status"] == "True"
    assert found["Progressing"]["reason"] == "RollingOut"
    assert found["Ready"]["status"] == "False"


def test_scaled_to_zero_is_ready() -> None:
    found = _by_type(
        operator_status(pool(replicaCount=0), deployment_state(desired=0), None, now=T0)
    )
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("True", "ScaledToZero")


def test_replica_failure_degrades_the_pool_with_the_deployment_message() -> None:
    deployment = deployment_state(
        desired=1,
        ready=0,
        updated=0,
        conditions=[
            {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "FailedCreate",
                "message": 'pods "w-1" is forbidden: violates PodSecurity',
            }
        ],
    )
    found = _by_type(operator_status(pool(), deployment, None, now=T0))
    assert found["Degraded"]["status"] == "True"
    assert found["Degraded"]["reason"] == "ReplicaFailure"
    assert "PodSecurity" in found["Degraded"]["message"]


def test_reconcile_failure_without_deployment_is_degraded_with_its_reason() -> None:
    failure = Failure(SECRET_NOT_FOUND, "Secret 'rabbitmq' not found")
    found = _by_type(operator_status(pool(), None, failure, now=T0))
    assert (found["Degraded"]["status"], found["Degraded"]["reason"]) == ("True", "SecretNotFound")
    assert found["Ready"]["status"] == "False"
    assert found["Progressing"]["status"] == "False"


def test_reconcile_failure_is_carried_only_for_the_same_generation() -> None:
    failed = operator_status(pool(generation=4), None, Failure(SECRET_NOT_FOUND, "m"), now=T0)
    same = pool(generation=4, status={"conditions": failed["conditions"]})
    later = pool(generation=5, status={"conditions": failed["conditions"]})
    assert carried_failure(same) == Failure(SECRET_NOT_FOUND, "m")
    assert carried_failure(later) is None


def test_status_is_current_ignores_conditions_of_other_writers() -> None:
    wanted = operator_status(pool(), deployment_state(desired=1), None, now=T0)
    current = {
        **wanted,
        "queue": {"ready": 3},
        "conditions": [
            {
                "type": "ScalingActive",
                "status": "True",
                "reason": "Polling",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
            *wanted["conditions"],
        ],
    }
    assert status_is_current(current, wanted)
    assert not status_is_current({**current, "readyReplicas": 0}, wanted)
    # A second computation later keeps transition times, so nothing needs writing.
    again = operator_status(pool(status=current), deployment_state(desired=1), None, now=T1)
    assert status_is_current(current, again)
