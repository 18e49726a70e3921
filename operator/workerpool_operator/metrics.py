"""Prometheus metrics of the operator itself (reconciles, errors, durations, pools).

Bound to an injectable registry so tests get isolated counters; ``serve`` exposes the
default registry on the metrics port.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start_http_server


class OperatorMetrics:
    """The operator's metric families, registered once per registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else REGISTRY
        self.reconciles = Counter(
            "workerpool_operator_reconciles",
            "WorkerPool reconciles, by result (success or failure).",
            ["result"],
            registry=registry,
        )
        self.errors = Counter(
            "workerpool_operator_reconcile_errors",
            "Failed WorkerPool reconciles, by Degraded reason.",
            ["reason"],
            registry=registry,
        )
        self.duration = Histogram(
            "workerpool_operator_reconcile_duration_seconds",
            "Time of one WorkerPool reconcile.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.pools = Gauge(
            "workerpool_operator_pools",
            "WorkerPools the operator watches.",
            registry=registry,
        )
        self.applies = Counter(
            "workerpool_operator_applies",
            "Children written with server-side apply, by kind and action (created, updated).",
            ["kind", "action"],
            registry=registry,
        )
        self.drift_repairs = Counter(
            "workerpool_operator_drift_repairs",
            "Children restored after they were edited or deleted outside the operator.",
            ["kind"],
            registry=registry,
        )


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve the default registry on ``address:port`` (a daemon thread)."""
    _start_http_server(port, addr=address)
