"""Where the CPU goes during a benchmark: named processes and the whole machine, per phase.

Why: on a shared two-core machine "the control plane is the limit" is a claim until the CPU of
each component is measured next to what the machine had. A thread reads ``/proc/<pid>/stat`` of
every named process and ``/proc/stat`` (all cores, every process on the machine) once a second;
``mark`` closes a phase. The report gives, per phase, each process's CPU seconds and share of the
machine (100 % = every core busy), the machine's busy share, and the rest of the machine's load
(neighbours, the benchmark's own client) as ``other``. Standard library only.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from the first line of ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / TICKS, total / TICKS


@dataclass(frozen=True)
class Sample:
    at: float
    machine_busy: float
    machine_total: float
    processes: dict[str, float]


class CpuSampler:
    """Samples ``pids`` (name -> pid) and the machine every ``interval`` s until ``stop``."""

    def __init__(self, pids: Mapping[str, int], interval: float = 1.0) -> None:
        self._pids = dict(pids)
        self._interval = interval
        self._samples: list[Sample] = []
        self._marks: list[tuple[str, Sample]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._lock = threading.Lock()

    def _sample(self) -> Sample:
        busy, total = machine_cpu_seconds()
        processes = {name: process_cpu_seconds(pid) for name, pid in self._pids.items()}
        return Sample(time.monotonic(), busy, total, processes)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            sample = self._sample()
            with self._lock:
                self._samples.append(sample)

    def start(self) -> None:
        self._marks.append(("start", self._sample()))
        self._thread.start()

    def mark(self, phase: str) -> None:
        """Close the phase that ends now and name it ``phase``."""
        self._marks.append((phase, self._sample()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def phases(self) -> dict[str, dict[str, object]]:
        """Per phase: wall seconds, each process's CPU seconds and % of the machine, the
        machine's busy %, ``other`` (busy CPU not in a named process), and the share of the
        phase's 1 s samples in which the machine was at least 95 % busy."""
        report: dict[str, dict[str, object]] = {}
        with self._lock:
            samples = list(self._samples)
        for (_, begin), (name, end) in itertools.pairwise(self._marks):
            report[name] = _phase(begin, end, [s for s in samples if begin.at < s.at <= end.at])
        return report

    def timeline(self) -> list[dict[str, float]]:
        """Per-second rows: seconds since start, the machine's busy % and each process's %
        of the machine over the second before (for plotting or a closer look)."""
        with self._lock:
            samples = [self._marks[0][1], *self._samples]
        rows = []
        for before, after in itertools.pairwise(samples):
            total = after.machine_total - before.machine_total
            if total <= 0:
                continue
            row = {
                "t": round(after.at - samples[0].at, 1),
                "machine": _pct(after.machine_busy - before.machine_busy, total),
            }
            for name, cpu in after.processes.items():
                row[name] = _pct(cpu - before.processes.get(name, 0.0), total)
            rows.append(row)
        return rows


def _pct(cpu: float, total: float) -> float:
    return round(100 * cpu / total, 1) if total > 0 else 0.0


def _phase(begin: Sample, end: Sample, inside: list[Sample]) -> dict[str, object]:
    total = end.machine_total - begin.machine_total
    busy = end.machine_busy - begin.machine_busy
    processes = {
        name: end.processes[name] - begin.processes.get(name, 0.0) for name in end.processes
    }
    named = sum(processes.values())
    saturated = 0
    for before, after in itertools.pairwise([begin, *inside]):
        step = after.machine_total - before.machine_total
        if step > 0 and (after.machine_busy - before.machine_busy) / step >= 0.95:
            saturated += 1
    return {
        "wall_s": round(end.at - begin.at, 1),
        "machine_busy_pct": _pct(busy, total),
        "cpu_s": {name: round(cpu, 1) for name, cpu in processes.items()}
        | {"other": round(busy - named, 1)},
        "pct_of_machine": {name: _pct(cpu, total) for name, cpu in processes.items()}
        | {"other": _pct(busy - named, total)},
        "seconds_at_95pct_busy": f"{saturated} of {len(inside)}",
    }
