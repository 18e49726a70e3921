"""The two load shapes of the throughput benchmark, shared by every client process.

Standard library only: the benchmark's own process and each peer's client process (which
runs from the peers' virtualenv, see ``tools/bench/peers.sh``) drive their jobs with the same
code, so no system is measured with a kinder loop than another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def closed_loop(
    one_job: Callable[[], Awaitable[None]], jobs: int, concurrency: int
) -> tuple[float, list[float]]:
    """``concurrency`` lanes each submit a job and wait for its result, until ``jobs`` ran."""
    latencies: list[float] = []
    remaining = iter(range(jobs))

    async def lane() -> None:
        for _ in remaining:
            started = time.perf_counter()
            await one_job()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def on_schedule(
    start: Callable[[float], Awaitable[None]], rate: float, seconds: float
) -> float:
    """Starts ``start(scheduled)`` ``rate`` times a second for ``seconds``, each at its
    scheduled moment however long earlier ones take; waits for all; returns the first
    moment."""
    count = max(1, int(rate * seconds))
    tasks: list[asyncio.Task[None]] = []
    begin = time.perf_counter() + 0.01
    for i in range(count):
        scheduled = begin + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(start(scheduled)))
    await asyncio.gather(*tasks)
    return begin


async def open_loop(
    one_job: Callable[[], Awaitable[None]], rate: float, seconds: float
) -> tuple[float, list[float]]:
    """Submits on a fixed schedule (``rate`` per second); latency counts from the schedule."""
    latencies: list[float] = []

    async def timed(scheduled: float) -> None:
        await one_job()
        latencies.append(time.perf_counter() - scheduled)

    begin = await on_schedule(timed, rate, seconds)
    return time.perf_counter() - begin, latencies
