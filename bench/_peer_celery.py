"""Celery 5 in the throughput benchmark: threads pool, ``rpc://`` results.

Runs from the peers' virtualenv (``tools/bench/peers.sh``), never in the project's one.
The worker is Celery's own CLI (one process, threads pool, concurrency 10)::

    python -m celery -A _peer_celery worker -P threads -c 10 -Q bench.celery \
        --without-gossip --without-mingle --without-heartbeat -l WARNING

and the client is ``python _peer_celery.py`` (driven by ``_peer_driver``). Results travel
back over AMQP to the caller's reply queue (the ``rpc://`` backend, the closest Celery has to
our results stream). Gossip, mingle, worker heartbeats and remote control are off: they only
add broker chatter, so Celery is, if anything, measured slightly faster than it runs by
default. Variants (``BENCH_VARIANT``):

defaults
    durable queue, persistent task messages, prefetch multiplier 4, ack on receipt, no
    publisher confirms, transient rpc replies.
reliable
    what Celery's docs recommend when a task must not be lost: ``task_acks_late`` with
    ``task_reject_on_worker_lost`` and ``worker_prefetch_multiplier = 1``, publisher
    confirms (``broker_transport_options = {"confirm_publish": True}``) and persistent
    replies (``result_persistent``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import time
from typing import Any

from celery import Celery

QUEUE = os.environ.get("BENCH_QUEUE", "bench.celery")
VARIANT = os.environ.get("BENCH_VARIANT", "defaults")
RESULT_TIMEOUT = 30.0

app = Celery(
    "bench",
    broker=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    backend="rpc://",
)
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_expires=None,
)
if VARIANT == "reliable":
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"confirm_publish": True},
        result_persistent=True,
    )


@app.task(name="bench.noop")
def noop(request: dict[str, Any]) -> dict[str, Any]:
    """The no-op job: takes a request like our jobs carry and answers with a small dict."""
    return {"status": "completed", "name": request.get("resource_name")}


class Client:
    """A single-threaded Celery client: ``apply_async`` and the rpc backend's result consumer.

    Celery's client is synchronous and its rpc backend is not thread-safe, so instead of one
    thread per in-flight job this keeps a window of outstanding ``AsyncResult``s and drains
    the reply queue between submissions, the way ``ResultSet.join_native`` does. The rounds
    run in one worker thread so the driver's loop keeps reading its commands.
    """

    def __init__(self, request: dict[str, Any]) -> None:
        self._request = request
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    async def _in_thread(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    def _submit(self, started: float, latencies: list[float]) -> None:
        def done(_: object) -> None:
            latencies.append(time.perf_counter() - started)

        noop.apply_async(args=[self._request]).then(done)

    def _drain(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            app.backend.result_consumer.drain_events(timeout=max(timeout, 0.001))

    def _wait_all(self, latencies: list[float], expected: int) -> None:
        deadline = time.monotonic() + RESULT_TIMEOUT
        while len(latencies) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Celery: {expected - len(latencies)} results missing")
            self._drain(0.1)

    def _closed(self, jobs: int, concurrency: int) -> tuple[float, list[float]]:
        latencies: list[float] = []
        begin = time.perf_counter()
        submitted = 0
        while submitted < jobs:
            while submitted < jobs and submitted - len(latencies) < concurrency:
                self._submit(time.perf_counter(), latencies)
                submitted += 1
            self._drain(0.1)
        self._wait_all(latencies, jobs)
        return time.perf_counter() - begin, latencies

    def _open(self, rate: float, seconds: float) -> tuple[float, list[float]]:
        count = max(1, int(rate * seconds))
        latencies: list[float] = []
        begin = time.perf_counter() + 0.01
        for i in range(count):
            scheduled = begin + i / rate
            while (delay := scheduled - time.perf_counter()) > 0:
                self._drain(delay)
            self._submit(scheduled, latencies)
        self._wait_all(latencies, count)
        return time.perf_counter() - begin, latencies

    async def start(self) -> None:
        await self._in_thread(
            lambda: noop.apply_async(args=[self._request]).get(timeout=RESULT_TIMEOUT)
        )

    async def closed(self, jobs: int, in_flight: int) -> tuple[float, list[float]]:
        return await self._in_thread(self._closed, jobs, in_flight)  # type: ignore[no-any-return]

    async def open(self, rate: float, seconds: float) -> tuple[float, list[float]]:
        return await self._in_thread(self._open, rate, seconds)  # type: ignore[no-any-return]

    async def close(self) -> None:
        def stop() -> None:
            with contextlib.suppress(Exception):
                app.backend.result_consumer.stop()
            app.close()

        await self._in_thread(stop)
        self._thread.shutdown()


if __name__ == "__main__":
    from _peer_driver import main
    from _peer_request import REQUEST

    main(lambda: Client(REQUEST))
