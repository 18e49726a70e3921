"""FastStream in the throughput benchmark: request/reply over RabbitMQ.

Runs from the peers' virtualenv (``tools/bench/peers.sh``), never in the project's one.
``python _peer_faststream.py worker`` runs the subscriber (one process; channel prefetch 10,
so at most 10 jobs at once, as every system here); ``python _peer_faststream.py`` is the
client (driven by ``_peer_driver``): ``broker.request`` publishes the job with a reply-to
of RabbitMQ's direct reply-to and waits for the subscriber's answer. Variants
(``BENCH_VARIANT``):

defaults
    durable queue, publisher confirms and ``mandatory`` (FastStream's defaults), ack after
    the handler returns, transient messages.
reliable
    also ``persist=True`` on the job, which FastStream's docs name for messages that must
    survive a broker restart. The reply stays transient: direct reply-to cannot persist.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from faststream import FastStream
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

QUEUE = os.environ.get("BENCH_QUEUE", "bench.faststream")
VARIANT = os.environ.get("BENCH_VARIANT", "defaults")
RESULT_TIMEOUT = 30.0

broker = RabbitBroker(
    os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    log_level=30,
)


@broker.subscriber(RabbitQueue(QUEUE), channel=Channel(prefetch_count=10))
async def noop(request: dict[str, Any]) -> dict[str, Any]:
    """The no-op job: takes a request like our jobs carry and answers with a small dict."""
    return {"status": "completed", "name": request.get("resource_name")}


class Client:
    def __init__(self, request: dict[str, Any]) -> None:
        self._request = request
        self._client = RabbitBroker(
            os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            log_level=30,
        )

    async def start(self) -> None:
        await self._client.start()

    async def one_job(self) -> None:
        response = await self._client.request(
            self._request,
            queue=QUEUE,
            timeout=RESULT_TIMEOUT,
            persist=VARIANT == "reliable",
        )
        reply = await response.decode()
        if not isinstance(reply, dict) or reply.get("status") != "completed":
            raise RuntimeError(f"FastStream job failed: {reply!r}")

    async def close(self) -> None:
        await self._client.stop()


async def run_worker() -> None:
    await FastStream(broker).run()


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        try:
            import uvloop
        except ImportError:
            asyncio.run(run_worker())
        else:
            uvloop.run(run_worker())
    else:
        from _peer_driver import main
        from _peer_request import REQUEST

        main(lambda: Client(REQUEST))
