"""The broker's CPU per job for the job leg alone, by the job queue's ``x-max-priority``.

Why: a classic queue with ``x-max-priority N`` is N + 1 backing queues inside the broker, and
every delivery folds over them to find the highest non-empty level. Job queues are declared
with ``x-max-priority`` 10 (priorities 0-10 are the API's contract), so that cost, whatever it
is, is paid by every job. This measures it on its own, before anyone weighs a topology change:
the queue arguments of an existing queue cannot be changed (a redeclare with others fails with
PRECONDITION_FAILED) and ``x-max-priority`` cannot be set by a policy.

The job leg only, with the SDK's guarantees and nothing else: raw aio-pika publishes a
persistent job (``mandatory``, publisher confirm) through a topic exchange to a durable classic
queue, and a consumer on a connection of its own (prefetch ``--prefetch``, manual ack) acks it
as soon as it arrives. ``--in-flight`` jobs are kept between publish and ack (closed loop), so
with the default 100 in flight and prefetch 10 about 90 jobs wait in the queue, where the
priority levels matter. Every variant's queue exists for the whole run; rounds are interleaved
across variants (order rotated each round) so drift on a shared machine hits all alike.
Reported per variant, median of rounds: jobs/s, the broker's CPU per job (minus its idle rate
just before the round), its read+write system calls and disk bytes per job (``/proc/PID/io``).

Run it against a broker of your own (``ITL_BENCH_RABBITMQ_PORT``, ``RABBITMQ_NODENAME`` and
``ITL_RABBITMQ_HOME`` as for ``bench/throughput.py``): the broker's CPU counts everyone's
traffic.

    python bench/priority_levels.py --variants 10,5,2,none --rounds 5 --jobs 5000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
from _broker import PORT, broker_pid, private_vhost
from _counters import process_cpu_seconds, tcp_segments
from _loops import closed_loop
from _systems import new_client_loop, raw_job_message
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

EXCHANGE = "bench.priority.exchange"
IDLE_SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class Variant:
    """One queue shape: its ``x-max-priority`` (None: no priorities) and its classic queue
    version (RabbitMQ 3.10's CQv2 index and store with ``2``; a policy's ``queue-version``
    does the same to existing queues)."""

    max_priority: int | None
    version: int | None = None

    @property
    def name(self) -> str:
        name = "none" if self.max_priority is None else str(self.max_priority)
        return name if self.version is None else f"{name}/v{self.version}"

    @property
    def queue(self) -> str:
        return f"bench.priority.{self.name.replace('/', '.')}"

    @property
    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if self.max_priority is not None:
            arguments["x-max-priority"] = self.max_priority
        if self.version is not None:
            arguments["x-queue-version"] = self.version
        return arguments


@dataclass
class Figures:
    """Every round of one variant."""

    jobs_per_s: list[float] = field(default_factory=list)
    broker_ms_per_job: list[float] = field(default_factory=list)
    syscalls_per_job: list[float] = field(default_factory=list)
    segments_per_job: list[float] = field(default_factory=list)
    disk_kib_per_job: list[float] = field(default_factory=list)

    def median(self) -> dict[str, float]:
        return {
            "jobs_per_s": statistics.median(self.jobs_per_s),
            "broker_ms_per_job": statistics.median(self.broker_ms_per_job),
            "syscalls_per_job": statistics.median(self.syscalls_per_job),
            "segments_per_job": statistics.median(self.segments_per_job),
            "disk_kib_per_job": statistics.median(self.disk_kib_per_job),
        }


def broker_io(pid: int) -> tuple[int, int, int]:
    """(read + write system calls, bytes written to disk) of the broker so far, and the TCP
    segments with data this process has sent it."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    segments = sum(
        sent for (owner, _), (sent, _) in tcp_segments((PORT,)).items() if owner == os.getpid()
    )
    return int(fields["syscr"]) + int(fields["syscw"]), int(fields["write_bytes"]), segments


