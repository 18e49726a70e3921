"""The decision: one pure function of policy, observation, history and time.

Steps 1 to 4 and 6 of the algorithm in ``workerpool_operator.scaling`` live here; the limits
(steps 5, 7, 8) are in ``limits``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from workerpool_operator.scaling.limits import (
    Workers,
    bound,
    drain_bound,
    limited,
    not_limited,
    stabilize,
)
from workerpool_operator.scaling.types import (
    BUSY_DELETION_COST,
    IDLE_DELETION_COST,
    SCALING_ACTIVE,
    ConditionInfo,
    Decision,
    DeletionCost,
    Mode,
    Observation,
    ObservationFailure,
    PodView,
    Recommendation,
    ScaleEvent,
    ScalingHistory,
    ScalingPolicy,
    WorkerHeartbeat,
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    """The inputs of one call that do not change while it runs."""

    policy: ScalingPolicy
    observation: Observation
    workers: Workers
    now: float


def decide(
    policy: ScalingPolicy,
    observation: Observation,
    history: ScalingHistory,
    now: float,
) -> Decision:
    """Decide the pool's replicas for this poll. Pure: same inputs, same decision."""
    if history.started_at is None:
        history = dataclasses.replace(history, started_at=now, last_arrival_at=now)
    unseen = 0
    delivered: bool | None = None
    if observation.failure is None:
        history, delivered = _account(policy, observation, history, now)
        unseen = history.unseen_deliveries
    ctx = _Context(policy, observation, _classify_workers(policy, observation, unseen, now), now)
    # Arrivals are tracked in every mode, so the cooldown never expires during a pause
    # or an outage; missing data counts as an arrival.
    if _work_arrived(ctx, delivered):
        history = dataclasses.replace(history, last_arrival_at=now)
    if policy.paused_replicas is not None:
        return _decide_pinned(ctx, history, policy.paused_replicas)
    if policy.paused:
        current = observation.current_replicas
        reason = f"paused by annotation; holding {current} replicas"
        return _decision(
            ctx,
            history,
            replicas=current,
            mode="paused",
            reason=reason,
            active=_paused(reason),
        )
    if observation.failure is not None:
        return _decide_without_data(ctx, history, observation.failure)
    return _decide_from_load(ctx, history)


def _decide_from_load(ctx: _Context, history: ScalingHistory) -> Decision:
    """The normal path: steps 3 to 8 of the module docstring."""
    policy, workers, now = ctx.policy, ctx.workers, ctx.now
    current = ctx.observation.current_replicas
    ready = ctx.observation.ready_messages
    history = dataclasses.replace(history, consecutive_failures=0)
    recommended = _recommend(policy, current, ready, workers.in_flight)
    unseen = f", {workers.unseen} not in heartbeats yet" if workers.unseen else ""
    notes = [
        f"ready={ready} inFlight={workers.in_flight} ({workers.source}{unseen}) "
        f"target={policy.target_jobs_per_replica}/replica -> {recommended}"
    ]

    stabilized = stabilize(policy, history, current, recommended, now)
    if stabilized != recommended:
        notes.append(f"stabilized at {stabilized}")

    quiet_since = history.last_arrival_at if history.last_arrival_at is not None else now
    window = policy.scale_down.stabilization_window_seconds
    if stabilized > 0 and quiet_since < now and now - quiet_since >= window:
        # Nothing waits and nothing arrived for a whole window: the work in flight is a
        # tail. The drain-aware bound keeps its busy workers; the idle ones go now rather
        # than a window after the last job ends.
        stabilized = 0
        notes.append(f"nothing arrived for {window}s: only busy workers stay")

    if stabilized == 0 < current:
        remaining = policy.cooldown_seconds - (now - quiet_since)
        if remaining > 0:
            stabilized = 1
            notes.append(f"idle, zero after cooldown ({math.ceil(remaining)}s left)")

    limited_to, limit = bound(policy, history, current, stabilized, now)
    if limited_to != stabilized:
        notes.append(f"limited to {limited_to} ({limit.reason})")

    replicas, victims = drain_bound(current, limited_to, workers)
    if replicas != limited_to:
        limit = limited(
            "BusyWorkers",
            f"{current - limited_to} replicas to remove, only {current - replicas} are idle",
        )
        notes.append(f"kept {replicas}: busy workers are never removed")

    return _decision(
        ctx,
        history,
        replicas=replicas,
        mode="auto",
        reason="; ".join(notes),
        active=ConditionInfo(
            SCALING_ACTIVE,
            "True",
            "ValidMetric",
            f"queue depth and in-flight work read ({workers.source})",
        ),
        limited=limit,
        victims=victims,
        recommended=recommended,
        held=replicas != limited_to,
    )


