"""dramatiq in the throughput benchmark: RabbitMQ broker, Redis result backend.

Runs from the peers' virtualenv (``tools/bench/peers.sh``), never in the project's one.
The worker is dramatiq's own CLI, one process with 10 threads::

    python -m dramatiq _peer_dramatiq --processes 1 --threads 10 --queues bench.dramatiq

and the client is ``python _peer_dramatiq.py`` (driven by ``_peer_driver``). Variants
(``BENCH_VARIANT``):

defaults
    ``RabbitmqBroker(url=...)`` and ``Results(backend=RedisBackend(...))`` as its docs show:
    persistent messages, ack after the actor ran, no publisher confirms.
reliable
    the same with ``confirm_delivery=True``, which dramatiq's docs recommend so that
    ``send`` only returns once RabbitMQ has the message.

dramatiq's client is synchronous (pika's ``BlockingConnection``, one per thread), so each job
in flight holds a thread: ``send`` then ``get_result(block=True)``, which blocks on Redis.
The client keeps 100 such threads: redis-py's default pool has 100 connections and a 101st
blocking wait fails with ``MaxConnectionsError``, so more jobs than that in flight wait in
the client for a thread (their latency counts from their submission all the same).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

QUEUE = os.environ.get("BENCH_QUEUE", "bench.dramatiq")
VARIANT = os.environ.get("BENCH_VARIANT", "defaults")
RESULT_TIMEOUT_MS = 30_000
CLIENT_THREADS = 100  # redis-py's default connection pool size

broker = RabbitmqBroker(
    url=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    confirm_delivery=VARIANT == "reliable",
)
broker.add_middleware(
    Results(backend=RedisBackend(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")))
)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, store_results=True)
def noop(request: dict[str, Any]) -> dict[str, Any]:
    """The no-op job: takes a request like our jobs carry and answers with a small dict."""
    return {"status": "completed", "name": request.get("resource_name")}


class Client:
    """Each job in flight holds a pool thread that sends and then blocks on its result."""

    def __init__(self, request: dict[str, Any]) -> None:
        self._request = request
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=CLIENT_THREADS)

    def _job(self) -> None:
        message = noop.send(self._request)
        message.get_result(block=True, timeout=RESULT_TIMEOUT_MS)

    async def start(self) -> None:
        await self.one_job()

    async def one_job(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._job)

    async def close(self) -> None:
        self._pool.shutdown(wait=False)
        broker.close()


if __name__ == "__main__":
    from _peer_driver import main
    from _peer_request import REQUEST

    main(lambda: Client(REQUEST))