class JobLeg:
    """A publisher connection and a consumer connection; one job = publish, confirm, ack."""

    def __init__(self, url: str, prefetch: int, priorities: list[int]) -> None:
        self._url = url
        self._prefetch = prefetch
        self._priorities = itertools.cycle(priorities)
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._connections: list[aio_pika.abc.AbstractConnection] = []
        self._exchange: AbstractExchange | None = None

    async def start(self, variants: list[Variant]) -> None:
        publisher = await aio_pika.connect(self._url)
        consumer = await aio_pika.connect(self._url)
        self._connections = [publisher, consumer]
        channel = await publisher.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        consuming = await consumer.channel()
        await consuming.set_qos(prefetch_count=self._prefetch)
        for variant in variants:
            queue = await channel.declare_queue(
                variant.queue, durable=True, arguments=variant.arguments
            )
            await queue.bind(self._exchange, routing_key=variant.queue)
            consumed = await consuming.get_queue(variant.queue)
            await consumed.consume(self._on_job)

    async def _on_job(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        future = self._waiting.pop(message.message_id or "", None)
        if future is not None and not future.done():
            future.set_result(None)

    async def one_job(self, variant: Variant) -> None:
        assert self._exchange is not None
        job_id = str(uuid.uuid4())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[job_id] = future
        await self._exchange.publish(
            raw_job_message(job_id, next(self._priorities)),
            routing_key=variant.queue,
            mandatory=True,
        )
        await asyncio.wait_for(future, 30)

    async def close(self, variants: list[Variant]) -> None:
        if not self._connections:
            return
        publisher, consumer = self._connections
        await consumer.close()  # first, so deleting the queues cancels no consumer
        channel = await publisher.channel()
        for variant in variants:
            await channel.queue_delete(variant.queue)
        await channel.exchange_delete(EXCHANGE)
        await publisher.close()


async def measure(
    url: str, variants: list[Variant], args: argparse.Namespace
) -> dict[str, Figures]:
    broker = broker_pid()
    if broker is None:
        raise SystemExit("no broker pid (set ITL_RABBITMQ_HOME to the broker's home)")
    leg = JobLeg(url, args.prefetch, [int(p) for p in args.priorities.split(",")])
    figures = {v.name: Figures() for v in variants}
    await leg.start(variants)
    try:
        for variant in variants:
            await closed_loop(lambda v=variant: leg.one_job(v), args.warmup, args.in_flight)
        for round_no in range(args.rounds):
            shift = round_no % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                idle_before = process_cpu_seconds(broker) or 0.0
                await asyncio.sleep(IDLE_SAMPLE_SECONDS)
                idle_rate = ((process_cpu_seconds(broker) or 0.0) - idle_before) / (
                    IDLE_SAMPLE_SECONDS
                )
                cpu_before = process_cpu_seconds(broker) or 0.0
                io_before = broker_io(broker)
                seconds, _ = await closed_loop(
                    lambda v=variant: leg.one_job(v), args.jobs, args.in_flight
                )
                cpu = (process_cpu_seconds(broker) or 0.0) - cpu_before - idle_rate * seconds
                io_after = broker_io(broker)
                f = figures[variant.name]
                f.jobs_per_s.append(args.jobs / seconds)
                f.broker_ms_per_job.append(max(0.0, cpu) / args.jobs * 1000)
                f.syscalls_per_job.append((io_after[0] - io_before[0]) / args.jobs)
                f.disk_kib_per_job.append((io_after[1] - io_before[1]) / args.jobs / 1024)
                f.segments_per_job.append((io_after[2] - io_before[2]) / args.jobs)
                print(
                    f"  round {round_no + 1} x-max-priority {variant.name:>7}: "
                    f"{args.jobs / seconds:6.0f} jobs/s  broker "
                    f"{f.broker_ms_per_job[-1]:.3f} ms/job  "
                    f"{f.syscalls_per_job[-1]:.1f} syscalls/job  "
                    f"{f.segments_per_job[-1]:.2f} segments in/job",
                    flush=True,
                )
    finally:
        await leg.close(variants)
    return figures


def parse_variant(text: str) -> Variant:
    """``10``, ``none``, ``10/v2``: x-max-priority, then optionally the queue version."""
    priority, _, version = text.partition("/v")
    return Variant(None if priority == "none" else int(priority), int(version) if version else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants",
        default="10,5,2,none",
        help="x-max-priority values (none: no priorities), each optionally /v2 (CQv2)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per round")
    parser.add_argument("--warmup", type=int, default=1000, help="warm-up jobs per variant")
    parser.add_argument("--in-flight", type=int, default=100, help="jobs between publish and ack")
    parser.add_argument("--prefetch", type=int, default=10, help="the consumer's prefetch")
    parser.add_argument(
        "--priorities", default="5", help="message priorities, used in turn (the SDK's default: 5)"
    )
    parser.add_argument(
        "--client-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="this process's event loop: uvloop writes once per loop iteration, asyncio per frame",
    )
    parser.add_argument("--vhost", default="bench-priority")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    variants = [parse_variant(v.strip()) for v in args.variants.split(",") if v.strip()]
    started = time.monotonic()
    with (
        private_vhost(args.vhost) as target,
        asyncio.Runner(loop_factory=lambda: new_client_loop(args.client_loop)) as runner,
    ):
        figures = runner.run(measure(target.url, variants, args))
    print(
        f"\n{args.rounds} rounds x {args.jobs} jobs, {args.in_flight} in flight, prefetch "
        f"{args.prefetch}, priorities {args.priorities}, client loop {args.client_loop}; "
        f"{time.monotonic() - started:.0f}s\n"
    )
    print(
        "| x-max-priority | jobs/s | broker CPU ms/job | broker syscalls/job | disk KiB/job "
        "| TCP segments into the broker/job |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    medians = {name: f.median() for name, f in figures.items()}
    for name, m in medians.items():
        spread = figures[name].broker_ms_per_job
        print(
            f"| {name} | {m['jobs_per_s']:.0f} | {m['broker_ms_per_job']:.3f} "
            f"({min(spread):.3f}-{max(spread):.3f}) | {m['syscalls_per_job']:.1f} "
            f"| {m['disk_kib_per_job']:.2f} | {m['segments_per_job']:.2f} |"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {n: {"median": medians[n], "rounds": vars(f)} for n, f in figures.items()},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
