"""What a decision looks like to users: status fields, the decision log, Events.

The autoscaler owns ``status.queue``, ``status.lastScaleTime``, ``status.decisions`` and
the ``ScalingActive`` and ``ScalingLimited`` conditions. It writes them with server-side
apply under its own field manager (``AUTOSCALER_FIELD_MANAGER``), so they never collide
with the operator's status apply (conditions are a list-map keyed by type). A field left
out of an apply is removed, so every apply carries all of them, including the last good
queue numbers while the broker is unreachable.

Events are posted on transitions only (a scale change, entering or leaving a failure or
a pause, a scale-down first held back by busy workers), never once per poll, so a long
outage produces one Warning rather than an event storm.

Pure: ``now`` is a parameter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from workerpool_operator import api, conditions, scaling
from workerpool_operator.conditions import SCALING_ACTIVE, Desired

AUTOSCALER_FIELD_MANAGER = "workerpool-autoscaler"

MAX_REASON = 1024
"""``status.decisions[].reason`` is bounded by the schema."""


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event to post on the pool."""

    type: str
    reason: str
    message: str


def _signature(decision: scaling.Decision) -> tuple[str, str]:
    """What makes a decision worth a log entry even without a replica change.

    A hold counts as the normal mode here: holding on missing data is logged when
    ``ScalingActive`` turns False with the failure's reason, not for a blip below the
    failure threshold (which would be a status write per pool per blip).
    """
    mode = "auto" if decision.mode == "hold" else decision.mode
    return mode, decision.scaling_active.reason


def log_entry(decision: scaling.Decision, now: datetime) -> dict[str, Any]:
    """One ``status.decisions`` entry."""
    return {
        "time": conditions.format_time(now),
        "from": decision.current_replicas,
        "to": decision.replicas,
        "reason": decision.reason[:MAX_REASON],
    }


def updated_log(
    log: Sequence[Mapping[str, Any]],
    decision: scaling.Decision,
    previous: scaling.Decision | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The decision log after this decision: changes and mode switches, newest last."""
    entries = [dict(entry) for entry in log]
    changed = decision.replicas != decision.current_replicas
    switched = previous is None or _signature(previous) != _signature(decision)
    if changed or switched:
        entries.append(log_entry(decision, now))
    return entries[-api.MAX_DECISIONS :]


def queue_status(decision: scaling.Decision) -> dict[str, int] | None:
    """``status.queue`` for this decision; None when the numbers are missing."""
    if decision.ready_messages is None or decision.in_flight is None:
        return None
    return {
        "ready": decision.ready_messages,
        "inFlight": decision.in_flight,
        "consumers": decision.consumers or 0,
        "dlq": decision.dead_letters or 0,
    }


def status_fields(
    *,
    decision: scaling.Decision,
    existing_conditions: Sequence[api.Condition],
    log: Sequence[Mapping[str, Any]],
    last_queue: Mapping[str, int] | None,
    last_scale_time: str | None,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """Every autoscaler-owned status field, camelCase, for one status apply."""
    wanted = (
        _desired(decision.scaling_active),
        _desired(decision.scaling_limited),
    )
    settled = [
        conditions.settle(existing_conditions, want, observed_generation=generation, now=now)
        for want in wanted
    ]
    fields: dict[str, Any] = {
        "decisions": [dict(entry) for entry in log],
        "conditions": [c.model_dump(mode="json") for c in settled],
    }
    queue = queue_status(decision) or last_queue
    if queue is not None:
        fields["queue"] = dict(queue)
    if last_scale_time is not None:
        fields["lastScaleTime"] = last_scale_time
    return fields


def _desired(info: scaling.ConditionInfo) -> Desired:
    return Desired(info.type, info.status, info.reason, info.message[:MAX_REASON])


def disabled_condition() -> Desired:
    """ScalingActive when built-in autoscaling is turned off."""
    return Desired(
        SCALING_ACTIVE, "False", "AutoscalingDisabled", "spec.autoscaling.enabled is false"
    )


def events(decision: scaling.Decision, previous: scaling.Decision | None) -> list[Event]:
    """Events worth posting for this decision, given the one before it."""
    found: list[Event] = []
    before, after = decision.current_replicas, decision.replicas
    if after > before:
        found.append(Event("Normal", "ScaledUp", f"{before} -> {after}: {decision.reason}"))
    elif after < before:
        found.append(Event("Normal", "ScaledDown", f"{before} -> {after}: {decision.reason}"))

    was = previous.scaling_active if previous is not None else None
    now = decision.scaling_active
    paused = now.reason == "ScalingPaused"
    if was is None or (was.status, was.reason) != (now.status, now.reason):
        if paused:
            found.append(Event("Normal", "ScalingPaused", now.message))
        elif now.status == "False":
            found.append(Event("Warning", now.reason, f"{now.message}; {decision.reason}"))
        elif was is not None:
            found.append(Event("Normal", "ScalingResumed", now.message))

    limited = decision.scaling_limited.reason == "BusyWorkers"
    was_limited = previous is not None and previous.scaling_limited.reason == "BusyWorkers"
    if limited and not was_limited:
        found.append(
            Event("Normal", "ScaleDownDeferred", decision.scaling_limited.message + " (busy)")
        )
    return found
