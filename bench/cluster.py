"""Jobs per second and latency: one RabbitMQ node (classic queues) vs the local 3-node cluster
in replicated mode (quorum queues, replicated streams), in one run.

Each target gets the same load: one SDK worker process (``python -m
itl_controlplane_sdk.workers``, no-op jobs) and one client process submitting jobs with up to
``--in-flight`` outstanding and waiting for each result (``submit_job`` then ``get_result``).
Latency is submit to result, per job. The single node is a node of its own started with
``tools/rabbitmq/rabbitmq.sh`` on 127.0.0.1:5710 (stopped and deleted afterwards, so the
shared broker on 5672 is never loaded by the benchmark); the cluster is
``tools/rabbitmq/cluster.sh`` (started if needed), with the worker on node 2 and the client on
node 1, so every job crosses nodes as it would behind a load balancer.

    python bench/cluster.py --jobs 3000 --in-flight 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika

from itl_controlplane_sdk import ResourceRequest
from itl_controlplane_sdk.contract.replication import QueueType, band_queues
from itl_controlplane_sdk.workers import JobQueue, JobStatus

REPO = Path(__file__).resolve().parents[1]
RABBITMQ = REPO / "tools" / "rabbitmq" / "rabbitmq.sh"
CLUSTER = REPO / "tools" / "rabbitmq" / "cluster.sh"
SINGLE_PORT = 5710
SINGLE_ENV = {
    "RABBITMQ_NODENAME": "itl-bench-single@localhost",
    "RABBITMQ_NODE_PORT": str(SINGLE_PORT),
    "RABBITMQ_DIST_PORT": str(SINGLE_PORT + 20000),
    "ITL_RABBITMQ_STREAM_PORT": str(SINGLE_PORT - 120),
}
BINDING = "provider.ITL.Demo.#"
REQUEST = ResourceRequest(
    subscription_id="sub-1",
    resource_group="rg-1",
    provider_namespace="ITL.Demo",
    resource_type="Job",
    resource_name="bench",
    location="westeurope",
)


def sh(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        args,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    ).stdout


def start_worker(url: str, queue: str, queue_type: QueueType, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RABBITMQ_URL": url,
        "QUEUE_TYPE": queue_type,
        "JOB_QUEUE": queue,
        "JOB_BINDINGS": BINDING,
        "MAX_CONCURRENT_JOBS": "50",
        "HEALTH_CHECK_PORT": "0",
        "HEALTH_CHECK_HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "WORKER_ID": f"bench-{queue_type}",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "itl_controlplane_sdk.workers"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def run_load(
    url: str, queue: str, queue_type: QueueType, jobs: int, in_flight: int
) -> tuple[float, list[float]]:
    client = JobQueue(url, queue_name=queue, bindings=[BINDING], queue_type=queue_type)
    await client.connect()
    latencies: list[float] = []
    slots = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with slots:
            started = time.perf_counter()
            job_id = await client.submit_job("ITL.Demo", "Job", "create", REQUEST)
            result = await client.get_result(job_id, timeout=60)
            if result is None or result.status is not JobStatus.COMPLETED:
                raise RuntimeError(f"job {job_id} did not complete: {result}")
            latencies.append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(one() for _ in range(min(200, jobs))))  # warm-up
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(jobs)))
        elapsed = time.perf_counter() - started
    finally:
        await client.disconnect()
    return jobs / elapsed, latencies


async def delete_queues(url: str, queue: str, queue_type: QueueType) -> None:
    connection = await aio_pika.connect(url.split(",")[0])
    async with connection:
        for name in band_queues(queue, queue_type):
            channel = await connection.channel()
            await channel.queue_delete(name)


async def measure(
    name: str, worker_url: str, client_url: str, queue_type: QueueType, args: argparse.Namespace
) -> str:
    queue = f"bench.cluster.{uuid.uuid4().hex[:8]}"
    log = Path(tempfile.gettempdir()) / f"bench-cluster-{queue_type}.log"
    declare = JobQueue(client_url, queue_name=queue, bindings=[BINDING], queue_type=queue_type)
    await declare.connect()
    await declare.disconnect()
    worker = start_worker(worker_url, queue, queue_type, log)
    try:
        await asyncio.sleep(3)
        rate, latencies = await run_load(client_url, queue, queue_type, args.jobs, args.in_flight)
    finally:
        worker.terminate()
        worker.wait(30)
        await delete_queues(client_url, queue, queue_type)
    quantiles = statistics.quantiles(latencies, n=100)
    return (
        f"| {name} | {rate:.0f} | {statistics.median(latencies) * 1000:.1f} "
        f"| {quantiles[98] * 1000:.1f} |"
    )


async def main_async(args: argparse.Namespace) -> None:
    home = tempfile.mkdtemp(prefix="itl-bench-single-")
    single_env = {**SINGLE_ENV, "ITL_RABBITMQ_HOME": home}
    sh("bash", str(RABBITMQ), "up", env=single_env)
    sh("bash", str(CLUSTER), "up")
    single = f"amqp://guest:guest@127.0.0.1:{SINGLE_PORT}/"
    nodes = sh("bash", str(CLUSTER), "urls").strip().split(",")
    try:
        rows = [
            await measure("1 node, classic", single, single, "classic", args),
            await measure(
                "3 nodes, replicated",
                ",".join([nodes[1], nodes[2], nodes[0]]),
                ",".join(nodes),
                "replicated",
                args,
            ),
        ]
    finally:
        sh("bash", str(RABBITMQ), "down", env=single_env)
        shutil.rmtree(home, ignore_errors=True)
    print(f"{args.jobs} no-op jobs, {args.in_flight} in flight, one worker (50 slots)")
    print("| target | jobs/s | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(row)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=50)
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