def _decide_pinned(ctx: _Context, history: ScalingHistory, pinned: int) -> Decision:
    """Move to the pinned count, still never removing a busy worker.

    The pin ignores [min, max] as KEDA's ``paused-replicas`` does: it is an explicit
    order. It does not override the never-kill-busy guarantee; a pin below the busy
    count is reached as workers finish.
    """
    replicas, victims = drain_bound(ctx.observation.current_replicas, pinned, ctx.workers)
    reason = f"paused at {pinned} replicas by annotation"
    if replicas != pinned:
        reason += f"; holding {replicas} until busy workers finish"
    return _decision(
        ctx,
        history,
        replicas=replicas,
        mode="pinned",
        reason=reason,
        active=_paused(reason),
        victims=victims,
        held=replicas != pinned,
    )


def _decide_without_data(
    ctx: _Context,
    history: ScalingHistory,
    failure: ObservationFailure,
) -> Decision:
    """Hold on missing data; after N failures in a row report it, and raise (never lower)
    to the fallback.

    Below the threshold ``ScalingActive`` keeps its last state (True stays True): one read
    timing out on a slow broker is not worth a condition flip, an Event and a status write,
    times every pool on that broker.
    """
    policy = ctx.policy
    failures = history.consecutive_failures + 1
    history = dataclasses.replace(history, consecutive_failures=failures)
    current = ctx.observation.current_replicas
    replicas = current
    mode: Mode = "hold"
    reason = f"{failure.reason}: holding {current} replicas ({failures} failed polls in a row)"
    active = ConditionInfo(SCALING_ACTIVE, "False", failure.reason, failure.message)
    reported = failures >= policy.fallback_failure_threshold
    if not reported and history.active is not None and history.active.status == "True":
        active = history.active
    if policy.fallback_replicas is not None and reported:
        mode = "fallback"
        fallback = min(policy.fallback_replicas, policy.max_replicas)
        if fallback > current:
            replicas = fallback
            reason = f"{failure.reason}: fallback to {fallback} replicas ({failures} failed polls)"
    return _decision(
        ctx,
        history,
        replicas=replicas,
        mode=mode,
        reason=reason,
        active=active,
    )


def _fresh(
    policy: ScalingPolicy, observation: Observation, now: float
) -> dict[str, WorkerHeartbeat]:
    return {
        hb.worker_id: hb
        for hb in observation.heartbeats
        if now - hb.timestamp <= policy.heartbeat_stale_seconds
    }


