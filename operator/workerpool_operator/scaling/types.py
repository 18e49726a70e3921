"""The vocabulary of autoscaling: policy, observation, history and decision.

Plain frozen dataclasses, shared by ``decision`` (which computes), ``limits`` (which bounds)
and their callers. ``ScalingPolicy()`` holds the one set of defaults; the WorkerPool API
(``workerpool_operator.api``) takes its CRD defaults from it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

IDLE_DELETION_COST = -1000
"""pod-deletion-cost of a pod chosen for removal: the ReplicaSet deletes it first."""

BUSY_DELETION_COST = 1000
"""pod-deletion-cost of every pod that must survive a scale-down (busy or simply kept).

Two fixed values instead of a cost per job age: the annotation is best-effort and each
change is a pod update, so costs change only when a pod moves between the two groups.
"""

SCALING_ACTIVE = "ScalingActive"
"""Condition type: queue statistics are being read and acted on (reason says why not)."""
SCALING_LIMITED = "ScalingLimited"
"""Condition type: a bound, a rate policy or busy workers kept replicas from the wish."""

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
    """Failed observations in a row before ``ScalingActive`` turns False and the fallback
    applies. Fewer are a blip: replicas hold and the condition keeps its last state, so a
    slow broker (one read timing out now and then) does not flip the condition, and write
    status, for every pool at once."""
    fallback_replicas: int | None = None
    """Replicas to raise the pool to after ``fallback_failure_threshold`` failed
    observations in a row; ``None`` holds the current count for as long as data is
    missing."""
    heartbeat_stale_seconds: float = 30.0
    """A heartbeat older than this is ignored: its worker counts as silent. The SDK already
    expires a worker after three missed intervals (6 s by default); this is the backstop if
    its clock or monitor lags."""
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
    last_arrival_at: float | None = None
    """The last time work arrived: anything ready, a delivery since the last poll, work in
    flight whose deliveries cannot be counted, or missing data.

    It measures how long the pool has been quiet. Once no work has arrived for a
    scale-down window, what is still in flight is a tail that will not grow: the window
    has served its purpose and each worker may go as soon as it is idle (never before).
    The cooldown to zero counts from it too, as KEDA's counts from its last active poll.
    """
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
    active: ConditionInfo | None = None
    """``ScalingActive`` as the last decision left it: a failed observation below the
    failure threshold keeps it."""


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
    failure: ObservationFailure | None = None
    """What this poll could not read, also while ``scaling_active`` still shows its last
    state (fewer failures in a row than the threshold)."""
    held_by_busy_workers: bool = False
    """The drain-aware bound kept replicas above the count wanted: the next worker to turn
    idle can go at once, so the runtime polls again as soon as one does."""

    @property
    def direction(self) -> Direction:
        if self.replicas > self.current_replicas:
            return "up"
        if self.replicas < self.current_replicas:
            return "down"
        return "none"
