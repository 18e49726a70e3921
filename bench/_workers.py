"""The benchmark's worker processes, one per system (one process, like one pod), each with its
output in a log file, and the wait until each consumes its queue.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aio_pika
from _broker import STREAM_PORT, BrokerTarget
from _systems import (
    RAW_QUEUE,
    RAW_RESULTS,
    RAW_STREAM_QUEUE,
    RAW_STREAM_RESULTS,
    SDK_BINDING,
    SDK_QUEUE,
    WORKER_CONCURRENCY,
)
from peers import PEERS, peers_python

from itl_controlplane_sdk.contract.settings import ResultsProtocol

BENCH_DIR = Path(__file__).resolve().parent


class WorkerProcess:
    """One worker subprocess (one process, like one pod) with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} worker exited ({self.process.returncode}):\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def pythonpath() -> str:
    return os.pathsep.join(p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p)


SDK_WORKER_ARGV = [sys.executable, "-m", "itl_controlplane_sdk.workers"]


def sdk_worker_env(
    target: BrokerTarget,
    worker_id: str = "bench-sdk-worker",
    results_protocol: ResultsProtocol = "auto",
) -> dict[str, str]:
    """One SDK worker process of the benchmark: 10 jobs at once, the no-op provider."""
    return {
        "RESULTS_PROTOCOL": results_protocol,
        "RESULTS_STREAM_PORT": str(STREAM_PORT),
        "WORKER_ID": worker_id,
        "WORKER_POOL": "bench",
        "RABBITMQ_URL": target.url,
        "LOG_LEVEL": "WARNING",
        "HEALTH_CHECK_HOST": "127.0.0.1",
        "HEALTH_CHECK_PORT": "0",
        "MAX_CONCURRENT_JOBS": str(WORKER_CONCURRENCY),
        "JOB_QUEUE": SDK_QUEUE,
        "JOB_BINDINGS": SDK_BINDING,
        "WORKER_PROVIDERS": "_sdk_providers:register",
        "PYTHONPATH": pythonpath(),
    }


def start_workers(
    target: BrokerTarget,
    systems: list[str],
    log_dir: Path,
    *,
    raw_marker: bool = False,
    raw_stream_batched: bool = False,
    redis_url: str | None = None,
    stream_target: BrokerTarget | None = None,
) -> dict[str, WorkerProcess]:
    """Starts one worker process per system; each only consumes its own ``bench.*`` queue."""
    workers: dict[str, WorkerProcess] = {}
    raw_workers = {
        "raw": (RAW_QUEUE, RAW_RESULTS, ["--marker"] if raw_marker else []),
        "raw-stream": (
            RAW_STREAM_QUEUE,
            RAW_STREAM_RESULTS,
            ["--stream-port", str(STREAM_PORT), *(["--batch"] if raw_stream_batched else [])],
        ),
    }
    for system, (job_queue, results, options) in raw_workers.items():
        if system in systems:
            workers[system] = WorkerProcess(
                system,
                [
                    sys.executable,
                    str(BENCH_DIR / "_raw_worker.py"),
                    target.url,
                    job_queue,
                    results,
                    str(WORKER_CONCURRENCY),
                    *options,
                ],
                {},
                log_dir,
            )
    if "sdk" in systems:
        workers["sdk"] = WorkerProcess("sdk", SDK_WORKER_ARGV, sdk_worker_env(target), log_dir)
    if "sdk-amqp" in systems:
        assert stream_target is not None
        workers["sdk-amqp"] = WorkerProcess(
            "sdk-amqp",
            SDK_WORKER_ARGV,
            sdk_worker_env(stream_target, "bench-sdk-amqp-worker", "amqp"),
            log_dir,
        )
    peers = [PEERS[s] for s in systems if s in PEERS]
    if peers:
        python = peers_python()
        for peer in peers:
            workers[peer.name] = WorkerProcess(
                peer.name,
                peer.worker_argv(python),
                peer.env(target.url, target.celery_url, redis_url),
                log_dir,
            )
    return workers


async def wait_consumers(
    url: str, queues: dict[str, str], workers: dict[str, WorkerProcess]
) -> None:
    """Waits until every worker consumes its queue (the worker process is ready)."""
    connection = await aio_pika.connect(url)
    deadline = time.monotonic() + 60
    try:
        for system, name in queues.items():
            while True:
                workers[system].check_alive()
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                    if (queue.declaration_result.consumer_count or 0) > 0:
                        break
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    pass
                finally:
                    if not channel.is_closed:
                        await channel.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{system} worker not consuming after 60s:\n{workers[system].tail()}"
                    )
                await asyncio.sleep(0.2)
    finally:
        await connection.close()
