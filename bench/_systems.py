"""Raw aio-pika and ours, the two systems whose clients run in the throughput benchmark's own
process: their broker objects, their clients and the event loop those run on.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
from _broker import STREAM_PORT, stream_client_options
from _loops import closed_loop, open_loop
from _peer_request import REQUEST
from aio_pika.abc import AbstractIncomingMessage
from rstream import Consumer, ConsumerOffsetSpecification, MessageContext, OffsetType

from itl_controlplane_sdk.contract.replication import job_queue_arguments
from itl_controlplane_sdk.contract.settings import ResultsProtocol
from itl_controlplane_sdk.models import ResourceRequest
from itl_controlplane_sdk.workers import JobQueue, JobStatus
from itl_controlplane_sdk.workers.amqp import RESULTS_MAX_BYTES, RESULTS_SEGMENT_BYTES

RAW_EXCHANGE = "bench.raw.exchange"
RAW_QUEUE = "bench.raw.jobs"
RAW_RESULTS = "bench.raw.results"
RAW_ROUTING_KEY = "bench.raw.ITL.Bench.Job.create"
RAW_STREAM_QUEUE = "bench.rawstream.jobs"
RAW_STREAM_RESULTS = "bench.rawstream.results"
RAW_STREAM_ROUTING_KEY = "bench.rawstream.ITL.Bench.Job.create"
SDK_QUEUE = "bench.sdk.jobs"
SDK_BINDING = "provider.ITL.Bench.#"
BENCH_QUEUES = (RAW_QUEUE, RAW_RESULTS, RAW_STREAM_QUEUE, RAW_STREAM_RESULTS, SDK_QUEUE)
BENCH_EXCHANGES = (RAW_EXCHANGE,)

WORKER_CONCURRENCY = 10
RESULT_TIMEOUT = 30.0
STREAM_PREFETCH = 500


def raw_job_message(job_id: str, priority: int = 5) -> aio_pika.Message:
    """The job raw aio-pika publishes: the SDK's envelope, persistent, at ``priority``."""
    body = {
        "version": 1,
        "job_id": job_id,
        "operation": "create",
        "request": REQUEST,
        "priority": priority,
        "attempt": 1,
        "submitted_at": datetime.now(UTC).isoformat(),
    }
    return aio_pika.Message(
        json.dumps(body).encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=priority,
        message_id=job_id,
    )


