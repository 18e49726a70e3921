"""The autoscaling decision: a pure function of policy, observation, history and time.

This module is the whole brain of WorkerPool autoscaling and nothing else. It reads no
clock, opens no connection and imports no kopf, Kubernetes client or aio-pika, so every
rule can be unit-tested in milliseconds and replayed over simulated time series. Its only
caller in production is ``workerpool_operator.autoscaler`` (the poll loop), which turns
broker statistics, worker heartbeats and pod lists into an :class:`Observation`, calls
:func:`decide` once per poll, then applies the :class:`Decision`: pod-deletion-cost patches
first, the Deployment's replicas second, status, Events and metrics last.

The algorithm, in the order :func:`decide` applies it:

1. **Pause.** ``paused`` holds the current replicas; ``paused_replicas`` pins a count.
2. **Missing data.** A failed observation holds the current replicas (never a scale-down)
   and reports ``ScalingActive=False``; after ``fallback_failure_threshold`` consecutive
   failures the pool may be raised to ``fallback_replicas`` (never lowered).
3. **Load.** ``ready + in-flight``. In-flight comes from fresh, non-draining worker
   heartbeats; every queue consumer with no heartbeat behind it is assumed full
   (``worker_capacity`` jobs), the safe upper bound RabbitMQ's prefetch guarantees.
4. **Raw recommendation.** ``ceil(load / target_jobs_per_replica)``, kept at the current
   count while the load is within ``tolerance`` of it (HPA), and kept at zero while a pool
   at zero sees no more than ``activation_threshold`` ready messages (KEDA).
5. **Stabilization** (HPA): scale-up takes the lowest, scale-down the highest recommendation
   of its window. A freshly started history holds the current count for one scale-down
   window, so an operator restart never looks like permission to scale down.
6. **Cooldown.** The last step to zero waits until the pool has seen nothing ready and
   nothing in flight for ``cooldown_seconds``.
7. **Bounds and rate policies** (HPA): clamp to ``[min_replicas, max_replicas]`` and to the
   Pods/Percent-per-period limits chosen by ``select_policy``.
8. **Drain-aware bound.** Replicas never drop by more than the number of pods that are safe
   to remove: idle workers, pods that are not Ready and never reported work, and replicas
   whose pods do not exist yet. The idle pods to delete get the lowest
   ``controller.kubernetes.io/pod-deletion-cost``, every other pod the highest, so the
   ReplicaSet removes exactly the idle ones.

``docs/autoscaling.md`` explains the same with a worked example.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "BUSY_DELETION_COST",
    "DEFAULT_SCALE_DOWN_POLICIES",
    "DEFAULT_SCALE_UP_POLICIES",
    "IDLE_DELETION_COST",
    "ConditionInfo",
    "Decision",
    "DeletionCost",
    "Observation",
    "ObservationFailure",
    "PodView",
    "RatePolicy",
    "Recommendation",
    "ScaleEvent",
    "ScalingHistory",
    "ScalingPolicy",
    "ScalingRule",
    "WorkerHeartbeat",
    "decide",
    "default_scale_down",
    "default_scale_up",
]

IDLE_DELETION_COST = -1000
"""pod-deletion-cost of a pod chosen for removal: the ReplicaSet deletes it first."""

BUSY_DELETION_COST = 1000
"""pod-deletion-cost of every pod that must survive a scale-down (busy or simply kept).

Two fixed values instead of a cost per job age: the annotation is best-effort and each
change is a pod update, so costs change only when a pod moves between the two groups.
"""

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]
ConditionStatus = Literal["True", "False", "Unknown"]
Direction = Literal["up", "down", "none"]
Mode = Literal["auto", "paused", "pinned", "hold", "fallback"]


# --------------------------------------------------------------------------------------
# Inputs: the policy (what the user asked for)
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RatePolicy:
    """How far one direction may move within a period (HPA ``HPAScalingPolicy``)."""

    type: PolicyType
    """``Pods``: an absolute number of replicas; ``Percent``: a share of the count at the
    start of the period."""
    value: int
    period_seconds: int

    def __post_init__(self) -> None:
        if self.type not in ("Pods", "Percent"):
            raise ValueError(f"rate policy type must be Pods or Percent, not {self.type!r}")
        if self.value < 1:
            raise ValueError(f"rate policy value must be >= 1, not {self.value}")
        if self.period_seconds < 1:
            raise ValueError(f"rate policy period must be >= 1 s, not {self.period_seconds}")


DEFAULT_SCALE_UP_POLICIES = (
    RatePolicy(type="Percent", value=100, period_seconds=15),
    RatePolicy(type="Pods", value=4, period_seconds=15),
)
"""The HPA's scale-up default: double or add four pods every 15 s, whichever is more."""

