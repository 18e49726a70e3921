"""The newcomer's demo: a small worker fleet on the local RabbitMQ processing a burst of jobs.

Starts two real worker processes (``python -m itl_controlplane_sdk.workers``), submits a
burst of jobs through ``JobQueue`` — mostly quick ones, a few slow ones, one that fails and
lands in the dead-letter queue — and shows queue depth, in-flight work from the workers'
heartbeats, and results as they arrive. Run it with ``make demo``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from itl_controlplane_sdk import ResourceRequest
from itl_controlplane_sdk.workers import JobQueue, JobStatus

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
DEMO_QUEUE = "demo.jobs"
WORKERS = 2
JOBS = 40


def request(name: str, **body: object) -> ResourceRequest:
    return ResourceRequest(
        subscription_id="demo-sub",
        resource_group="demo-rg",
        provider_namespace="ITL.Demo",
        resource_type="Job",
        resource_name=name,
        location="westeurope",
        body=dict(body),
    )


def start_workers(log_dir: Path) -> list[subprocess.Popen[bytes]]:
    processes = []
    for index in range(WORKERS):
        env = {
            **os.environ,
            "WORKER_ID": f"demo-worker-{index}",
            "WORKER_POOL": "demo",
            "RABBITMQ_URL": RABBITMQ_URL,
            "JOB_QUEUE": DEMO_QUEUE,
            "JOB_BINDINGS": "provider.ITL.Demo.#",
            "MAX_CONCURRENT_JOBS": "5",
            "JOB_TIMEOUT": "30",
            "JOB_RETRY_BASE_DELAY": "0.5",
            "HEALTH_CHECK_HOST": "127.0.0.1",
            "HEALTH_CHECK_PORT": "0",
            "HEARTBEAT_INTERVAL": "0.5",
        }
        log = (log_dir / f"demo-worker-{index}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "itl_controlplane_sdk.workers"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return processes


async def main() -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="itl-demo-"))
    queue = JobQueue(RABBITMQ_URL, queue_name=DEMO_QUEUE, bindings=("provider.ITL.Demo.#",))
    await queue.connect()
    await queue.get_worker_heartbeats()
    workers = start_workers(log_dir)
    print(f"started {WORKERS} worker processes (logs in {log_dir})")
    try:
        job_ids = []
        for i in range(JOBS):
            body: dict[str, object] = {"seconds": 1.5} if i % 8 == 0 else {"seconds": 0.2}
            if i == JOBS - 1:
                body = {"fail": "permanent"}
            job_ids.append(
                await queue.submit_job("ITL.Demo", "Job", "create", request(f"job-{i}", **body))
            )
        print(f"submitted {JOBS} jobs (every 8th takes 1.5 s, the last one fails on purpose)\n")
        pending = {j: asyncio.create_task(queue.get_result(j, timeout=60)) for j in job_ids}
        started = time.monotonic()
        print(f"{'t(s)':>5} {'queued':>7} {'in-flight':>10} {'done':>5} {'failed':>7}  workers")
        while True:
            stats = await queue.get_queue_stats()
            beats = await queue.get_worker_heartbeats("demo")
            done = [t.result() for t in pending.values() if t.done() and t.result() is not None]
            failed = sum(1 for r in done if r is not None and r.status is JobStatus.FAILED)
            depth = stats["queues"].get(DEMO_QUEUE, {}).get("message_count")
            print(
                f"{time.monotonic() - started:5.1f} {depth!s:>7} "
                f"{sum(int(b['in_flight']) for b in beats):>10} {len(done):>5} {failed:>7}  "
                + ", ".join(f"{b['worker_id']}({b['in_flight']}/{b['capacity']})" for b in beats)
            )
            if len(done) == JOBS:
                break
            await asyncio.sleep(0.5)
        dead = await queue.get_dlq_messages(limit=5)
        print(f"\nall {JOBS} jobs finished in {time.monotonic() - started:.1f}s")
        for item in dead[-1:]:
            print(f"dead-letter queue holds job {item['job_id']}: {item['reason']}")
        print(
            "\nNext: `make test` runs the whole suite; docs/queue-topology.md explains the design."
        )
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(30)
        await queue.disconnect()
        await delete_demo_queue()


async def delete_demo_queue() -> None:
    """A leftover queue bound to ITL.Demo jobs would keep claiming them after the demo."""
    import aio_pika

    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(DEMO_QUEUE)


if __name__ == "__main__":
    asyncio.run(main())
