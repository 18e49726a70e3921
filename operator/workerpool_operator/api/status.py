"""``status``: what the operator and the autoscaler observed. Pure module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from workerpool_operator.api.base import Model

MAX_DECISIONS = 10
"""Length of the decision log kept in status; older entries are dropped by the autoscaler."""


class Condition(Model):
    """A metav1.Condition: one aspect of the pool's state."""

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Ready, Progressing, Degraded, ScalingActive.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    observed_generation: int = Field(
        default=0, ge=0, description="metadata.generation the condition was computed for."
    )
    last_transition_time: str = Field(
        description="When status last changed.", json_schema_extra={"format": "date-time"}
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")


class QueueStatus(Model):
    """Last queue observation (filled by the autoscaler)."""

    ready: int = Field(default=0, ge=0, description="Messages waiting in the queue.")
    in_flight: int = Field(default=0, ge=0, description="Jobs the workers are running.")
    consumers: int = Field(default=0, ge=0, description="Consumers attached to the queue.")
    dlq: int = Field(default=0, ge=0, description="Messages in the dead-letter queue.")


class ScalingDecision(Model):
    """One replica change the autoscaler made, for the decision log."""

    time: str = Field(description="When it was made.", json_schema_extra={"format": "date-time"})
    from_: int = Field(alias="from", ge=0, description="Replicas before.")
    to: int = Field(ge=0, description="Replicas after.")
    reason: str = Field(max_length=1024, description="Why, in words.")


class WorkerPoolStatus(Model):
    """Observed state. The operator writes the rollout part, the autoscaler the queue part."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the operator last acted on."
    )
    replicas: int | None = Field(
        default=None, ge=0, description="Worker pods that exist (scale subresource)."
    )
    ready_replicas: int | None = Field(default=None, ge=0, description="Worker pods ready.")
    desired_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the operator asks the Deployment for."
    )
    selector: str | None = Field(
        default=None, description="Label selector of the pods, as a string (scale subresource)."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing, Degraded (operator) and ScalingActive (autoscaler).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    queue: QueueStatus | None = Field(default=None, description="Last queue observation.")
    last_scale_time: str | None = Field(
        default=None,
        description="When the autoscaler last changed replicas.",
        json_schema_extra={"format": "date-time"},
    )
    decisions: list[ScalingDecision] = Field(
        default_factory=list,
        max_length=MAX_DECISIONS,
        description=f"The last {MAX_DECISIONS} scaling decisions, newest last.",
    )


def parse_status(raw: Mapping[str, Any] | None) -> WorkerPoolStatus:
    """Status as far as it is readable: a malformed entry from another writer is dropped.

    Status is observation, not intent; a bad condition written by someone else must never
    stop the operator from reconciling the spec.
    """
    try:
        return WorkerPoolStatus.model_validate(raw or {})
    except ValidationError:
        pass
    usable: list[Condition] = []
    for item in (raw or {}).get("conditions") or []:
        try:
            usable.append(Condition.model_validate(item))
        except ValidationError:
            continue
    return WorkerPoolStatus(conditions=usable)