DEFAULT_SCALE_DOWN_POLICIES = (RatePolicy(type="Percent", value=100, period_seconds=15),)
"""The HPA's scale-down default: no rate limit; the 300 s window is the brake."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScalingRule:
    """Behaviour of one direction (HPA ``HPAScalingRules``)."""

    stabilization_window_seconds: int
    select_policy: SelectPolicy = "Max"
    """``Max`` allows the policy with the biggest change, ``Min`` the smallest, and
    ``Disabled`` forbids moving in this direction at all."""
    policies: tuple[RatePolicy, ...] = ()

    def __post_init__(self) -> None:
        if self.stabilization_window_seconds < 0:
            raise ValueError("stabilization window must be >= 0 s")
        if self.select_policy not in ("Max", "Min", "Disabled"):
            raise ValueError(
                f"select policy must be Max, Min or Disabled, not {self.select_policy!r}"
            )
        if not self.policies and self.select_policy != "Disabled":
            raise ValueError("a scaling rule needs at least one rate policy unless Disabled")


def default_scale_up() -> ScalingRule:
    """HPA's default scale-up behaviour: no window, fast policies."""
    return ScalingRule(stabilization_window_seconds=0, policies=DEFAULT_SCALE_UP_POLICIES)


def default_scale_down() -> ScalingRule:
    """HPA's default scale-down behaviour: a 300 s window, no rate limit."""
    return ScalingRule(stabilization_window_seconds=300, policies=DEFAULT_SCALE_DOWN_POLICIES)


@dataclasses.dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """Everything the user decided about one pool's scaling, already defaulted.

    Built from a WorkerPool spec and its annotations by
    ``workerpool_operator.autoscaler.policy.policy_from_spec``; tests build it directly.
    """

    min_replicas: int = 0
    max_replicas: int = 10
    target_jobs_per_replica: int = 1
    """Jobs (ready + in flight) one replica should carry; usually ``maxConcurrentJobs``."""
    worker_capacity: int | None = None
    """Jobs one worker runs at once (its prefetch). It bounds the in-flight work of a
    consumer without a heartbeat. ``None`` means ``target_jobs_per_replica``."""
    activation_threshold: int = 0
    """A pool at zero wakes only when more than this many messages are ready."""
    cooldown_seconds: int = 300
    """Seconds with nothing ready and nothing in flight before the last step to zero."""
    tolerance: float = 0.1
    """No change while ``load / (target * current)`` is within ``1 +- tolerance``."""
    scale_up: ScalingRule = dataclasses.field(default_factory=default_scale_up)
    scale_down: ScalingRule = dataclasses.field(default_factory=default_scale_down)
    fallback_failure_threshold: int = 3
    fallback_replicas: int | None = None
    """Replicas to raise the pool to after this many failed observations in a row;
    ``None`` holds the current count for as long as data is missing."""
    heartbeat_stale_seconds: float = 30.0
    """A heartbeat older than this is ignored: its worker counts as silent."""
    paused: bool = False
    """Freeze: hold the current replicas, whatever the queue says."""
    paused_replicas: int | None = None
    """Pin: move to exactly this many replicas (busy workers still survive) and stay."""

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise ValueError("min_replicas must be >= 0")
        if self.max_replicas < max(self.min_replicas, 1):
            raise ValueError("max_replicas must be >= max(min_replicas, 1)")
        if self.target_jobs_per_replica < 1:
            raise ValueError("target_jobs_per_replica must be >= 1")
        if self.worker_capacity is not None and self.worker_capacity < 1:
            raise ValueError("worker_capacity must be >= 1")
        if self.activation_threshold < 0 or self.cooldown_seconds < 0:
            raise ValueError("activation_threshold and cooldown_seconds must be >= 0")
        if not 0 <= self.tolerance < 1:
            raise ValueError("tolerance must be in [0, 1)")
        if self.fallback_failure_threshold < 1:
            raise ValueError("fallback_failure_threshold must be >= 1")
        if self.fallback_replicas is not None and self.fallback_replicas < 0:
            raise ValueError("fallback_replicas must be >= 0")
        if self.paused_replicas is not None and self.paused_replicas < 0:
            raise ValueError("paused_replicas must be >= 0")

    @property
    def capacity(self) -> int:
        """Jobs one silent consumer may hold at most."""
        return self.worker_capacity or self.target_jobs_per_replica


