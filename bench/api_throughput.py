"""PUT throughput and latency of the API in offloading mode: async 202 vs synchronous wait.

One API process (``python -m itl_controlplane_sdk.api``, OFFLOADING_ENABLED=true) and one
worker process (``python -m itl_controlplane_sdk.workers``, MAX_CONCURRENT_JOBS=10) running
the SDK's no-op provider under ``ITL.Bench/Job`` (``bench/_sdk_providers.py``), on the local
RabbitMQ, in a private vhost so test suites on the same broker neither take our jobs nor read
our results. The load generator is an httpx async client on loopback with at most
``--concurrency`` requests in flight:

async
    ``PUT .../ITL.Bench/Job/{name}?api-version=...``: the API publishes the job (confirmed)
    and answers 202 with Location. Measures the front door: validation, publish, answer.
wait
    the same with ``&wait=true``: the API answers 201 once the worker's result is back
    through the results stream. Measures the whole round trip through the fleet.

Each scenario: a warm-up, then ``--rounds`` rounds of ``--requests`` requests (each round
stops early after ``--max-seconds``), interleaved so drift on a shared machine hits both
alike; between rounds the job queue is drained, so async rounds do not leave a backlog for
the next round. Reported: requests/s of the median round, and p50/p99 latency over all
rounds' requests. Run ``python bench/api_throughput.py`` (``make rabbitmq-up`` first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _broker import BrokerTarget, broker_reachable, private_vhost
from _figures import percentile

from itl_controlplane_sdk.workers import JobQueue

BENCH_DIR = Path(__file__).resolve().parent
JOB_QUEUE = "bench.api.jobs"
BINDING = "provider.ITL.Bench.#"
PROVIDERS = "_sdk_providers:register"
PATH = "/subscriptions/bench/resourceGroups/bench/providers/ITL.Bench/Job/noop-{i}"
API_VERSION = "2023-01-01"
SCENARIOS = {"async": 202, "wait": 201}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Round:
    scenario: str
    requests: int
    seconds: float
    latencies: list[float] = field(repr=False)
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@contextlib.contextmanager
def processes(target: BrokerTarget, log_dir: Path, port: int) -> Iterator[None]:
    """The worker and the API, both pointed at the benchmark's vhost and queue."""
    common = {
        **os.environ,
        "RABBITMQ_URL": target.url,
        "WORKER_PROVIDERS": PROVIDERS,
        "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]),
        "JOB_QUEUE": JOB_QUEUE,
        "JOB_BINDINGS": BINDING,
        "LOG_LEVEL": "WARNING",
    }
    worker_env = {
        **common,
        "WORKER_ID": "bench-api-worker",
        "MAX_CONCURRENT_JOBS": "10",
        "HEALTH_CHECK_HOST": "127.0.0.1",
        "HEALTH_CHECK_PORT": "0",
    }
    api_env = {
        **common,
        "OFFLOADING_ENABLED": "true",
        "AUTH_MODE": "none",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "JOB_TIMEOUT": "60",
    }
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, module, env in (
            ("worker", "itl_controlplane_sdk.workers", worker_env),
            ("api", "itl_controlplane_sdk.api", api_env),
        ):
            with (log_dir / f"{name}.log").open("ab") as log:
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", module], env=env, stdout=log, stderr=log
                    )
                )
        yield
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


async def wait_healthy(client: httpx.AsyncClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/health")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("the API did not become healthy; see the logs")


async def drain(queue: JobQueue, timeout: float = 120) -> None:
    """Waits until the worker has taken every job (async rounds leave a backlog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = await queue.get_queue_stats([JOB_QUEUE])
        if stats["queues"].get(JOB_QUEUE, {}).get("message_count") == 0:
            return
        await asyncio.sleep(0.2)


async def run_round(
    client: httpx.AsyncClient,
    scenario: str,
    *,
    requests: int,
    concurrency: int,
    max_seconds: float,
    offset: int,
) -> Round:
    query = f"?api-version={API_VERSION}" + ("&wait=true" if scenario == "wait" else "")
    expected = SCENARIOS[scenario]
    latencies: list[float] = []
    errors = 0
    next_index = 0
    started = time.perf_counter()
    stop_at = started + max_seconds

    async def one_client() -> None:
        nonlocal next_index, errors
        while next_index < requests and time.perf_counter() < stop_at:
            index = offset + next_index
            next_index += 1
            sent = time.perf_counter()
            response = await client.put(PATH.format(i=index) + query, json={})
            if response.status_code == expected:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return Round(scenario, len(latencies), time.perf_counter() - started, latencies, errors)


def summary(rounds: list[Round]) -> dict[str, Any]:
    latencies = [value for r in rounds for value in r.latencies]
    rates = [r.rate for r in rounds]
    return {
        "requests_per_second": round(statistics.median(rates), 1),
        "rounds_requests_per_second": [round(rate, 1) for rate in rates],
        "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
        "requests": sum(r.requests for r in rounds),
        "errors": sum(r.errors for r in rounds),
    }


async def measure(args: argparse.Namespace, target: BrokerTarget) -> dict[str, Any]:
    port = free_port()
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=64)
    queue = JobQueue(target.url, queue_name=JOB_QUEUE, bindings=(BINDING,))
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-") as logs,
        processes(target, Path(logs), port),
    ):
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120
        ) as client:
            await wait_healthy(client)
            await queue.connect()
            try:
                offset = 0
                for scenario in SCENARIOS:  # warm-up
                    await run_round(
                        client,
                        scenario,
                        requests=args.warmup,
                        concurrency=args.concurrency,
                        max_seconds=args.max_seconds,
                        offset=offset,
                    )
                    offset += args.warmup
                    await drain(queue)
                rounds: dict[str, list[Round]] = {name: [] for name in SCENARIOS}
                for number in range(args.rounds):
                    for scenario in SCENARIOS:
                        result = await run_round(
                            client,
                            scenario,
                            requests=args.requests,
                            concurrency=args.concurrency,
                            max_seconds=args.max_seconds,
                            offset=offset,
                        )
                        offset += args.requests
                        rounds[scenario].append(result)
                        print(
                            f"round {number + 1} {scenario:5}: {result.rate:8.1f} req/s "
                            f"({result.requests} ok, {result.errors} errors)",
                            flush=True,
                        )
                        await drain(queue)
            finally:
                await queue.disconnect()
    return {name: summary(found) for name, found in rounds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap per round")
    parser.add_argument("--vhost", default="bench-api", help="'/' to use the default vhost")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not broker_reachable():
        raise SystemExit("RabbitMQ is not reachable on 127.0.0.1:5672 (make rabbitmq-up)")
    header = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "concurrency": args.concurrency,
        "requests_per_round": args.requests,
        "rounds": args.rounds,
    }
    with private_vhost(args.vhost) as target:
        figures = asyncio.run(measure(args, target))
    print()
    print(f"{'scenario':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, row in figures.items():
        print(
            f"{name:10} {row['requests_per_second']:8.1f} {row['p50_ms']:8.2f} "
            f"{row['p99_ms']:8.2f} {row['errors']:7d}"
        )
    if args.json:
        args.json.write_text(json.dumps({**header, "figures": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
