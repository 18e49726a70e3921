"""The raw worker of the throughput benchmark: the practical limit for our SDK.

It does, by hand and with nothing else, the broker work a ``ProviderWorker`` does for one job:
take a persistent job from a durable priority queue (prefetch 10, manual ack), append a
persistent result to a results stream and wait for the broker's confirm, and only then ack
the job. No envelope model, no provider registry, no metrics, no retry bookkeeping: what
remains is the cost of the delivery guarantee itself and of the client libraries.

Two ways to the results stream, as the SDK has:

- over AMQP 0.9.1 (``raw``, the default): aio-pika publishes the result to the stream with
  ``mandatory`` and a publisher confirm;
- over RabbitMQ's stream protocol (``raw-stream``, ``--stream-port``): rstream's ``send_wait``,
  one frame and one confirm per result, its body the result's JSON as is. This is what the
  SDK does at its defaults, written the plainest way the two libraries allow.

With ``--marker`` (AMQP only) it also appends a ``processing`` marker to the stream before the
work, without a confirm, as the SDK's worker does for cancellation: ``--raw-marker`` in the
benchmark, to separate the cost of that feature from the SDK's own overhead.

Run by ``bench/throughput.py`` as a subprocess (one process, like one pod)::

    python bench/_raw_worker.py AMQP_URL JOB_QUEUE RESULTS_STREAM PREFETCH [--marker]
    python bench/_raw_worker.py AMQP_URL JOB_QUEUE RESULTS_STREAM PREFETCH --stream-port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from _broker import stream_client_options
from aio_pika.abc import AbstractIncomingMessage
from rstream import Producer

AppendResult = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Appends a job's result (its id, the result) to the stream once it is confirmed."""


async def handle(
    message: AbstractIncomingMessage,
    append_result: AppendResult,
    markers: aio_pika.abc.AbstractExchange | None,
    results_stream: str,
) -> None:
    """Decodes the job, appends its (no-op) result with a confirm, then acks the job."""
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
    await append_result(job["job_id"], result)
    await message.ack()


def over_amqp(exchange: aio_pika.abc.AbstractExchange, results_stream: str) -> AppendResult:
    async def append(job_id: str, result: dict[str, Any]) -> None:
        await exchange.publish(
            aio_pika.Message(
                json.dumps(result).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=job_id,
            ),
            routing_key=results_stream,
            mandatory=True,
        )

    return append


def over_stream_protocol(producer: Producer, results_stream: str) -> AppendResult:
    async def append(job_id: str, result: dict[str, Any]) -> None:
        await producer.send_wait(results_stream, json.dumps(result).encode())

    return append


async def main(args: argparse.Namespace) -> None:
    """Consumes until SIGTERM; each delivery runs as its own task, as in the SDK's consumer."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connection = await aio_pika.connect(args.url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    await channel.set_qos(prefetch_count=args.prefetch)
    queue = await channel.get_queue(args.job_queue, ensure=True)
    producer: Producer | None = None
    if args.stream_port is not None:
        producer = Producer(**stream_client_options(args.url, args.stream_port))
        await producer.start()
        append_result = over_stream_protocol(producer, args.results_stream)
    else:
        append_result = over_amqp(channel.default_exchange, args.results_stream)
    markers = None
    if args.marker:
        markers = (await connection.channel(publisher_confirms=False)).default_exchange
    tasks: set[asyncio.Task[None]] = set()

    async def on_message(message: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(handle(message, append_result, markers, args.results_stream))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    tag = await queue.consume(on_message)
    await stop.wait()
    await queue.cancel(tag)
    if tasks:
        await asyncio.wait(set(tasks), timeout=5)
    if producer is not None:
        await producer.close()
    await connection.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("job_queue")
    parser.add_argument("results_stream")
    parser.add_argument("prefetch", type=int)
    parser.add_argument("--marker", action="store_true", help="processing markers (AMQP only)")
    parser.add_argument("--stream-port", type=int, help="results over the stream protocol")
    args = parser.parse_args()
    if args.marker and args.stream_port is not None:
        parser.error("--marker is measured over AMQP only")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
