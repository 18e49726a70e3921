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

With ``--batch`` (stream protocol only) the worker stops being the plainest way and becomes
the floor of broker work per job: the results of the jobs that finish in one event-loop
iteration go out in one rstream ``send_batch`` (one frame, still one confirm per result), and
the jobs are acked with one ``multiple`` ack up to the newest job whose result, and every
earlier one's, is confirmed (``--raw-stream-batched`` in the benchmark). No job is acked before
its result is durable, so the guarantee is the one the SDK gives; what it saves is frames.

With ``--marker`` (AMQP only) it also appends a ``processing`` marker to the stream before the
work, without a confirm, as the SDK's worker does for cancellation: ``--raw-marker`` in the
benchmark, to separate the cost of that feature from the SDK's own overhead.

Run by ``bench/throughput.py`` as a subprocess (one process, like one pod)::

    python bench/_raw_worker.py AMQP_URL JOB_QUEUE RESULTS_STREAM PREFETCH [--marker]
    python bench/_raw_worker.py AMQP_URL JOB_QUEUE RESULTS_STREAM PREFETCH --stream-port PORT
    python bench/_raw_worker.py AMQP_URL JOB_QUEUE RESULTS_STREAM PREFETCH --stream-port PORT \
        --batch
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aio_pika
import aiormq
from _broker import stream_client_options
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from rstream import ConfirmationStatus, Producer

AppendResult = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Appends a job's result (its id, the result) to the stream once it is confirmed."""
AckJob = Callable[[AbstractIncomingMessage], Awaitable[None]]
"""Acks a job whose result is durable."""


async def ack_each(message: AbstractIncomingMessage) -> None:
    await message.ack()


async def handle(
    message: AbstractIncomingMessage,
    append_result: AppendResult,
    ack: AckJob,
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
    await ack(message)


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


class IterationBatches:
    """The results of one event-loop iteration in one frame; acks up to the newest done job.

    Every result still has its own confirm, and a job is acked only once its result and every
    earlier delivery's result are confirmed, so one ``multiple`` ack can cover a run of jobs.
    """

    def __init__(self, producer: Producer, stream: str, channel: AbstractChannel) -> None:
        self._producer = producer
        self._stream = stream
        self._channel = channel
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._confirming: dict[int, asyncio.Future[None]] = {}
        self._early: dict[int, bool] = {}
        self._delivered: deque[int] = deque()
        self._done: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._acking = False

    def delivered(self, message: AbstractIncomingMessage) -> None:
        """Records a delivery in order, before its job runs."""
        assert message.delivery_tag is not None
        self._delivered.append(message.delivery_tag)

    async def append(self, job_id: str, result: dict[str, Any]) -> None:
        future = asyncio.get_running_loop().create_future()
        if not self._pending:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._pending.append((json.dumps(result).encode(), future))
        await future

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        ids = await self._producer.send_batch(
            self._stream, [body for body, _ in batch], on_publish_confirm=self._confirmed
        )
        for publishing_id, (_, future) in zip(ids, batch, strict=True):
            if publishing_id in self._early:
                self._settle(future, self._early.pop(publishing_id))
            else:
                self._confirming[publishing_id] = future

    def _confirmed(self, status: ConfirmationStatus) -> None:
        future = self._confirming.pop(status.message_id, None)
        if future is None:
            self._early[status.message_id] = status.is_confirmed
        else:
            self._settle(future, status.is_confirmed)

    @staticmethod
    def _settle(future: asyncio.Future[None], confirmed: bool) -> None:
        if future.done():
            return
        if confirmed:
            future.set_result(None)
        else:
            future.set_exception(RuntimeError("result not confirmed by the broker"))

    async def ack(self, message: AbstractIncomingMessage) -> None:
        """Acks every delivery up to the newest done one in order, once per loop iteration."""
        assert message.delivery_tag is not None
        self._done.add(message.delivery_tag)
        if self._acking:
            return
        self._acking = True
        await asyncio.sleep(0)  # the jobs finishing in this iteration join this ack
        self._acking = False
        newest = None
        while self._delivered and self._delivered[0] in self._done:
            newest = self._delivered.popleft()
            self._done.discard(newest)
        if newest is not None:
            underlay = cast(aiormq.Channel, await self._channel.get_underlay_channel())
            await underlay.basic_ack(newest, multiple=True, wait=False)


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
    ack: AckJob = ack_each
    batches: IterationBatches | None = None
    if args.stream_port is not None:
        producer = Producer(**stream_client_options(args.url, args.stream_port))
        await producer.start()
        append_result = over_stream_protocol(producer, args.results_stream)
        if args.batch:
            batches = IterationBatches(producer, args.results_stream, channel)
            append_result, ack = batches.append, batches.ack
    else:
        append_result = over_amqp(channel.default_exchange, args.results_stream)
    markers = None
    if args.marker:
        markers = (await connection.channel(publisher_confirms=False)).default_exchange
    tasks: set[asyncio.Task[None]] = set()

    async def on_message(message: AbstractIncomingMessage) -> None:
        if batches is not None:
            batches.delivered(message)
        task = asyncio.create_task(
            handle(message, append_result, ack, markers, args.results_stream)
        )
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
    parser.add_argument(
        "--batch", action="store_true", help="results and acks per loop iteration (stream only)"
    )
    args = parser.parse_args()
    if args.marker and args.stream_port is not None:
        parser.error("--marker is measured over AMQP only")
    if args.batch and args.stream_port is None:
        parser.error("--batch is measured over the stream protocol only")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
