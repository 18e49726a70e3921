"""Per-job stage stamps, event-loop lag and GC pauses of one process of ``latency_stages.py``.

Installed into the SDK's client (the benchmark's own process) and into one SDK worker
(``_stage_worker.py``) by wrapping a few SDK methods from the outside, so the SDK's hot path
carries no instrumentation of its own. Every stamp is ``time.perf_counter()``, which on Linux
is ``CLOCK_MONOTONIC``: one clock for every process of the machine, so a stamp taken in the
worker and one taken in the client subtract.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

LAG_INTERVAL = 0.002
"""How often the loop-lag probe asks to wake up; its lateness is the loop's lag."""


class Stamps:
    """``job id -> stage -> first time seen``, plus the loop's lag and the collector's pauses."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, float]] = defaultdict(dict)
        self.lags: list[tuple[float, float]] = []  # (when, how late) for lags over 1 ms
        self.gc_pauses: list[tuple[float, float, int]] = []  # (start, seconds, generation)
        self._gc_started = 0.0
        self._lag_task: asyncio.Task[None] | None = None

    def stamp(self, job_id: str | None, stage: str) -> None:
        if job_id:
            self.jobs[job_id].setdefault(stage, time.perf_counter())

    def watch_gc(self) -> None:
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        else:
            self.gc_pauses.append((self._gc_started, now - self._gc_started, info["generation"]))

    def watch_loop(self) -> None:
        """Starts the lag probe on the running loop (once)."""
        if self._lag_task is None:
            self._lag_task = asyncio.get_running_loop().create_task(self._probe_lag())

    async def _probe_lag(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(LAG_INTERVAL)
            late = time.perf_counter() - asked - LAG_INTERVAL
            if late > 0.001:
                self.lags.append((asked + LAG_INTERVAL, late))

    def as_dict(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "lags": self.lags, "gc_pauses": self.gc_pauses}

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict()))

    def summary(self) -> dict[str, float]:
        """The worst loop lag and GC pause since the last ``reset``, and the full collections."""
        return {
            "loop_lag_max_ms": round(max((late for _, late in self.lags), default=0.0) * 1e3, 1),
            "gc_max_ms": round(max((p for _, p, _ in self.gc_pauses), default=0.0) * 1e3, 1),
            "gc_total_ms": round(sum(p for _, p, _ in self.gc_pauses) * 1e3, 1),
            "full_gcs": sum(1 for _, _, generation in self.gc_pauses if generation == 2),
        }

    def reset(self) -> None:
        self.jobs.clear()
        self.lags.clear()
        self.gc_pauses.clear()


def wrap_async(
    owner: type, name: str, before: Callable[..., None], after: Callable[..., None] | None = None
) -> None:
    """Replaces ``owner.name`` (a coroutine method) by one that calls the hooks around it."""
    original: Callable[..., Awaitable[Any]] = getattr(owner, name)

    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        before(self, *args, **kwargs)
        result = await original(self, *args, **kwargs)
        if after is not None:
            after(self, result, *args, **kwargs)
        return result

    setattr(owner, name, wrapper)


def wrap_sync(owner: type, name: str, before: Callable[..., None]) -> None:
    """Replaces ``owner.name`` (a plain method) by one that calls ``before`` first."""
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        before(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    setattr(owner, name, wrapper)
