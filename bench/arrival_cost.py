"""What the autoscaler's arrival queue costs the broker per job sent to an idle pool.

    python bench/arrival_cost.py [--jobs 20000] [--rounds 3]

Starts a RabbitMQ node of its own (``itl_harness.rabbitmq_node``), so other suites' traffic
is not counted, and declares a pool queue bound like a pool with ``providers``. Then, in
alternating rounds, it publishes the same confirmed 1 KiB jobs through the job exchange with
the pool's routing key: once with no arrival queue (a busy pool: what every job costs
anyway) and once with the SDK's ``ArrivalWatch`` bound like the pool's queue, whose watcher
never re-arms (it holds its one delivery, so the broker routes every further job to the
capped queue and drops the head: the most work an idle pool can cause). Reports, as JSON,
the broker process's CPU per job and the publish rate of each, the deliveries the watcher
received, and the watcher's connections and channels.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika

from itl_controlplane_sdk.contract.topology import JOB_EXCHANGE, job_routing_key
from itl_controlplane_sdk.workers import JobQueue
from itl_harness import jobs
from itl_harness.rabbitmq_node import Broker, own_broker

WINDOW = 200
"""Publishes awaiting their confirm at once."""


def broker_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def publish(url: str, provider: str, count: int) -> float:
    """Publish ``count`` confirmed jobs; return the seconds it took."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(JOB_EXCHANGE, ensure=False)
        key = job_routing_key(provider, "Job", "create")
        body = b"x" * 1024
        started = time.perf_counter()
        for first in range(0, count, WINDOW):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=key,
                    )
                    for _ in range(min(WINDOW, count - first))
                )
            )
        return time.perf_counter() - started


async def round_trip(
    broker: Broker, pid: int, provider: str, count: int, *, watched: bool
) -> dict[str, Any]:
    url = broker.amqp_url
    watcher = JobQueue(url, declare_topology=False, results_protocol="amqp")
    await watcher.connect()
    deliveries = 0

    def arrived() -> None:
        nonlocal deliveries
        deliveries += 1

    try:
        if watched:
            await watcher.arrival_watch().watch(
                "bench/pool", bindings=[f"provider.{provider}.#"], on_arrival=arrived
            )
        cpu = broker_cpu_seconds(pid)
        seconds = await publish(url, provider, count)
        await asyncio.sleep(1.0)  # let the queues settle before reading the CPU
        cpu = broker_cpu_seconds(pid) - cpu - 1.0 * idle_cpu_per_second(pid)
        channels = broker.ctl("ctl", "list_channels", "-q", "connection").count("\n")
    finally:
        await watcher.disconnect()
    return {
        "arrival_queue": watched,
        "jobs": count,
        "jobs_per_second": round(count / seconds, 1),
        "broker_cpu_us_per_job": round(cpu / count * 1e6, 1),
        "watcher_deliveries": deliveries,
        "channels_on_the_node": channels,
    }


_IDLE: dict[int, float] = {}


def idle_cpu_per_second(pid: int) -> float:
    """The node's own CPU per second with nothing to do (measured once, subtracted)."""
    if pid not in _IDLE:
        before = broker_cpu_seconds(pid)
        time.sleep(3.0)
        _IDLE[pid] = (broker_cpu_seconds(pid) - before) / 3.0
    return _IDLE[pid]


def purge(broker: Broker, queue: str) -> None:
    broker.ctl("ctl", "purge_queue", queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    provider = f"ITL.ArrivalCost{uuid.uuid4().hex[:8]}"
    queue = f"provider.jobs.bench.{provider.lower()}"
    with own_broker() as broker:
        pid = int(broker.ctl("ctl", "eval", "list_to_integer(os:getpid()).").strip())
        jobs.declare(broker.amqp_url, queue, provider)
        idle_cpu_per_second(pid)
        runs = []
        for _ in range(args.rounds):
            for watched in (False, True):
                runs.append(
                    asyncio.run(round_trip(broker, pid, provider, args.jobs, watched=watched))
                )
                purge(broker, queue)
        print(json.dumps({"idle_cpu_per_second": _IDLE[pid], "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
