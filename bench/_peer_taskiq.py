"""taskiq in the throughput benchmark: taskiq-aio-pika broker, taskiq-redis results.

Runs from the peers' virtualenv (``tools/bench/peers.sh``), never in the project's one.
The worker is taskiq's own CLI, one process running up to 10 tasks at once::

    python -m taskiq worker _peer_taskiq:broker --workers 1 --max-async-tasks 10

and the client is ``python _peer_taskiq.py`` (driven by ``_peer_driver``): ``kiq`` then
``wait_result``, as taskiq's docs show. taskiq's defaults already are what its docs
recommend for reliability (quorum queue, persistent messages, publisher confirms, ack once
the result is saved: ``--ack-type when_saved``), so it has one variant. ``wait_result``
polls Redis every 0.2 s by default (``check_interval``), which bounds a client's rate at
about 5 results per second per job in flight; that is taskiq as a user meets it.
"""

from __future__ import annotations

import os
from typing import Any

from taskiq_aio_pika import AioPikaBroker, Exchange, Queue
from taskiq_redis import RedisAsyncResultBackend

QUEUE = os.environ.get("BENCH_QUEUE", "bench.taskiq")
RESULT_TIMEOUT = 30.0

broker = AioPikaBroker(
    url=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    exchange=Exchange(name=QUEUE),
    task_queues=[Queue(name=QUEUE)],
).with_result_backend(
    RedisAsyncResultBackend(
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"),
        result_ex_time=600,
    )
)


@broker.task(task_name="bench.noop")
async def noop(request: dict[str, Any]) -> dict[str, Any]:
    """The no-op job: takes a request like our jobs carry and answers with a small dict."""
    return {"status": "completed", "name": request.get("resource_name")}


class Client:
    def __init__(self, request: dict[str, Any]) -> None:
        self._request = request

    async def start(self) -> None:
        await broker.startup()

    async def one_job(self) -> None:
        task = await noop.kiq(self._request)
        result = await task.wait_result(timeout=RESULT_TIMEOUT)
        if result.is_err:
            raise RuntimeError(f"taskiq job failed: {result.error}")

    async def close(self) -> None:
        await broker.shutdown()


if __name__ == "__main__":
    from _peer_driver import main
    from _peer_request import REQUEST

    main(lambda: Client(REQUEST))
