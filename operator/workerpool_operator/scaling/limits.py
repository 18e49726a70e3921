"""How far replicas may move: stabilization windows, bounds, rate policies, busy workers.

Steps 5, 7 and 8 of the algorithm in ``workerpool_operator.scaling`` (HPA semantics, plus the
drain-aware bound that never removes a busy worker). Pure.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Literal

from workerpool_operator.scaling.types import (
    SCALING_LIMITED,
    ConditionInfo,
    ScaleEvent,
    ScalingHistory,
    ScalingPolicy,
    ScalingRule,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Workers:
    """The pool's workers sorted into what the decision needs."""

    in_flight: int
    source: Literal["heartbeats", "consumers", "mixed", "none"]
    unseen: int
    busy: tuple[str, ...]
    removable: tuple[str, ...]
    missing: int
    """Replicas without any pod yet (the ReplicaSet has not created them)."""


def stabilize(
    policy: ScalingPolicy,
    history: ScalingHistory,
    current: int,
    recommended: int,
    now: float,
) -> int:
    """HPA stabilization: up takes the window's minimum, down the window's maximum."""
    up_cutoff = now - policy.scale_up.stabilization_window_seconds
    down_window = policy.scale_down.stabilization_window_seconds
    down_cutoff = now - down_window
    up_bound = down_bound = recommended
    for rec in history.recommendations:
        if rec.at > up_cutoff:
            up_bound = min(up_bound, rec.replicas)
        if rec.at > down_cutoff:
            down_bound = max(down_bound, rec.replicas)
    started_at = history.started_at if history.started_at is not None else now
    if now - started_at < down_window:
        down_bound = max(down_bound, current)
    return min(max(current, up_bound), down_bound)


def bound(
    policy: ScalingPolicy,
    history: ScalingHistory,
    current: int,
    wanted: int,
    now: float,
) -> tuple[int, ConditionInfo]:
    """Clamp to [min, max] and the rate policies; say which limit bit."""
    if wanted > current:
        ceiling = _scale_uplimit(policy.scale_up, history, current, now)
        if policy.max_replicas <= ceiling:
            ceiling, why = policy.max_replicas, "TooManyReplicas"
        elif policy.scale_up.select_policy == "Disabled":
            why = "ScaleUpDisabled"
        else:
            why = "ScaleUpLimit"
        if wanted > ceiling:
            return ceiling, limited(why, f"wanted {wanted}, allowed {ceiling}")
        return wanted, not_limited()
    if wanted < current:
        floor = _scale_downlimit(policy.scale_down, history, current, now)
        if policy.min_replicas >= floor:
            floor, why = policy.min_replicas, "TooFewReplicas"
        elif policy.scale_down.select_policy == "Disabled":
            why = "ScaleDownDisabled"
        else:
            why = "ScaleDownLimit"
        if wanted < floor:
            return floor, limited(why, f"wanted {wanted}, allowed {floor}")
        return wanted, not_limited()
    if current > policy.max_replicas:
        return policy.max_replicas, limited("TooManyReplicas", f"above max {policy.max_replicas}")
    if current < policy.min_replicas:
        return policy.min_replicas, limited("TooFewReplicas", f"below min {policy.min_replicas}")
    return current, not_limited()


def _changes_within(events: Iterable[ScaleEvent], period: int, now: float) -> tuple[int, int]:
    """Replicas added and removed within the last ``period`` seconds."""
    added = removed = 0
    for event in events:
        if event.at > now - period:
            if event.delta > 0:
                added += event.delta
            else:
                removed -= event.delta
    return added, removed


def _scale_uplimit(rule: ScalingRule, history: ScalingHistory, current: int, now: float) -> int:
    """Highest count the scale-up policies allow now (HPA semantics).

    One deliberate difference: a pool at zero may always wake to one replica, so a
    Percent-only policy (any percentage of zero is zero) cannot strand it at zero.
    """
    if rule.select_policy == "Disabled":
        return current
    proposals = []
    for rate in rule.policies:
        added, removed = _changes_within(history.scale_events, rate.period_seconds, now)
        start = current - added + removed
        if rate.type == "Pods":
            proposals.append(start + rate.value)
        else:
            proposals.append(math.ceil(start * (1 + rate.value / 100)))
    limit = max(proposals) if rule.select_policy == "Max" else min(proposals)
    return max(limit, current, 1)


def _scale_downlimit(rule: ScalingRule, history: ScalingHistory, current: int, now: float) -> int:
    """Lowest count the scale-down policies allow now (HPA semantics)."""
    if rule.select_policy == "Disabled":
        return current
    proposals = []
    for rate in rule.policies:
        added, removed = _changes_within(history.scale_events, rate.period_seconds, now)
        start = current - added + removed
        if rate.type == "Pods":
            proposals.append(start - rate.value)
        else:
            proposals.append(math.floor(start * (1 - rate.value / 100)))
    limit = min(proposals) if rule.select_policy == "Max" else max(proposals)
    return min(max(limit, 0), current)


def drain_bound(current: int, wanted: int, workers: Workers) -> tuple[int, tuple[str, ...]]:
    """Never remove more replicas than are safe to remove; name the pods to remove.

    Replicas without a pod go first (lowering them deletes nothing), then the
    removable pods in order.
    """
    if wanted >= current:
        return wanted, ()
    safe = workers.missing + len(workers.removable)
    replicas = max(wanted, current - safe)
    to_delete = max(0, current - replicas - workers.missing)
    return replicas, workers.removable[:to_delete]


def limited(reason: str, message: str) -> ConditionInfo:
    return ConditionInfo(SCALING_LIMITED, "True", reason, message)


def not_limited() -> ConditionInfo:
    return ConditionInfo(SCALING_LIMITED, "False", "DesiredWithinRange", "no limit applied")
