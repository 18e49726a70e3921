"""One round's figures (``Run``) and one system's over all its rounds (``Summary``): the
medians, the spread and the JSON form the throughput benchmark reports.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SIDES = ("client", "worker", "broker", "redis")
SEGMENTS = ("segs_from_client", "segs_to_client", "segs_from_worker", "segs_to_worker")
"""TCP data segments per job between the broker and each side (``tcp_segments``); the same
keys prefixed ``stream_`` count those on the stream protocol's port alone."""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 1000 samples is the 990th)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Run:
    """One measured round of one system: how many jobs, how long, every job's latency."""

    system: str
    phase: str
    jobs: int
    seconds: float
    latencies: list[float]
    offered_rate: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    broker_io: dict[str, float] = field(default_factory=dict)
    in_flight: int = 0
    pauses: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.jobs / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


@dataclass
class Summary:
    """Median over rounds of one system's figures, with the spread kept to show the noise."""

    peak: list[Run] = field(default_factory=list)
    half: list[Run] = field(default_factory=list)
    paced: dict[float, list[Run]] = field(default_factory=dict)
    """Open-loop rounds at the ``--paced-rates``, by offered rate (jobs/s)."""

    @staticmethod
    def _median(runs: list[Run], key: Callable[[Run], float]) -> float:
        return statistics.median(key(r) for r in runs) if runs else float("nan")

    def loads(self) -> list[int]:
        return sorted({r.in_flight for r in self.peak})

    def throughput_at(self, in_flight: int) -> float:
        return self._median(
            [r for r in self.peak if r.in_flight == in_flight], lambda r: r.throughput
        )

    @property
    def peak_load(self) -> int:
        """The client load (jobs in flight) at which this system's median rate is highest."""
        return max(self.loads(), key=self.throughput_at, default=0)

    @property
    def peak_runs(self) -> list[Run]:
        return [r for r in self.peak if r.in_flight == self.peak_load]

    @property
    def throughput(self) -> float:
        return self._median(self.peak_runs, lambda r: r.throughput)

    def broker_io_per_job(self, key: str) -> float:
        """Broker syscalls, bytes written to disk or TCP segments (``SEGMENTS``) per job at peak
        (median)."""
        runs = [r for r in self.peak_runs if key in r.broker_io]
        return self._median(runs, lambda r: r.broker_io[key] / r.jobs)

    def cpu_ms_per_job(self, side: str) -> float:
        """CPU one job costs ``side`` (client, worker, broker) at peak: robust to noise."""
        runs = [r for r in self.peak_runs if side in r.cpu]
        return self._median(runs, lambda r: r.cpu[side] / r.jobs * 1000)

    def paced_cpu_ms_per_job(self, rate: float, side: str) -> float:
        """CPU one job costs ``side`` in the rounds paced at ``rate`` (median): at a rate
        below the peak fewer jobs share a frame, a wake-up or a batch than at the peak."""
        runs = [r for r in self.paced.get(rate, []) if side in r.cpu]
        return self._median(runs, lambda r: r.cpu[side] / r.jobs * 1000)

    def spread(self, runs: list[Run], key: Callable[[Run], float], digits: int = 0) -> str:
        values = [key(r) for r in runs]
        return f"{min(values):.{digits}f}-{max(values):.{digits}f}" if values else "-"

    def as_dict(self) -> dict[str, Any]:
        def rounds(runs: list[Run]) -> list[dict[str, float | None]]:
            return [
                {
                    "jobs": r.jobs,
                    "latencies": len(r.latencies),
                    "seconds": round(r.seconds, 3),
                    "jobs_per_s": round(r.throughput, 1),
                    "p50_ms": round(r.p50_ms, 2),
                    "p99_ms": round(r.p99_ms, 2),
                    "offered_rate": r.offered_rate,
                    "in_flight": r.in_flight,
                    **({"client_pauses": r.pauses} if r.pauses else {}),
                }
                for r in runs
            ]

        return {
            "peak_jobs_per_s": round(self.throughput, 1),
            "peak_in_flight": self.peak_load,
            "jobs_per_s_by_in_flight": {n: round(self.throughput_at(n), 1) for n in self.loads()},
            "peak_p50_ms": round(self._median(self.peak_runs, lambda r: r.p50_ms), 2),
            "peak_p99_ms": round(self._median(self.peak_runs, lambda r: r.p99_ms), 2),
            "half_rate": round(self._median(self.half, lambda r: r.offered_rate or 0), 1),
            "half_p50_ms": round(self._median(self.half, lambda r: r.p50_ms), 2),
            "half_p99_ms": round(self._median(self.half, lambda r: r.p99_ms), 2),
            "cpu_ms_per_job": {side: round(self.cpu_ms_per_job(side), 3) for side in SIDES},
            "broker_per_job": {
                key: round(self.broker_io_per_job(key), 2) for key in ("syscalls", "disk_bytes")
            }
            | {
                key: round(self.broker_io_per_job(key), 2)
                for key in (*SEGMENTS, *(f"stream_{k}" for k in SEGMENTS))
            },
            "peak_rounds": rounds(self.peak),
            "half_rounds": rounds(self.half),
            "paced": {
                str(rate): {
                    "p50_ms": round(self._median(runs, lambda r: r.p50_ms), 2),
                    "p99_ms": round(self._median(runs, lambda r: r.p99_ms), 2),
                    "cpu_ms_per_job": {
                        side: round(self.paced_cpu_ms_per_job(rate, side), 3) for side in SIDES
                    },
                    "rounds": rounds(runs),
                }
                for rate, runs in self.paced.items()
            },
        }
