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
   window, so an operator restart never looks like permission to scale down. Once no work
   has arrived for a whole scale-down window, the target is zero: the work in flight is a
   tail, and step 8 lets each worker go as soon as it is idle.
6. **Cooldown.** The last step to zero waits until no work has arrived for
   ``cooldown_seconds`` (``ScalingHistory.last_arrival_at``).
7. **Bounds and rate policies** (HPA): clamp to ``[min_replicas, max_replicas]`` and to the
   Pods/Percent-per-period limits chosen by ``select_policy``.
8. **Drain-aware bound.** Replicas never drop by more than the number of pods that are safe
   to remove: idle workers, pods that are not Ready and never reported work, and replicas
   whose pods do not exist yet. The idle pods to delete get the lowest
   ``controller.kubernetes.io/pod-deletion-cost``, every other pod the highest, so the
   ReplicaSet removes exactly the idle ones.

``docs/autoscaling.md`` explains the same with a worked example.
"""

from workerpool_operator.scaling.decision import decide
from workerpool_operator.scaling.types import (
    BUSY_DELETION_COST,
    DEFAULT_SCALE_DOWN_POLICIES,
    DEFAULT_SCALE_UP_POLICIES,
    IDLE_DELETION_COST,
    SCALING_ACTIVE,
    SCALING_LIMITED,
    ConditionInfo,
    ConditionStatus,
    Decision,
    DeletionCost,
    Direction,
    Mode,
    Observation,
    ObservationFailure,
    PodView,
    PolicyType,
    RatePolicy,
    Recommendation,
    ScaleEvent,
    ScalingHistory,
    ScalingPolicy,
    ScalingRule,
    SelectPolicy,
    WorkerHeartbeat,
    default_scale_down,
    default_scale_up,
)

__all__ = [
    "BUSY_DELETION_COST",
    "DEFAULT_SCALE_DOWN_POLICIES",
    "DEFAULT_SCALE_UP_POLICIES",
    "IDLE_DELETION_COST",
    "SCALING_ACTIVE",
    "SCALING_LIMITED",
    "ConditionInfo",
    "ConditionStatus",
    "Decision",
    "DeletionCost",
    "Direction",
    "Mode",
    "Observation",
    "ObservationFailure",
    "PodView",
    "PolicyType",
    "RatePolicy",
    "Recommendation",
    "ScaleEvent",
    "ScalingHistory",
    "ScalingPolicy",
    "ScalingRule",
    "SelectPolicy",
    "WorkerHeartbeat",
    "decide",
    "default_scale_down",
    "default_scale_up",
]
