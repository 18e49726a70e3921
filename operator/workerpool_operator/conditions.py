"""metav1.Condition bookkeeping: set a condition without losing its transition time.

``lastTransitionTime`` changes only when ``status`` flips (cluster-operator's rule), so a
reason or message update never looks like a new transition. Every condition carries the
``observedGeneration`` it was computed for, which KEDA's conditions lack.

Pure module: ``now`` is a parameter, never read from the clock here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from workerpool_operator import scaling
from workerpool_operator.api import Condition

READY = "Ready"
"""All desired workers are up to date and ready (or the pool is scaled to zero)."""
PROGRESSING = "Progressing"
"""A spec change is rolling out to the workers."""
DEGRADED = "Degraded"
"""The operator cannot make the pool what the spec says (reason tells why)."""
SCALING_ACTIVE = scaling.SCALING_ACTIVE
"""Owned by the autoscaler: queue statistics are being read and acted on."""
SCALING_LIMITED = scaling.SCALING_LIMITED
"""Owned by the autoscaler: a bound, a rate policy or busy workers held replicas back."""

OPERATOR_CONDITIONS = (READY, PROGRESSING, DEGRADED)
"""The condition types the operator (not the autoscaler) owns in status."""

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Desired:
    """A condition as a reconcile wants it, before timestamps are settled."""

    type: str
    status: Status
    reason: str
    message: str = ""


def format_time(now: datetime) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serialises."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    """The condition of ``type_``, if present."""
    return next((c for c in conditions if c.type == type_), None)


def settle(
    existing: Sequence[Condition],
    desired: Desired,
    *,
    observed_generation: int,
    now: datetime,
) -> Condition:
    """The condition to write: keeps the old transition time when the status is unchanged."""
    previous = find(existing, desired.type)
    if previous is not None and previous.status == desired.status:
        transition = previous.last_transition_time
    else:
        transition = format_time(now)
    return Condition(
        type=desired.type,
        status=desired.status,
        reason=desired.reason,
        message=desired.message,
        observed_generation=observed_generation,
        last_transition_time=transition,
    )


def set_conditions(
    existing: Sequence[Condition],
    desired: Iterable[Desired],
    *,
    observed_generation: int,
    now: datetime,
) -> list[Condition]:
    """``existing`` with each desired condition replaced or appended, order kept."""
    result = list(existing)
    for want in desired:
        settled = settle(existing, want, observed_generation=observed_generation, now=now)
        for index, current in enumerate(result):
            if current.type == want.type:
                result[index] = settled
                break
        else:
            result.append(settled)
    return result
