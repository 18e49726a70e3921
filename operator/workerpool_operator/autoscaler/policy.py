"""From a WorkerPool spec and its annotations to a ``scaling.ScalingPolicy``.

``scaling`` knows nothing about the CRD's shape; this module is the one translation
between the two, called by the poll loop before every decision, so a spec or annotation
change takes effect at the next poll. Pure: no I/O.

Pause annotations follow KEDA's (``autoscaling.keda.sh/paused`` and friends) under the
operator's own group, so KEDA users find them where they expect:

``autoscaling.controlplane.itlusions.com/paused: "true"``
    freeze: hold the current replicas.
``autoscaling.controlplane.itlusions.com/paused-replicas: "<n>"``
    pin: move to n replicas, clamped to [minReplicas, maxReplicas] (busy workers still
    finish first) and stay there.
``autoscaling.controlplane.itlusions.com/paused-scale-in: "true"`` / ``paused-scale-out``
    forbid one direction (the HPA's ``selectPolicy: Disabled``).
"""

from __future__ import annotations

from collections.abc import Mapping

from workerpool_operator import api, scaling

ANNOTATION_PREFIX = f"autoscaling.{api.GROUP}/"
PAUSED = f"{ANNOTATION_PREFIX}paused"
PAUSED_REPLICAS = f"{ANNOTATION_PREFIX}paused-replicas"
PAUSED_SCALE_IN = f"{ANNOTATION_PREFIX}paused-scale-in"
PAUSED_SCALE_OUT = f"{ANNOTATION_PREFIX}paused-scale-out"


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"true", "1", "yes", "on"}


def _rule(
    rules: api.ScaleUpRules | api.ScaleDownRules,
    *,
    defaults: tuple[scaling.RatePolicy, ...],
    disabled: bool,
) -> scaling.ScalingRule:
    """One direction's rule; an empty policy list means the HPA defaults, not "no limit"."""
    rates = tuple(
        scaling.RatePolicy(type=p.type, value=p.value, period_seconds=p.period_seconds)
        for p in rules.policies
    )
    return scaling.ScalingRule(
        stabilization_window_seconds=rules.stabilization_window_seconds,
        select_policy="Disabled" if disabled else rules.select_policy,
        policies=rates or defaults,
    )


def pinned_replicas(annotations: Mapping[str, str]) -> tuple[int | None, bool]:
    """The paused-replicas pin and whether it was readable.

    An unreadable pin (``"three"``) freezes the pool instead of being ignored: the user
    clearly asked scaling to stop, just not how.
    """
    raw = annotations.get(PAUSED_REPLICAS)
    if raw is None:
        return None, True
    try:
        value = int(raw.strip())
    except ValueError:
        return None, False
    return (value, True) if value >= 0 else (None, False)


def _within(pinned: int | None, low: int, high: int) -> int | None:
    """A pin inside [min, max]: the operator clamps ``replicaCount`` to those bounds anyway
    (``api.desired_replicas``), so a pin outside them could never take effect."""
    return None if pinned is None else max(low, min(high, pinned))


def policy_from_spec(
    spec: api.WorkerPoolSpec,
    annotations: Mapping[str, str] | None = None,
) -> scaling.ScalingPolicy:
    """The scaling policy a pool asks for right now (spec plus pause annotations)."""
    annotations = annotations or {}
    auto = spec.autoscaling
    pinned, readable = pinned_replicas(annotations)
    up_rules = _rule(
        auto.scale_up,
        defaults=scaling.DEFAULT_SCALE_UP_POLICIES,
        disabled=_truthy(annotations.get(PAUSED_SCALE_OUT)),
    )
    down_rules = _rule(
        auto.scale_down,
        defaults=scaling.DEFAULT_SCALE_DOWN_POLICIES,
        disabled=_truthy(annotations.get(PAUSED_SCALE_IN)),
    )
    return scaling.ScalingPolicy(
        min_replicas=auto.min_replicas,
        max_replicas=max(auto.max_replicas, auto.min_replicas, 1),
        target_jobs_per_replica=api.target_jobs_per_replica(spec),
        worker_capacity=spec.max_concurrent_jobs,
        activation_threshold=auto.activation_threshold,
        cooldown_seconds=auto.cooldown_seconds,
        tolerance=min(auto.tolerance, 0.99),
        scale_up=up_rules,
        scale_down=down_rules,
        fallback_failure_threshold=auto.fallback.failure_threshold,
        fallback_replicas=auto.fallback.replicas,
        paused=_truthy(annotations.get(PAUSED)) or not readable,
        paused_replicas=_within(pinned, auto.min_replicas, auto.max_replicas),
    )
