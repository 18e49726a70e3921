"""The client side of a peer in the throughput benchmark: one process, driven over stdin.

Each peer (dramatiq, taskiq, Celery, FastStream) runs its client in a process of its own,
from the peers' virtualenv, so the project's environment never imports them. The benchmark
sends one JSON command per line on stdin and reads one JSON answer per line on stdout:

``{"cmd": "closed", "jobs": N, "in_flight": L}``
    a closed-loop round; answers ``{"seconds": S, "latencies": [...]}``
``{"cmd": "open", "rate": R, "seconds": S}``
    an open-loop round at a fixed rate; same answer
``{"cmd": "rss"}``
    answers ``{"rss_kib": K}``

The first line the process prints is ``{"ready": true}`` once its client is connected.
Standard library only (it runs beside any peer's dependencies).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

from _loops import closed_loop, open_loop


class Peer(Protocol):
    """What a peer's client offers the driver: start and close, and ``one_job()`` (submit one
    job and await its result) for the loops of ``_loops``.

    A client that cannot run one job per coroutine (Celery's, whose result consumer is not
    thread-safe) offers ``closed(jobs, in_flight)`` and ``open(rate, seconds)`` instead, with
    the same meaning as those loops; the driver then uses them.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def serve(peer: Peer) -> None:
    """Starts the peer, then answers commands from stdin until it closes.

    Answers go to the original stdout; ``sys.stdout`` is pointed at stderr first, so a
    library that prints cannot corrupt the protocol.
    """
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr
    await peer.start()
    # As the benchmark's own process does for raw's and ours' clients once they are connected
    # (and the SDK's processes at start-up): start-up objects out of the collector's sight.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    closed = getattr(peer, "closed", None) or partial(closed_loop, getattr(peer, "one_job", None))
    open_ = getattr(peer, "open", None) or partial(open_loop, getattr(peer, "one_job", None))

    def answer(payload: dict[str, object]) -> None:
        out.write(json.dumps(payload) + "\n")
        out.flush()

    answer({"ready": True})
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            run: Awaitable[tuple[float, list[float]]]
            if command["cmd"] == "closed":
                run = closed(command["jobs"], command["in_flight"])
            elif command["cmd"] == "open":
                run = open_(command["rate"], command["seconds"])
            elif command["cmd"] == "rss":
                answer({"rss_kib": rss_kib()})
                continue
            else:
                raise ValueError(f"unknown command {command!r}")
            seconds, latencies = await run
            answer({"seconds": seconds, "latencies": latencies})
    finally:
        await peer.close()


def main(make_peer: Callable[[], Peer]) -> None:
    """Runs the driver on uvloop when the peer's environment has it, as our clients run."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(make_peer()))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(make_peer()))