# --------------------------------------------------------------------------------------
# Inputs: one observation (what the poll saw)
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerHeartbeat:
    """The latest heartbeat of one worker of the pool; ``worker_id`` is its pod name."""

    worker_id: str
    in_flight: int
    capacity: int
    draining: bool
    timestamp: float
    """When the worker sent it, in the same clock as ``decide(now=...)``."""
    jobs_finished: int | None = None
    """Jobs the worker finished so far (succeeded or failed). With ``in_flight`` it counts
    every job the worker ever took, which lets ``decide`` notice deliveries that the
    heartbeats do not show yet (see ``ScalingHistory.unseen_deliveries``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PodView:
    """One pod of the pool's Deployment, as far as scale-down safety is concerned."""

    name: str
    ready: bool
    """Running with the Ready condition true."""
    terminating: bool = False
    """``deletionTimestamp`` is set: the pod is already leaving and is not a replica."""
    created_at: float | None = None
    deletion_cost: int | None = None
    """The current ``controller.kubernetes.io/pod-deletion-cost``, to patch only changes."""


@dataclasses.dataclass(frozen=True, slots=True)
class ObservationFailure:
    """Why the queue statistics are missing; ``reason`` is CamelCase for the condition."""

    reason: str
    """``BrokerUnreachable``, ``QueueNotFound``, ``StatsStale`` ..."""
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """What one poll saw. ``failure`` set means the queue numbers are not to be trusted."""

    current_replicas: int
    """The Deployment's ``spec.replicas`` right now."""
    ready_messages: int = 0
    consumers: int = 0
    heartbeats: tuple[WorkerHeartbeat, ...] = ()
    pods: tuple[PodView, ...] = ()
    failure: ObservationFailure | None = None
    dead_letters: int | None = None
    """DLQ depth, reported only; it never drives replicas."""


# --------------------------------------------------------------------------------------
# History: what earlier decisions left behind
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Recommendation:
    """One raw (pre-stabilization) recommendation, for the stabilization windows."""

    at: float
    replicas: int


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleEvent:
    """One applied change of replicas, for the rate policies."""

    at: float
    delta: int


