"""Broker work of the results path alone: AMQP 0.9.1 against RabbitMQ's stream protocol.

Every job's result is appended to a stream and read by every process that tails it (each API
replica tails every result). This measures that path with nothing else: one writer appends
``--results`` persistent results with a publisher confirm each, at most ``--window``
unconfirmed at a time (as a worker with 10 jobs at once), and ``--readers`` reader processes
each tail the stream from "next" until they have seen every result. Reported per mode and
reader count: results/s, and CPU per result of the broker, the writer and the readers.

amqp
    what the SDK does today (aio-pika): ``basic.publish`` to the stream queue with
    ``mandatory`` and a confirm; readers ``basic.consume`` with ``x-stream-offset`` and
    prefetch 500, acking every 100 deliveries (``multiple``).
stream
    the same over the stream protocol (rstream): ``send_wait`` per result (a confirm each);
    readers ``subscribe`` from ``NEXT`` (the broker sends chunks, no per-message acks).

It needs the ``rabbitmq_stream`` plugin, which ``tools/rabbitmq/rabbitmq.sh`` loads (on the
AMQP port minus 120); on a shared broker, run it against a broker node of your own (see
docs/performance.md). Run from the peers' virtualenv, which has rstream (``make
bench-peers``), or the project's (the ``stream`` extra)::

    $(bash tools/bench/peers.sh --print-python) bench/results_path.py --amqp-port 5690 \
        --stream-port 5590 --readers 1,3,10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import time
import uuid
from pathlib import Path

import aio_pika
from rstream import AMQPMessage, Consumer, ConsumerOffsetSpecification, OffsetType, Producer

HOST = "127.0.0.1"
RESULT_BYTES = 160  # about the size of a small JobResult as JSON


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int:
    state = os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state"))
    home = Path(os.environ.get("ITL_RABBITMQ_HOME", f"{state}/itl-workers/rabbitmq"))
    return int((home / "rabbitmq.pid").read_text().strip())


def body(i: int) -> bytes:
    result = {"job_id": str(uuid.uuid4()), "status": "completed", "result": {}, "seq": i}
    return json.dumps(result).encode().ljust(RESULT_BYTES)


# ------------------------------------------------------------------------------ readers


async def amqp_reader(url: str, stream: str, count: int, ready: object, done: object) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=500)
    queue = await channel.get_queue(stream)
    seen = 0
    finished = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal seen
        seen += 1
        json.loads(message.body)
        if seen % 100 == 0:
            await message.ack(multiple=True)
        if seen >= count:
            finished.set()

    await queue.consume(on_message, arguments={"x-stream-offset": "next"})
    ready.set()  # type: ignore[attr-defined]
    await finished.wait()
    done.put(time.perf_counter())  # type: ignore[attr-defined]
    await connection.close()


async def stream_reader(
    port: int, vhost: str, stream: str, count: int, ready: object, done: object
) -> None:
    seen = 0
    finished = asyncio.Event()

    async def on_message(message: AMQPMessage, _context: object) -> None:
        nonlocal seen
        seen += 1
        json.loads(bytes(message.body) if not isinstance(message, bytes) else message)
        if seen >= count:
            finished.set()

    async with Consumer(HOST, port, vhost=vhost, username="guest", password="guest") as consumer:
        await consumer.start()
        await consumer.subscribe(
            stream,
            on_message,
            offset_specification=ConsumerOffsetSpecification(OffsetType.NEXT, None),
        )
        run = asyncio.create_task(consumer.run())
        await asyncio.sleep(0.5)  # the subscription is live once the first credit is granted
        ready.set()  # type: ignore[attr-defined]
        await finished.wait()
        done.put(time.perf_counter())  # type: ignore[attr-defined]
        run.cancel()
        with contextlib.suppress(BaseException):
            await run


def reader_main(args: tuple[object, ...]) -> None:
    mode, url, port, vhost, stream, count, ready, done = args
    if mode == "amqp":
        asyncio.run(amqp_reader(url, stream, count, ready, done))  # type: ignore[arg-type]
    else:
        asyncio.run(stream_reader(port, vhost, stream, count, ready, done))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ writers


async def amqp_writer(url: str, stream: str, count: int, window: int) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    remaining = iter(range(count))

    async def lane() -> None:
        for i in remaining:
            await channel.default_exchange.publish(
                aio_pika.Message(body(i), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=stream,
                mandatory=True,
            )

    await asyncio.gather(*(lane() for _ in range(window)))
    await connection.close()


async def stream_writer(port: int, vhost: str, stream: str, count: int, window: int) -> None:
    remaining = iter(range(count))
    async with Producer(HOST, port, vhost=vhost, username="guest", password="guest") as producer:

        async def lane() -> None:
            for i in remaining:
                await producer.send_wait(stream, body(i))

        await asyncio.gather(*(lane() for _ in range(window)))


# ------------------------------------------------------------------------------ a run


async def declare(url: str, stream: str) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.queue_delete(stream)
    await channel.declare_queue(
        stream, durable=True, arguments={"x-queue-type": "stream", "x-max-age": "600s"}
    )
    await connection.close()


async def delete(url: str, stream: str) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.queue_delete(stream)
    await connection.close()


def one_run(mode: str, readers: int, options: argparse.Namespace) -> dict[str, float]:
    url = f"amqp://guest:guest@{HOST}:{options.amqp_port}/"
    stream = f"bench.results-path.{mode}"
    asyncio.run(declare(url, stream))
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    events = [context.Event() for _ in range(readers)]
    processes = [
        context.Process(
            target=reader_main,
            args=((mode, url, options.stream_port, "/", stream, options.results, e, done),),
        )
        for e in events
    ]
    for process in processes:
        process.start()
    for event in events:
        if not event.wait(60):
            raise RuntimeError("a reader did not start")
    broker = broker_pid()
    broker_before = cpu_seconds(broker)
    readers_before = sum(cpu_seconds(p.pid) for p in processes if p.pid)
    writer_before = time.process_time()
    started = time.perf_counter()
    if mode == "amqp":
        asyncio.run(amqp_writer(url, stream, options.results, options.window))
    else:
        asyncio.run(
            stream_writer(options.stream_port, "/", stream, options.results, options.window)
        )
    written = time.perf_counter()
    finished = max(done.get(timeout=120) for _ in processes)
    figures = {
        "readers": readers,
        "write_per_s": options.results / (written - started),
        "read_all_per_s": options.results / (finished - started),
        "broker_ms": (cpu_seconds(broker) - broker_before) / options.results * 1000,
        "writer_ms": (time.process_time() - writer_before) / options.results * 1000,
        "readers_ms": (sum(cpu_seconds(p.pid) for p in processes if p.pid) - readers_before)
        / options.results
        * 1000,
    }
    for process in processes:
        process.join(30)
    asyncio.run(delete(url, stream))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-port", type=int, default=5672)
    parser.add_argument("--stream-port", type=int, default=5552)
    parser.add_argument("--results", type=int, default=10000, help="results per run")
    parser.add_argument("--window", type=int, default=10, help="unconfirmed results at a time")
    parser.add_argument("--readers", default="1,3,10", help="reader processes, comma-separated")
    parser.add_argument("--modes", default="amqp,stream")
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    print(
        "| mode | readers | written/s | read by all/s | broker ms/result | writer ms/result "
        "| readers ms/result (sum) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for readers in (int(n) for n in options.readers.split(",")):
        for _ in range(options.rounds):
            for mode in options.modes.split(","):
                f = one_run(mode, readers, options)
                print(
                    f"| {mode} | {readers} | {f['write_per_s']:.0f} | {f['read_all_per_s']:.0f} "
                    f"| {f['broker_ms']:.3f} | {f['writer_ms']:.3f} | {f['readers_ms']:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