def _account(
    policy: ScalingPolicy, observation: Observation, history: ScalingHistory, now: float
) -> tuple[ScalingHistory, bool | None]:
    """Update the delivery accounting (``ScalingHistory.unseen_deliveries``); say whether
    anything was delivered since the last poll (``None``: the heartbeats cannot tell).

    Messages that left the ready count since the last poll were delivered to some worker
    (publishes only raise the count, so the drop is a lower bound). Deliveries the
    heartbeats show are the growth of each worker's jobs taken (finished + in flight).
    What is left over is in flight but unseen. It carries over to later polls until the
    heartbeats catch up, or until ``heartbeat_stale_seconds`` pass (a purge or an expiry
    also lowers the ready count without any delivery).
    """
    fresh = _fresh(policy, observation, now)
    if any(hb.jobs_finished is None for hb in fresh.values()):
        return dataclasses.replace(history, last_ready=observation.ready_messages), None
    previous = dict(history.jobs_taken)
    taken = {
        w: hb.jobs_finished + hb.in_flight
        for w, hb in fresh.items()
        if hb.jobs_finished is not None
    }
    seen = sum(max(0, n - previous.get(w, 0)) for w, n in taken.items())
    unseen = 0
    if history.last_ready is not None:
        carried = history.unseen_deliveries
        since = history.unseen_since
        if since is not None and now - since > policy.heartbeat_stale_seconds:
            carried = 0
        left_queue = max(0, history.last_ready - observation.ready_messages)
        unseen = max(0, carried + left_queue - seen)
    since = None
    if unseen:
        since = history.unseen_since if history.unseen_deliveries and history.unseen_since else now
    delivered = bool(seen) or (history.last_ready or 0) > observation.ready_messages
    history = dataclasses.replace(
        history,
        last_ready=observation.ready_messages,
        jobs_taken=tuple(sorted(taken.items())),
        unseen_deliveries=unseen,
        unseen_since=since,
    )
    return history, delivered


def _work_arrived(ctx: _Context, delivered: bool | None) -> bool:
    """Whether work arrived since the last poll, erring towards yes.

    Jobs handed straight to a worker with room never show in the ready count; only the
    heartbeats' counters reveal them. Without those counters (``delivered`` is None), or
    with consumers that send no heartbeats, any work in flight may be new.
    """
    if ctx.observation.failure is not None or ctx.observation.ready_messages:
        return True
    workers = ctx.workers
    if workers.in_flight and (delivered is None or workers.source != "heartbeats"):
        return True
    return bool(delivered)


def _classify_workers(
    policy: ScalingPolicy, observation: Observation, unseen: int, now: float
) -> Workers:
    """Count in-flight work and sort pods into busy and safe-to-remove.

    A Ready pod with no fresh heartbeat counts as busy: it may run jobs we cannot see,
    and the guarantee is never to remove a busy worker. A pod that is not Ready and has
    no fresh heartbeat never took work (or lost it already), so it is safe to remove.
    Draining workers are already leaving: their jobs need no new replica. While some
    deliveries are unseen (``unseen`` > 0), no heartbeat-idle worker is trusted to be idle.
    """
    fresh = _fresh(policy, observation, now)
    consuming = [hb for hb in fresh.values() if not hb.draining]
    reported = sum(max(hb.in_flight, 0) for hb in consuming)
    silent_consumers = max(0, observation.consumers - len(consuming))
    in_flight = reported + silent_consumers * policy.capacity + unseen
    source: Literal["heartbeats", "consumers", "mixed", "none"]
    if silent_consumers and consuming:
        source = "mixed"
    elif silent_consumers:
        source = "consumers"
    elif consuming:
        source = "heartbeats"
    else:
        source = "none"

    busy: list[str] = []
    removable: list[PodView] = []
    live = [pod for pod in observation.pods if not pod.terminating]
    for pod in live:
        hb = fresh.get(pod.name)
        if hb is None:
            if pod.ready:
                busy.append(pod.name)
            else:
                removable.append(pod)
        elif hb.in_flight > 0 or hb.draining or unseen:
            busy.append(pod.name)
        else:
            removable.append(pod)
    removable.sort(key=_removal_order)
    missing = max(0, observation.current_replicas - len(live))
    return Workers(
        in_flight=in_flight,
        source=source,
        unseen=unseen,
        busy=tuple(sorted(busy)),
        removable=tuple(pod.name for pod in removable),
        missing=missing,
    )