@dataclasses.dataclass(frozen=True, slots=True)
class ScalingHistory:
    """The memory :func:`decide` needs between polls; immutable, returned updated.

    The runtime keeps it in memory only. If a replica patch fails, it keeps the old
    history and the next poll decides again. Losing it (operator restart) is safe:
    the new history holds the current count for a scale-down window.
    """

    started_at: float | None = None
    """The first decision of this history; ``None`` before any."""
    recommendations: tuple[Recommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()
    last_active_at: float | None = None
    """The last time anything was ready or in flight (or data was missing)."""
    last_scale_at: float | None = None
    consecutive_failures: int = 0
    last_ready: int | None = None
    """Ready messages at the last poll with data, for delivery accounting."""
    jobs_taken: tuple[tuple[str, int], ...] = ()
    """Per worker, jobs finished + in flight at the last poll with data."""
    unseen_deliveries: int = 0
    """Messages that left the queue but that no heartbeat shows yet.

    Heartbeats lag by up to one interval: a worker can take a job just after reporting
    itself idle. When the ready count drops by more than the heartbeats account for
    (more in flight, more finished), the difference is in flight somewhere unseen. It
    counts as load, and no heartbeat-idle worker is removable until it is accounted for
    or ``heartbeat_stale_seconds`` pass.
    """
    unseen_since: float | None = None


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ConditionInfo:
    """A condition's payload; the runtime adds observedGeneration and transition time."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class DeletionCost:
    """Set ``controller.kubernetes.io/pod-deletion-cost`` of ``pod`` to ``cost``."""

    pod: str
    cost: int


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What to do now, why, and the history to pass to the next call."""

    replicas: int
    current_replicas: int
    mode: Mode
    reason: str
    """One line for the decision log and the Event."""
    scaling_active: ConditionInfo
    scaling_limited: ConditionInfo
    history: ScalingHistory
    ready_messages: int | None
    in_flight: int | None
    in_flight_source: Literal["heartbeats", "consumers", "mixed", "none", "unknown"]
    consumers: int | None
    recommended: int | None
    """The raw recommendation before stabilization, bounds and limits."""
    dead_letters: int | None = None
    busy_pods: tuple[str, ...] = ()
    idle_pods: tuple[str, ...] = ()
    """Pods safe to remove, in the order they would be removed."""
    victims: tuple[str, ...] = ()
    """The pods this scale-down removes (a prefix of ``idle_pods``)."""
    deletion_costs: tuple[DeletionCost, ...] = ()
    """Annotation patches to apply *before* lowering replicas; only changed values."""

    @property
    def direction(self) -> Direction:
        if self.replicas > self.current_replicas:
            return "up"
        if self.replicas < self.current_replicas:
            return "down"
        return "none"


# --------------------------------------------------------------------------------------
# The decision
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Workers:
    """The pool's workers sorted into what the decision needs."""

    in_flight: int
    source: Literal["heartbeats", "consumers", "mixed", "none"]
    unseen: int
    busy: tuple[str, ...]
    removable: tuple[str, ...]
    missing: int
    """Replicas without any pod yet (the ReplicaSet has not created them)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    """The inputs of one call that do not change while it runs."""

    policy: ScalingPolicy
    observation: Observation
    workers: _Workers
    now: float


def decide(
    policy: ScalingPolicy,
    observation: Observation,
    history: ScalingHistory,
    now: float,
) -> Decision:
    """Decide the pool's replicas for this poll. Pure: same inputs, same decision."""
    if history.started_at is None:
        history = dataclasses.replace(history, started_at=now, last_active_at=now)
    unseen = 0
    if observation.failure is None:
        history = _account(policy, observation, history, now)
        unseen = history.unseen_deliveries
    ctx = _Context(policy, observation, _classify_workers(policy, observation, unseen, now), now)
    # Activity is tracked in every mode, so the cooldown never expires during a pause
    # or an outage; missing data counts as activity.
    if observation.failure is not None or observation.ready_messages + ctx.workers.in_flight:
        history = dataclasses.replace(history, last_active_at=now)
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

    stabilized = _stabilize(policy, history, current, recommended, now)
    if stabilized != recommended:
        notes.append(f"stabilized at {stabilized}")

    if stabilized == 0 < current:
        quiet_since = history.last_active_at if history.last_active_at is not None else now
        remaining = policy.cooldown_seconds - (now - quiet_since)
        if remaining > 0:
            stabilized = 1
            notes.append(f"idle, zero after cooldown ({math.ceil(remaining)}s left)")

    limited_to, limit = _limit(policy, history, current, stabilized, now)
    if limited_to != stabilized:
        notes.append(f"limited to {limited_to} ({limit.reason})")

    replicas, victims = _drain_bound(current, limited_to, workers)
    if replicas != limited_to:
        limit = _limited(
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
            "ScalingActive",
            "True",
            "ValidMetric",
            f"queue depth and in-flight work read ({workers.source})",
        ),
        limited=limit,
        victims=victims,
        recommended=recommended,
    )


def _decide_pinned(ctx: _Context, history: ScalingHistory, pinned: int) -> Decision:
    """Move to the pinned count, still never removing a busy worker.

    The pin ignores [min, max] as KEDA's ``paused-replicas`` does: it is an explicit
    order. It does not override the never-kill-busy guarantee; a pin below the busy
    count is reached as workers finish.
    """
    replicas, victims = _drain_bound(ctx.observation.current_replicas, pinned, ctx.workers)
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
    )


