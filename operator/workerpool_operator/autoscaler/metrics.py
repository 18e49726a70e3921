"""Prometheus metrics of the autoscaler, one series per pool (namespace, pool labels).

Registered on an injectable registry like ``workerpool_operator.metrics`` (tests get
isolated series); the operator's metrics endpoint serves the default registry, so these
appear next to the reconcile metrics. ``forget`` drops a deleted pool's series so the
endpoint does not grow with every pool ever seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from workerpool_operator import scaling
from workerpool_operator.autoscaler import observe

POOL_LABELS = ("namespace", "pool")

UNREACHABLE_REASONS = frozenset(
    {observe.BROKER_UNREACHABLE, observe.STATS_TIMEOUT, observe.BROKER_SECRET_MISSING}
)
"""Observation failures that mean the pool's broker could not be asked at all."""
MODES: tuple[str, ...] = typing.get_args(scaling.Mode)


@dataclasses.dataclass(slots=True)
class _PoolSeries:
    """One pool's gauges, each already bound to its labels, and the values they were set to
    (a poll that changes nothing sets nothing: most polls of most pools)."""

    desired: Gauge
    ready_replicas: Gauge
    max_capacity: Gauge
    modes: dict[str, Gauge]
    broker_reachable: Gauge
    busy_workers: Gauge
    queue_ready: Gauge
    in_flight: Gauge
    consumers: Gauge
    dead_letters: Gauge
    last: tuple[object, ...] | None = None


class AutoscalerMetrics:
    """The autoscaler's metric families."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else REGISTRY
        self.queue_ready = Gauge(
            "workerpool_queue_ready_messages",
            "Messages waiting in the pool's queue at the last poll.",
            POOL_LABELS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "workerpool_in_flight_jobs",
            "Jobs the pool's workers run (heartbeats; silent consumers counted as full).",
            POOL_LABELS,
            registry=registry,
        )
        self.consumers = Gauge(
            "workerpool_queue_consumers",
            "Consumers attached to the pool's queue.",
            POOL_LABELS,
            registry=registry,
        )
        self.dead_letters = Gauge(
            "workerpool_dead_letter_messages",
            "Messages in the dead-letter queue (shared by pools on the same broker).",
            POOL_LABELS,
            registry=registry,
        )
        self.desired = Gauge(
            "workerpool_desired_replicas",
            "Replicas the autoscaler decided at the last poll.",
            POOL_LABELS,
            registry=registry,
        )
        self.ready_replicas = Gauge(
            "workerpool_ready_replicas",
            "The pool's pods that are Ready and not terminating, at the last poll.",
            POOL_LABELS,
            registry=registry,
        )
        self.max_capacity = Gauge(
            "workerpool_max_capacity_jobs",
            "Jobs the pool runs at once at maxReplicas (maxReplicas x jobs per replica).",
            POOL_LABELS,
            registry=registry,
        )
        self.mode = Gauge(
            "workerpool_scaling_mode",
            "1 for the mode of the last decision (auto, paused, pinned; hold and fallback "
            "when the queue could not be read: ScalingActive False), 0 for the others.",
            (*POOL_LABELS, "mode"),
            registry=registry,
        )
        self.broker_reachable = Gauge(
            "workerpool_broker_reachable",
            "1 when the last poll reached the pool's broker, 0 when it could not.",
            POOL_LABELS,
            registry=registry,
        )
        self.busy_workers = Gauge(
            "workerpool_busy_workers",
            "Pods running jobs (or silent while Ready), never removed by a scale-down.",
            POOL_LABELS,
            registry=registry,
        )
        self.scale_events = Counter(
            "workerpool_scale_events",
            "Replica changes made by the autoscaler, by direction (up, down).",
            (*POOL_LABELS, "direction"),
            registry=registry,
        )
        self.poll_errors = Counter(
            "workerpool_autoscaler_poll_errors",
            "Polls without usable queue statistics, by reason.",
            (*POOL_LABELS, "reason"),
            registry=registry,
        )
        self.poll_duration = Histogram(
            "workerpool_autoscaler_poll_duration_seconds",
            "Time of one poll: broker read, decision and writes.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self._seen: dict[tuple[str, str], _PoolSeries] = {}
        self._reasons: dict[tuple[str, str], set[str]] = {}

    def _series(self, labels: tuple[str, str]) -> _PoolSeries:
        """The pool's labelled series, looked up once: ``labels()`` hashes and locks per call,
        and a poll sets a dozen series (1000 pools: 500 polls a second)."""
        series = self._seen.get(labels)
        if series is None:
            series = self._seen[labels] = _PoolSeries(
                desired=self.desired.labels(*labels),
                ready_replicas=self.ready_replicas.labels(*labels),
                max_capacity=self.max_capacity.labels(*labels),
                modes={mode: self.mode.labels(*labels, mode) for mode in MODES},
                broker_reachable=self.broker_reachable.labels(*labels),
                busy_workers=self.busy_workers.labels(*labels),
                queue_ready=self.queue_ready.labels(*labels),
                in_flight=self.in_flight.labels(*labels),
                consumers=self.consumers.labels(*labels),
                dead_letters=self.dead_letters.labels(*labels),
            )
        return series

    def record(
        self,
        namespace: str,
        pool: str,
        decision: scaling.Decision,
        *,
        ready_replicas: int,
        max_capacity: int,
    ) -> None:
        """Update the pool's series from one decision and the pods it saw."""
        labels = (namespace, pool)
        series = self._series(labels)
        failure = decision.failure
        unreachable = failure is not None and failure.reason in UNREACHABLE_REASONS
        values = (
            decision.replicas,
            ready_replicas,
            max_capacity,
            decision.mode,
            unreachable,
            len(decision.busy_pods),
            decision.ready_messages,
            decision.in_flight,
            decision.consumers,
            decision.dead_letters,
        )
        if values != series.last:
            series.last = values
            series.desired.set(decision.replicas)
            series.ready_replicas.set(ready_replicas)
            series.max_capacity.set(max_capacity)
            for mode, gauge in series.modes.items():
                gauge.set(mode == decision.mode)
            series.broker_reachable.set(not unreachable)
            series.busy_workers.set(len(decision.busy_pods))
            if decision.ready_messages is not None:
                series.queue_ready.set(decision.ready_messages)
                series.in_flight.set(decision.in_flight or 0)
                series.consumers.set(decision.consumers or 0)
            if decision.dead_letters is not None:
                series.dead_letters.set(decision.dead_letters)
        if decision.direction != "none":
            self.scale_events.labels(*labels, decision.direction).inc()
        if failure is not None:
            self._reasons.setdefault(labels, set()).add(failure.reason)
            self.poll_errors.labels(*labels, failure.reason).inc()

    def forget(self, namespace: str, pool: str) -> None:
        """Remove every series of a pool that is gone or no longer autoscaled."""
        labels = (namespace, pool)
        if self._seen.pop(labels, None) is None:
            return
        for gauge in (
            self.queue_ready,
            self.in_flight,
            self.consumers,
            self.dead_letters,
            self.desired,
            self.ready_replicas,
            self.max_capacity,
            self.broker_reachable,
            self.busy_workers,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
        for mode in MODES:
            with contextlib.suppress(KeyError):
                self.mode.remove(*labels, mode)
        for direction in ("up", "down"):
            with contextlib.suppress(KeyError):
                self.scale_events.remove(*labels, direction)
        for reason in self._reasons.pop(labels, set()):
            with contextlib.suppress(KeyError):
                self.poll_errors.remove(*labels, reason)