class RawClient:
    """Hand-written aio-pika producer and stream reader: what the SDK's client does, bare.

    Results are read over AMQP 0.9.1 (a stream consumer); ``RawStreamClient`` reads them over
    the stream protocol.
    """

    routing_key = RAW_ROUTING_KEY
    results_stream = RAW_RESULTS

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.get_exchange(RAW_EXCHANGE)
        await self._start_reader()

    async def _start_reader(self) -> None:
        assert self._connection is not None
        reader = await self._connection.channel()
        await reader.set_qos(prefetch_count=STREAM_PREFETCH)
        stream = await reader.get_queue(self.results_stream)
        await stream.consume(self._on_result, arguments={"x-stream-offset": "next"})

    async def _on_result(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        self._resolve(json.loads(message.body))

    def _resolve(self, result: dict[str, Any]) -> None:
        if result["status"] == "processing":
            return  # a marker (--raw-marker), like the SDK's reader keeps aside
        future = self._waiting.pop(result["job_id"], None)
        if future is not None and not future.done():
            future.set_result(result)

    async def one_job(self) -> None:
        assert self._exchange is not None
        job_id = str(uuid.uuid4())
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[job_id] = future
        await self._exchange.publish(
            raw_job_message(job_id), routing_key=self.routing_key, mandatory=True
        )
        await asyncio.wait_for(future, RESULT_TIMEOUT)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


class RawStreamClient(RawClient):
    """The raw client reading results over RabbitMQ's stream protocol (rstream), as ours does
    at its defaults: the broker sends chunks, and rstream grants the credit for them."""

    routing_key = RAW_STREAM_ROUTING_KEY
    results_stream = RAW_STREAM_RESULTS

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._consumer = Consumer(**stream_client_options(url, STREAM_PORT))

    async def _start_reader(self) -> None:
        await self._consumer.start()
        await self._consumer.subscribe(
            self.results_stream,
            self._on_record,
            offset_specification=ConsumerOffsetSpecification(OffsetType.NEXT, None),
        )

    async def _on_record(self, body: bytes, _context: MessageContext) -> None:
        self._resolve(json.loads(body))

    async def close(self) -> None:
        await self._consumer.close()
        await super().close()


class SdkClient:
    """The SDK as an application uses it: ``submit_job`` then ``get_result``."""

    def __init__(self, url: str, results_protocol: ResultsProtocol = "auto") -> None:
        self.queue = JobQueue(
            url,
            queue_name=SDK_QUEUE,
            bindings=[SDK_BINDING],
            results_protocol=results_protocol,
            results_stream_port=STREAM_PORT,
        )
        self.request = ResourceRequest.model_validate(REQUEST)

    async def start(self) -> None:
        await self.queue.connect()
        print(
            f"  ours' client ({self.queue.results_protocol}): results over "
            f"{self.queue.results_transport}",
            flush=True,
        )

    async def one_job(self) -> None:
        job_id = await self.queue.submit_job("ITL.Bench", "Job", "create", self.request)
        result = await self.queue.get_result(job_id, timeout=RESULT_TIMEOUT)
        if result is None or result.status is not JobStatus.COMPLETED:
            raise RuntimeError(f"job {job_id} did not complete: {result}")

    async def close(self) -> None:
        await self.queue.disconnect()


def new_client_loop(kind: str) -> asyncio.AbstractEventLoop:
    """The clients' event loop: uvloop by default, as the SDK's own processes run.

    ``itl-worker`` installs uvloop and ``itl-api`` (the SDK's producer in production) runs
    under uvicorn, which picks uvloop when installed; ``--client-loop asyncio`` measures the
    standard library loop instead. The peers' clients run in processes of their own, on
    uvloop (``_peer_driver``), and are not affected.
    """
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class InProcessClient:
    """Raw's and ours' clients run in the benchmark's own process, on its event loop."""

    pid: int | None = None

    def __init__(self, client: RawClient | SdkClient) -> None:
        self._client = client

    async def start(self) -> None:
        await self._client.start()

    async def closed(self, jobs: int, in_flight: int) -> tuple[float, list[float]]:
        return await closed_loop(self._client.one_job, jobs, in_flight)

    async def open(self, rate: float, seconds: float) -> tuple[float, list[float]]:
        return await open_loop(self._client.one_job, rate, seconds)

    async def close(self) -> None:
        await self._client.close()


async def delete_bench_objects(url: str) -> None:
    """Deletes every queue and exchange the benchmark creates (idempotent)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in BENCH_QUEUES:
            await channel.queue_delete(queue)
        for exchange in BENCH_EXCHANGES:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


async def declare_raw_topology(url: str) -> None:
    """The raw systems' exchange, priority queues and results streams, as the SDK declares its
    own: ``raw`` and ``raw-stream`` each have a job queue and a results stream of their own."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            RAW_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for job_queue, results, binding in (
            (RAW_QUEUE, RAW_RESULTS, "bench.raw.#"),
            (RAW_STREAM_QUEUE, RAW_STREAM_RESULTS, "bench.rawstream.#"),
        ):
            queue = await channel.declare_queue(
                job_queue, durable=True, arguments=job_queue_arguments("classic")
            )
            await queue.bind(exchange, routing_key=binding)
            await channel.declare_queue(
                results,
                durable=True,
                arguments={
                    "x-queue-type": "stream",
                    "x-max-age": "600s",
                    "x-max-length-bytes": RESULTS_MAX_BYTES,
                    "x-stream-max-segment-size-bytes": RESULTS_SEGMENT_BYTES,
                },
            )
    finally:
        await connection.close()