def _removal_order(pod: PodView) -> tuple[bool, float, str]:
    """Unready pods first, then the youngest, as the ReplicaSet would among equals."""
    created = pod.created_at if pod.created_at is not None else 0.0
    return (pod.ready, -created, pod.name)


def _recommend(policy: ScalingPolicy, current: int, ready: int, in_flight: int) -> int:
    """The raw replica count the load asks for (HPA AverageValue + KEDA activation)."""
    load = ready + in_flight
    if current == 0 and ready <= policy.activation_threshold and in_flight == 0:
        return 0
    target = policy.target_jobs_per_replica
    if current > 0 and load > 0:
        # |1 - load / (target * current)| <= tolerance, without dividing (44/40 is 1.1).
        capacity = target * current
        if abs(capacity - load) <= policy.tolerance * capacity:
            return current
    return -(-load // target)


def _deletion_costs(observation: Observation, victims: tuple[str, ...]) -> tuple[DeletionCost, ...]:
    """Annotation patches that make the ReplicaSet pick exactly ``victims``.

    Victims first (so a partial apply still protects the right pods), then the rest;
    values already in place are skipped.
    """
    chosen = set(victims)
    patches = [
        DeletionCost(pod.name, IDLE_DELETION_COST)
        for pod in observation.pods
        if pod.name in chosen and pod.deletion_cost != IDLE_DELETION_COST
    ]
    patches += [
        DeletionCost(pod.name, BUSY_DELETION_COST)
        for pod in observation.pods
        if not pod.terminating
        and pod.name not in chosen
        and pod.deletion_cost != BUSY_DELETION_COST
    ]
    return tuple(patches)


def _decision(
    ctx: _Context,
    history: ScalingHistory,
    *,
    replicas: int,
    mode: Mode,
    reason: str,
    active: ConditionInfo,
    limited: ConditionInfo | None = None,
    victims: tuple[str, ...] = (),
    recommended: int | None = None,
    held: bool = False,
) -> Decision:
    """Assemble the decision and the history the next poll needs."""
    policy, observation, workers, now = ctx.policy, ctx.observation, ctx.workers, ctx.now
    current = observation.current_replicas
    recommendations = history.recommendations
    if recommended is not None:
        recommendations = (*recommendations, Recommendation(now, recommended))
    horizon = max(
        policy.scale_up.stabilization_window_seconds,
        policy.scale_down.stabilization_window_seconds,
    )
    recommendations = tuple(r for r in recommendations if r.at > now - horizon)
    events = history.scale_events
    last_scale_at = history.last_scale_at
    if replicas != current:
        events = (*events, ScaleEvent(now, replicas - current))
        last_scale_at = now
    period = max(
        (p.period_seconds for p in (*policy.scale_up.policies, *policy.scale_down.policies)),
        default=0,
    )
    events = tuple(e for e in events if e.at > now - period)
    history = dataclasses.replace(
        history,
        recommendations=recommendations,
        scale_events=events,
        last_scale_at=last_scale_at,
        active=active,
    )
    data = observation.failure is None
    ready = observation.ready_messages if data else None
    return Decision(
        replicas=replicas,
        current_replicas=current,
        mode=mode,
        reason=reason,
        scaling_active=active,
        scaling_limited=limited or not_limited(),
        history=history,
        ready_messages=ready,
        in_flight=workers.in_flight if data else None,
        in_flight_source=workers.source if data else "unknown",
        consumers=observation.consumers if data else None,
        recommended=recommended,
        dead_letters=observation.dead_letters if data else None,
        busy_pods=workers.busy,
        idle_pods=workers.removable,
        victims=victims,
        deletion_costs=_deletion_costs(observation, victims) if victims else (),
        failure=observation.failure,
        held_by_busy_workers=held,
    )


def _paused(message: str) -> ConditionInfo:
    return ConditionInfo(SCALING_ACTIVE, "False", "ScalingPaused", message)