def _decide_without_data(
    ctx: _Context,
    history: ScalingHistory,
    failure: ObservationFailure,
) -> Decision:
    """Hold on missing data; raise (never lower) to the fallback after N failures."""
    policy = ctx.policy
    failures = history.consecutive_failures + 1
    history = dataclasses.replace(history, consecutive_failures=failures)
    current = ctx.observation.current_replicas
    replicas = current
    mode: Mode = "hold"
    reason = f"{failure.reason}: holding {current} replicas ({failures} failed polls in a row)"
    if policy.fallback_replicas is not None and failures >= policy.fallback_failure_threshold:
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
        active=ConditionInfo("ScalingActive", "False", failure.reason, failure.message),
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
) -> ScalingHistory:
    """Update the delivery accounting (``ScalingHistory.unseen_deliveries``).

    Messages that left the ready count since the last poll were delivered to some worker
    (publishes only raise the count, so the drop is a lower bound). Deliveries the
    heartbeats show are the growth of each worker's jobs taken (finished + in flight).
    What is left over is in flight but unseen. It carries over to later polls until the
    heartbeats catch up, or until ``heartbeat_stale_seconds`` pass (a purge or an expiry
    also lowers the ready count without any delivery).
    """
    fresh = _fresh(policy, observation, now)
    if any(hb.jobs_finished is None for hb in fresh.values()):
        return dataclasses.replace(history, last_ready=observation.ready_messages)
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
    return dataclasses.replace(
        history,
        last_ready=observation.ready_messages,
        jobs_taken=tuple(sorted(taken.items())),
        unseen_deliveries=unseen,
        unseen_since=since,
    )


def _classify_workers(
    policy: ScalingPolicy, observation: Observation, unseen: int, now: float
) -> _Workers:
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
    return _Workers(
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


def _stabilize(
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


def _limit(
    policy: ScalingPolicy,
    history: ScalingHistory,
    current: int,
    wanted: int,
    now: float,
) -> tuple[int, ConditionInfo]:
    """Clamp to [min, max] and the rate policies; say which limit bit."""
    if wanted > current:
        ceiling = _scale_up_limit(policy.scale_up, history, current, now)
        if policy.max_replicas <= ceiling:
            ceiling, why = policy.max_replicas, "TooManyReplicas"
        elif policy.scale_up.select_policy == "Disabled":
            why = "ScaleUpDisabled"
        else:
            why = "ScaleUpLimit"
        if wanted > ceiling:
            return ceiling, _limited(why, f"wanted {wanted}, allowed {ceiling}")
        return wanted, _not_limited()
    if wanted < current:
        floor = _scale_down_limit(policy.scale_down, history, current, now)
        if policy.min_replicas >= floor:
            floor, why = policy.min_replicas, "TooFewReplicas"
        elif policy.scale_down.select_policy == "Disabled":
            why = "ScaleDownDisabled"
        else:
            why = "ScaleDownLimit"
        if wanted < floor:
            return floor, _limited(why, f"wanted {wanted}, allowed {floor}")
        return wanted, _not_limited()
    if current > policy.max_replicas:
        return policy.max_replicas, _limited("TooManyReplicas", f"above max {policy.max_replicas}")
    if current < policy.min_replicas:
        return policy.min_replicas, _limited("TooFewReplicas", f"below min {policy.min_replicas}")
    return current, _not_limited()


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


def _scale_up_limit(rule: ScalingRule, history: ScalingHistory, current: int, now: float) -> int:
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


def _scale_down_limit(rule: ScalingRule, history: ScalingHistory, current: int, now: float) -> int:
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


def _drain_bound(current: int, wanted: int, workers: _Workers) -> tuple[int, tuple[str, ...]]:
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
    )
    data = observation.failure is None
    ready = observation.ready_messages if data else None
    return Decision(
        replicas=replicas,
        current_replicas=current,
        mode=mode,
        reason=reason,
        scaling_active=active,
        scaling_limited=limited or _not_limited(),
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
    )


def _limited(reason: str, message: str) -> ConditionInfo:
    return ConditionInfo("ScalingLimited", "True", reason, message)


def _not_limited() -> ConditionInfo:
    return ConditionInfo("ScalingLimited", "False", "DesiredWithinRange", "no limit applied")


def _paused(message: str) -> ConditionInfo:
    return ConditionInfo("ScalingActive", "False", "ScalingPaused", message)
