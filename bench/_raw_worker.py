"""The raw aio-pika worker of the throughput benchmark: the practical limit for our SDK.

It does, by hand and with nothing else, the broker work a ``ProviderWorker`` does for one job:
take a persistent job from a durable priority queue (prefetch 10, manual ack), publish a
persistent result to a results stream with ``mandatory`` and a publisher confirm, and only then
ack the job. No envelope model, no provider registry, no metrics, no retry bookkeeping: what
remains is the cost of the delivery guarantee itself, which the SDK cannot beat.

With ``marker`` it also appends a ``processing`` marker to the stream before the work, without
a confirm, as the SDK's worker does for cancellation: ``--raw-marker`` in the benchmark, to
separate the cost of that feature from the SDK's own overhead.

Run by ``bench/throughput.py`` as a subprocess (one process, like one pod)::

    python bench/_raw_worker.py AMQP_URL JOB_QUEUE RESULTS_STREAM PREFETCH [marker]
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage


async def handle(
    message: AbstractIncomingMessage,
    exchange: AbstractExchange,
    results_stream: str,
    markers: AbstractExchange | None,
) -> None:
    """Decodes the job, publishes its (no-op) result with a confirm, then acks the job."""
    job = json.loads(message.body)
    if markers is not None:
        marker = {"job_id": job["job_id"], "status": "processing", "timestamp": time.time()}
        await markers.publish(
            aio_pika.Message(
                json.dumps(marker).encode(),
                content_type="application/json",
                message_id=job["job_id"],
            ),
            routing_key=results_stream,
            mandatory=False,
        )
    result = {
        "job_id": job["job_id"],
        "status": "completed",
        "result": {},
        "error": None,
        "timestamp": time.time(),
    }
    await exchange.publish(
        aio_pika.Message(
            json.dumps(result).encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=job["job_id"],
        ),
        routing_key=results_stream,
        mandatory=True,
    )
    await message.ack()


async def main(url: str, job_queue: str, results_stream: str, prefetch: int, marker: bool) -> None:
    """Consumes until SIGTERM; each delivery runs as its own task, as in the SDK's consumer."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(job_queue, ensure=True)
    markers: AbstractExchange | None = None
    if marker:
        markers = (await connection.channel(publisher_confirms=False)).default_exchange
    tasks: set[asyncio.Task[None]] = set()

    async def on_message(message: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(
            handle(message, channel.default_exchange, results_stream, markers)
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    tag = await queue.consume(on_message)
    await stop.wait()
    await queue.cancel(tag)
    if tasks:
        await asyncio.wait(set(tasks), timeout=5)
    await connection.close()


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:] == ["marker"])
    )
