"""The autoscaler's poll path alone: N pools polled every 2 s on one AMQP connection.

    python bench/autoscaler_poll_path.py [--pools 1000] [--seconds 60] [--url amqp://...]
                                         [--own-broker] [--profile FILE]

Why next to ``autoscaler_polling.py``: that one runs the whole operator on a control plane,
so at 1000 pools most of its run is the control plane creating 1000 Deployments (and, when
pools still had them, Services), which a loaded 2-core machine did not finish in an hour.
This one runs the real ``Supervisor``, ``PoolScaler`` and ``BrokerHub`` (one connection,
the SDK's ``JobQueue``)
against a real RabbitMQ, with N queues declared like the pools' own; only the Kubernetes
side is replaced by an in-memory recorder (the Secret lookup, scale and status writes),
which an idle pool does not call per poll anyway. It reports the process's CPU per poll,
polls per second against the N / interval expected, the poll wall time and the status
writes and Events, as JSON. ``--own-broker`` polls a RabbitMQ node of the run instead of
the shared one (``itl_harness.rabbitmq_node``), so other suites' traffic does not decide how
fast the broker answers. Queues are deleted at the end. ``--profile FILE`` writes a
cProfile of the measured window (not of the set-up) for ``python -m pstats FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import resource
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
from prometheus_client import CollectorRegistry

from itl_harness.rabbitmq_node import own_broker
from workerpool_operator import api, scaling
from workerpool_operator.autoscaler.broker import BrokerHub
from workerpool_operator.autoscaler.metrics import AutoscalerMetrics
from workerpool_operator.autoscaler.supervisor import Supervisor
from workerpool_operator.pools import PoolCache


class RecordingCluster:
    """The Kubernetes side of a poll, in memory: counts what would be written."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.status_writes = 0
        self.scales = 0
        self.events = 0

    async def broker_url(self, namespace: str, ref: api.SecretKeyRef) -> str | None:
        return self.url

    async def set_deletion_costs(
        self, namespace: str, costs: Sequence[scaling.DeletionCost]
    ) -> None:
        pass

    async def scale(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        self.scales += 1
        return {}

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        pass

    async def apply_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.status_writes += 1
        return {}

    def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events += 1


def pool_body(index: int, run: str, poll_interval: int) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {
            "name": f"pool-{index:04d}",
            "namespace": f"bench-{run}",
            "generation": 1,
            "resourceVersion": str(1000 + index),
            "uid": f"{run}-{index}",
            "annotations": {},
        },
        "spec": {
            "rabbitmq": {"secretRef": {"name": "rabbitmq"}},
            "maxConcurrentJobs": 4,
            "replicaCount": 0,
            "providers": [f"ITL.Bench{run}"],
            "autoscaling": {"enabled": True, "pollIntervalSeconds": poll_interval},
        },
    }


def _histogram(metrics: AutoscalerMetrics, suffix: str) -> float:
    return sum(
        sample.value
        for family in metrics.poll_duration.collect()
        for sample in family.samples
        if sample.name.endswith(suffix)
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(
    url: str, pools: int, seconds: float, poll_interval: int, profile: str | None
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    bodies = [pool_body(index, run_id, poll_interval) for index in range(pools)]
    queues = [api.effective_queue(api.parse_pool(body)) for body in bodies]
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.declare_queue(queue, durable=True, arguments={"x-max-priority": 10})
        cluster = RecordingCluster(url)
        metrics = AutoscalerMetrics(CollectorRegistry())
        cache = PoolCache()
        supervisor = Supervisor(
            pools=cache,
            cluster=cluster,
            broker=BrokerHub(),
            metrics=metrics,
            post=cluster.post_event,
        )
        profiler = cProfile.Profile() if profile else None
        try:
            for body in bodies:
                supervisor.track(cache.observe(None, body), {})
            # Every pool has polled at least twice (the first poll of each binds its metric
            # series and writes its first status): only the steady state is measured.
            deadline = time.monotonic() + 300
            while _histogram(metrics, "_count") < 2 * pools and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            count, total = _histogram(metrics, "_count"), _histogram(metrics, "_sum")
            writes, events = cluster.status_writes, cluster.events
            cpu, wall = _cpu(), time.monotonic()
            if profiler is not None:
                profiler.enable()
            await asyncio.sleep(seconds)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(str(profile))
            wall = time.monotonic() - wall
            cpu = _cpu() - cpu
            polls = _histogram(metrics, "_count") - count
            poll_wall = (_histogram(metrics, "_sum") - total) / max(polls, 1)
            connections = supervisor.broker.connection_count
        finally:
            await supervisor.close()
            for queue in queues:
                await channel.queue_delete(queue)
    return {
        "pools": pools,
        "poll_interval_seconds": poll_interval,
        "window_seconds": seconds,
        "polls_per_second": round(polls / wall, 1),
        "polls_per_second_expected": round(pools / poll_interval, 1),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        "cpu_ms_per_poll": round(1000 * cpu / max(polls, 1), 3),
        "poll_wall_ms_mean": round(1000 * poll_wall, 1),
        "status_writes_in_window": cluster.status_writes - writes,
        "events_in_window": cluster.events - events,
        "profiled": bool(profile),
        "amqp_connections": connections,
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--poll-interval", type=int, default=2)
    parser.add_argument(
        "--url",
        default=os.environ.get("ITL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the measured window")
    parser.add_argument(
        "--own-broker", action="store_true", help="poll a RabbitMQ node of this run"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(own_broker()).amqp_url if args.own_broker else args.url
        report = asyncio.run(run(url, args.pools, args.seconds, args.poll_interval, args.profile))
    report["broker"] = "own node" if args.own_broker else "shared"
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
