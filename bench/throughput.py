"""Job throughput and latency: our JobQueue + ProviderWorker against raw aio-pika and the
Python task queues people choose between: dramatiq, taskiq, Celery 5 and FastStream.

The goal: in one run, ours at least 1.2x the fastest peer at its defaults (dramatiq, taskiq,
Celery, FastStream) and at least 1.0x raw aio-pika doing the same broker work, with a p99
submit-to-result latency under 20 ms at half our peak rate, while keeping every guarantee
(persistent jobs, publisher confirms, mandatory routing, ack after the result is durable,
results readable from any process). Every system runs in ONE run on the same RabbitMQ, so
they share the machine's conditions, with the same no-op job, the same client loads and one
worker process running up to 10 jobs at once:

raw
    ``bench/_raw_worker.py``: persistent job -> durable priority queue (topic exchange,
    ``mandatory``, publisher confirm); one worker process with prefetch 10 publishes a
    persistent, confirmed result to a stream and then acks; the client tails the stream.
    The same broker work as ours with nothing on top: the practical limit.
sdk
    ``JobQueue.submit_job`` + ``JobQueue.get_result`` against one
    ``python -m itl_controlplane_sdk.workers`` process (MAX_CONCURRENT_JOBS=10) running the
    SDK's no-op provider (``SimulatedWorkProvider`` with an empty body), at the SDK's defaults:
    ``RESULTS_PROTOCOL=auto``, so results over RabbitMQ's stream protocol when the broker
    offers it (the ``rabbitmq_stream`` plugin on ``ITL_BENCH_RABBITMQ_STREAM_PORT``, default
    the AMQP port minus 120 as ``tools/rabbitmq/rabbitmq.sh`` sets it); the run prints which.
sdk-amqp
    the same with ``RESULTS_PROTOCOL=amqp``: results written and read over AMQP 0.9.1. It runs
    in a vhost of its own (``VHOST-amqp``) so that neither SDK client tails the other's results.
peers (``bench/peers.py``)
    each at its defaults and, where that differs, configured as its documentation recommends
    for reliability: dramatiq (RabbitMQ + Redis results), taskiq-aio-pika + taskiq-redis,
    Celery 5 (threads, rpc) and FastStream request/reply, installed in a virtualenv of their
    own (``make bench-peers``) and run as subprocesses, client and worker alike.

For each system: a warm-up, then ``--rounds`` closed-loop rounds of ``--jobs`` jobs at each
client load of ``--concurrency`` (jobs in flight; default 50 and 200), interleaved across
systems and loads so drift on a shared machine hits all alike. A round's throughput is jobs /
time from the first submit to the last result. A system's peak is its best load's median
round: the highest rate it sustains, whichever load it needs for that. Every load's median is
printed too. Then ``--rounds`` open-loop rounds at half that system's peak rate for
``--paced-seconds`` each: submissions follow a fixed schedule whatever the replies do, and
latency counts from the scheduled time, so a client that falls behind shows up in the
figures instead of hiding. CPU per job is measured for the client process, the worker's
process tree, the broker and (for the peers that use it) Redis.

Half of each system's own peak puts them at different rates, so their tails are not
comparable. ``--paced-rates`` adds open-loop rounds at rates common to every system, after
the half-peak ones: numbers (jobs/s), ``slowest-half`` (the lowest half peak of the run's
systems, a rate every one of them sustains) and ``ours-half`` (half of ours' peak, the rate
the goal's p99 is judged at). ``--systems sdk --paced-rates 400,550,700,840`` is a ladder of
one system.

Run ``make bench`` (starts RabbitMQ, installs the peers first) or ``python
bench/throughput.py``; ``--quick`` for a short run while developing. Everything it creates
on the broker lives in a vhost of its own, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from _loops import closed_loop, open_loop
from _peer_request import REQUEST
from _stage_probe import Stamps
from aio_pika.abc import AbstractIncomingMessage
from peers import PEERS, PeerClient, RedisServer, peers_python, redis_server

from itl_controlplane_sdk.contract.replication import job_queue_arguments
from itl_controlplane_sdk.contract.settings import ResultsProtocol
from itl_controlplane_sdk.models import ResourceRequest
from itl_controlplane_sdk.workers import JobQueue, JobStatus
from itl_controlplane_sdk.workers.amqp import RESULTS_MAX_BYTES, RESULTS_SEGMENT_BYTES

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
PORT = int(os.environ.get("ITL_BENCH_RABBITMQ_PORT", "5672"))
STREAM_PORT = int(os.environ.get("ITL_BENCH_RABBITMQ_STREAM_PORT", str(PORT - 120)))
DEFAULT_VHOST = "bench"

RAW_EXCHANGE = "bench.raw.exchange"
RAW_QUEUE = "bench.raw.jobs"
RAW_RESULTS = "bench.raw.results"
RAW_ROUTING_KEY = "bench.raw.ITL.Bench.Job.create"
SDK_QUEUE = "bench.sdk.jobs"
SDK_BINDING = "provider.ITL.Bench.#"
BENCH_QUEUES = (RAW_QUEUE, RAW_RESULTS, SDK_QUEUE)
BENCH_EXCHANGES = (RAW_EXCHANGE,)

WORKER_CONCURRENCY = 10
RESULT_TIMEOUT = 30.0
STREAM_PREFETCH = 500

TARGET_VS_RAW = 1.0
TARGET_VS_PEERS = 1.2
TARGET_P99_MS = 20.0
# The goal compares ours with these peers at their defaults; the reliable variants are shown
# beside them for what their guarantees cost.
GOAL_PEERS = ("dramatiq", "taskiq", "celery", "faststream")

LABELS = {
    "raw": "raw aio-pika",
    "sdk": "ours (JobQueue+ProviderWorker)",
    "sdk-amqp": "ours, results over AMQP",
    **{name: peer.label for name, peer in PEERS.items()},
}
SIDES = ("client", "worker", "broker", "redis")
SEGMENTS = ("segs_from_client", "segs_to_client", "segs_from_worker", "segs_to_worker")
"""TCP data segments per job between the broker and each side (``tcp_segments``); the same
keys prefixed ``stream_`` count those on the stream protocol's port alone."""
PAUSES = Stamps()
"""Event-loop lag and GC pauses of this process, which runs raw's and ours' clients: the
half-peak rounds report them beside their p99 (``latency_stages.py`` splits the tail)."""

# --------------------------------------------------------------------------------- figures


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 1000 samples is the 990th)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Run:
    """One measured round of one system: how many jobs, how long, every job's latency."""

    system: str
    phase: str
    jobs: int
    seconds: float
    latencies: list[float]
    offered_rate: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    broker_io: dict[str, float] = field(default_factory=dict)
    in_flight: int = 0
    pauses: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.jobs / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


@dataclass
class Summary:
    """Median over rounds of one system's figures, with the spread kept to show the noise."""

    peak: list[Run] = field(default_factory=list)
    half: list[Run] = field(default_factory=list)
    paced: dict[float, list[Run]] = field(default_factory=dict)
    """Open-loop rounds at the ``--paced-rates``, by offered rate (jobs/s)."""

    @staticmethod
    def _median(runs: list[Run], key: Callable[[Run], float]) -> float:
        return statistics.median(key(r) for r in runs) if runs else float("nan")

    def loads(self) -> list[int]:
        return sorted({r.in_flight for r in self.peak})

    def throughput_at(self, in_flight: int) -> float:
        return self._median(
            [r for r in self.peak if r.in_flight == in_flight], lambda r: r.throughput
        )

    @property
    def peak_load(self) -> int:
        """The client load (jobs in flight) at which this system's median rate is highest."""
        return max(self.loads(), key=self.throughput_at, default=0)

    @property
    def peak_runs(self) -> list[Run]:
        return [r for r in self.peak if r.in_flight == self.peak_load]

    @property
    def throughput(self) -> float:
        return self._median(self.peak_runs, lambda r: r.throughput)

    def broker_io_per_job(self, key: str) -> float:
        """Broker syscalls, bytes written to disk or TCP segments (``SEGMENTS``) per job at peak
        (median)."""
        runs = [r for r in self.peak_runs if key in r.broker_io]
        return self._median(runs, lambda r: r.broker_io[key] / r.jobs)

    def cpu_ms_per_job(self, side: str) -> float:
        """CPU one job costs ``side`` (client, worker, broker) at peak: robust to noise."""
        runs = [r for r in self.peak_runs if side in r.cpu]
        return self._median(runs, lambda r: r.cpu[side] / r.jobs * 1000)

    def paced_cpu_ms_per_job(self, rate: float, side: str) -> float:
        """CPU one job costs ``side`` in the rounds paced at ``rate`` (median): at a rate
        below the peak fewer jobs share a frame, a wake-up or a batch than at the peak."""
        runs = [r for r in self.paced.get(rate, []) if side in r.cpu]
        return self._median(runs, lambda r: r.cpu[side] / r.jobs * 1000)

    def spread(self, runs: list[Run], key: Callable[[Run], float], digits: int = 0) -> str:
        values = [key(r) for r in runs]
        return f"{min(values):.{digits}f}-{max(values):.{digits}f}" if values else "-"

    def as_dict(self) -> dict[str, Any]:
        def rounds(runs: list[Run]) -> list[dict[str, float | None]]:
            return [
                {
                    "jobs": r.jobs,
                    "latencies": len(r.latencies),
                    "seconds": round(r.seconds, 3),
                    "jobs_per_s": round(r.throughput, 1),
                    "p50_ms": round(r.p50_ms, 2),
                    "p99_ms": round(r.p99_ms, 2),
                    "offered_rate": r.offered_rate,
                    "in_flight": r.in_flight,
                    **({"client_pauses": r.pauses} if r.pauses else {}),
                }
                for r in runs
            ]

        return {
            "peak_jobs_per_s": round(self.throughput, 1),
            "peak_in_flight": self.peak_load,
            "jobs_per_s_by_in_flight": {n: round(self.throughput_at(n), 1) for n in self.loads()},
            "peak_p50_ms": round(self._median(self.peak_runs, lambda r: r.p50_ms), 2),
            "peak_p99_ms": round(self._median(self.peak_runs, lambda r: r.p99_ms), 2),
            "half_rate": round(self._median(self.half, lambda r: r.offered_rate or 0), 1),
            "half_p50_ms": round(self._median(self.half, lambda r: r.p50_ms), 2),
            "half_p99_ms": round(self._median(self.half, lambda r: r.p99_ms), 2),
            "cpu_ms_per_job": {side: round(self.cpu_ms_per_job(side), 3) for side in SIDES},
            "broker_per_job": {
                key: round(self.broker_io_per_job(key), 2) for key in ("syscalls", "disk_bytes")
            }
            | {
                key: round(self.broker_io_per_job(key), 2)
                for key in (*SEGMENTS, *(f"stream_{k}" for k in SEGMENTS))
            },
            "peak_rounds": rounds(self.peak),
            "half_rounds": rounds(self.half),
            "paced": {
                str(rate): {
                    "p50_ms": round(self._median(runs, lambda r: r.p50_ms), 2),
                    "p99_ms": round(self._median(runs, lambda r: r.p99_ms), 2),
                    "cpu_ms_per_job": {
                        side: round(self.paced_cpu_ms_per_job(rate, side), 3) for side in SIDES
                    },
                    "rounds": rounds(runs),
                }
                for rate, runs in self.paced.items()
            },
        }


# ------------------------------------------------------------------------------- clients


class RawClient:
    """Hand-written aio-pika producer and stream reader: what the SDK's client does, bare."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.get_exchange(RAW_EXCHANGE)
        reader = await self._connection.channel()
        await reader.set_qos(prefetch_count=STREAM_PREFETCH)
        stream = await reader.get_queue(RAW_RESULTS)
        await stream.consume(self._on_result, arguments={"x-stream-offset": "next"})

    async def _on_result(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        result = json.loads(message.body)
        if result["status"] == "processing":
            return  # a marker (--raw-marker), like the SDK's reader keeps aside
        future = self._waiting.pop(result["job_id"], None)
        if future is not None and not future.done():
            future.set_result(result)

    async def one_job(self) -> None:
        assert self._exchange is not None
        job_id = str(uuid.uuid4())
        body = {
            "version": 1,
            "job_id": job_id,
            "operation": "create",
            "request": REQUEST,
            "priority": 5,
            "attempt": 1,
            "submitted_at": datetime.now(UTC).isoformat(),
        }
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[job_id] = future
        await self._exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                priority=5,
                message_id=job_id,
            ),
            routing_key=RAW_ROUTING_KEY,
            mandatory=True,
        )
        await asyncio.wait_for(future, RESULT_TIMEOUT)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


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


# ------------------------------------------------------------------------------- workers


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
    redis_url: str | None = None,
    stream_target: BrokerTarget | None = None,
) -> dict[str, WorkerProcess]:
    """Starts one worker process per system; each only consumes its own ``bench.*`` queue."""
    workers: dict[str, WorkerProcess] = {}
    if "raw" in systems:
        workers["raw"] = WorkerProcess(
            "raw",
            [
                sys.executable,
                str(BENCH_DIR / "_raw_worker.py"),
                target.url,
                RAW_QUEUE,
                RAW_RESULTS,
                str(WORKER_CONCURRENCY),
                *(["marker"] if raw_marker else []),
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


# ------------------------------------------------------------------------- broker objects


async def broker_version(url: str) -> str:
    connection = await aio_pika.connect(url)
    try:
        transport = connection.transport
        if transport is None:
            return "?"
        properties = transport.connection.server_properties
        version = properties.get("version", "?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await connection.close()


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
    """The raw system's exchange, priority queue and results stream, as the SDK declares its own."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            RAW_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            RAW_QUEUE, durable=True, arguments=job_queue_arguments("classic")
        )
        await queue.bind(exchange, routing_key="bench.raw.#")
        await channel.declare_queue(
            RAW_RESULTS,
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


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> list[int]:
    """A process and every descendant alive now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and every descendant alive now."""
    return sum(process_cpu_seconds(p) or 0.0 for p in tree_pids(pid))


SS_OWNER = re.compile(r"pid=(\d+)")
SS_SEGMENTS = re.compile(r"\bdata_segs_(out|in):(\d+)")


def tcp_segments(ports: tuple[int, ...]) -> dict[tuple[int, int], tuple[int, int]]:
    """Per (process, broker port): TCP segments with data sent to and received from it so far.

    Why: each segment the broker receives is a socket read in its Erlang VM, and each one it
    sends is a write: broker CPU per job that frame counts alone do not show (a client can
    write a job's frames in one segment or in three). Read from the kernel's counters of every
    established connection to the broker (``ss -tinp``), so nothing is traced or slowed down.
    """
    filter_ = " or ".join(f"dport = :{port}" for port in ports)
    try:
        out = subprocess.run(
            ["ss", "-tinpH", "state", "established", f"( {filter_} )"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    totals: dict[tuple[int, int], tuple[int, int]] = {}
    owner: tuple[int, int] | None = None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):  # a socket's first line: addresses, process
            match = SS_OWNER.search(line)
            columns = line.split()
            port = int(columns[3].rsplit(":", 1)[1]) if len(columns) > 3 else 0
            owner = (int(match.group(1)), port) if match else None
            continue
        if owner is None:
            continue
        counts = {kind: int(n) for kind, n in SS_SEGMENTS.findall(line)}
        sent, received = totals.get(owner, (0, 0))
        totals[owner] = (sent + counts.get("out", 0), received + counts.get("in", 0))
    return totals


def broker_pid() -> int | None:
    """The pid of the local RabbitMQ (``tools/rabbitmq/rabbitmq.sh`` writes it to a file)."""
    state = os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state"))
    home = Path(os.environ.get("ITL_RABBITMQ_HOME", f"{state}/itl-workers/rabbitmq"))
    with contextlib.suppress(OSError, ValueError):
        return int((home / "rabbitmq.pid").read_text().strip())
    return None


class CpuMeter:
    """CPU used over a round by the client, the worker, the broker and Redis.

    On a shared 2-core machine jobs/s swing with whatever else runs; CPU per job swings
    much less, so it tells where a system's cost lies even when wall-clock figures are noisy.
    The client is this process (raw, ours) or a peer's client process; the worker counts its
    whole process tree (dramatiq's and taskiq's CLIs fork the process that runs the jobs).
    The broker also serves whoever else uses it: its CPU rate over an idle moment before the
    round is subtracted, else a slower system would be billed for more of others' traffic.
    """

    IDLE_SAMPLE_SECONDS = 0.5

    def __init__(
        self,
        worker_pid: int,
        broker: int | None,
        *,
        client_pid: int | None = None,
        redis: int | None = None,
    ) -> None:
        self._worker_pid = worker_pid
        self._client_pid = client_pid
        self._pids = {
            **({"broker": broker} if broker else {}),
            **({"redis": redis} if redis else {}),
        }
        self._start: dict[str, float] = {}
        self._broker_idle_rate = 0.0
        self._started = 0.0

    async def sample_broker_idle(self) -> None:
        """Measures the broker's background CPU rate while no benchmark job is in flight."""
        pid = self._pids.get("broker")
        before = process_cpu_seconds(pid) if pid else None
        await asyncio.sleep(self.IDLE_SAMPLE_SECONDS)
        after = process_cpu_seconds(pid) if pid else None
        if before is not None and after is not None:
            self._broker_idle_rate = (after - before) / self.IDLE_SAMPLE_SECONDS

    def _now(self) -> dict[str, float]:
        client = (
            process_cpu_seconds(self._client_pid)
            if self._client_pid is not None
            else time.process_time()
        )
        now = {"worker": tree_cpu_seconds(self._worker_pid)}
        if client is not None:
            now["client"] = client
        for side, pid in self._pids.items():
            seconds = process_cpu_seconds(pid)
            if seconds is not None:
                now[side] = seconds
        return now

    def _broker_io(self) -> dict[str, float]:
        """The broker's read/write syscalls (sockets and files) and bytes written to disk."""
        pid = self._pids.get("broker")
        try:
            fields = dict(
                line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines()
            )
        except (OSError, ValueError):
            return {}
        return {
            "syscalls": int(fields["syscr"]) + int(fields["syscw"]),
            "disk_bytes": int(fields["write_bytes"]),
        }

    def _segments(self) -> dict[str, float]:
        """TCP data segments the client and the worker sent to the broker and got from it."""
        per_socket = tcp_segments((PORT, STREAM_PORT))
        sides = {
            "client": [self._client_pid if self._client_pid is not None else os.getpid()],
            "worker": tree_pids(self._worker_pid),
        }
        counts: dict[str, float] = {}
        for side, pids in sides.items():
            for prefix, ports in (("", (PORT, STREAM_PORT)), ("stream_", (STREAM_PORT,))):
                sockets = [per_socket.get((p, port), (0, 0)) for p in pids for port in ports]
                counts[f"{prefix}segs_from_{side}"] = sum(sent for sent, _ in sockets)
                counts[f"{prefix}segs_to_{side}"] = sum(got for _, got in sockets)
        return counts

    def __enter__(self) -> CpuMeter:
        self._io_start = self._broker_io() if "broker" in self._pids else {}
        self._io_start |= self._segments()
        self._start = self._now()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        io_end = (self._broker_io() if "broker" in self._pids else {}) | self._segments()
        self.broker_io = {k: io_end[k] - self._io_start[k] for k in io_end if k in self._io_start}
        self.used = {side: end[side] - self._start[side] for side in end if side in self._start}
        if "broker" in self.used:
            background = self._broker_idle_rate * (time.perf_counter() - self._started)
            self.used["broker"] = max(0.0, self.used["broker"] - background)

    used: dict[str, float]
    broker_io: dict[str, float]


@dataclass(frozen=True)
class BrokerTarget:
    """The virtual host the benchmark runs in, and the URLs both client kinds need for it."""

    vhost: str

    @property
    def url(self) -> str:
        """aio-pika's form: the path after the port is the vhost."""
        return f"amqp://guest:guest@{HOST}:{PORT}/{'' if self.vhost == '/' else self.vhost}"

    @property
    def celery_url(self) -> str:
        """kombu's form, where the default vhost is spelled ``//``."""
        return f"amqp://guest:guest@{HOST}:{PORT}/{self.vhost}"


def rabbitmqctl(*args: str) -> bool:
    """Runs rabbitmqctl against the local broker of ``tools/rabbitmq/rabbitmq.sh``."""
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": os.environ.get("RABBITMQ_NODENAME", "itl@localhost"),
        "PATH": f"/usr/lib/rabbitmq/bin:/usr/sbin:{os.environ.get('PATH', '')}",
    }
    try:
        subprocess.run(
            ["rabbitmqctl", "-q", *args], env=env, capture_output=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@contextlib.contextmanager
def private_vhost(name: str) -> Iterator[BrokerTarget]:
    """A fresh vhost for the run, deleted afterwards; the default vhost if that is impossible.

    Isolation matters on a shared broker: test suites that bind ``provider.#`` would take
    (and fail) the benchmark's jobs, every ``JobQueue`` of a running suite would receive the
    benchmark's results on the shared ``provider.results`` stream (taxing the broker during
    our rounds only), and the benchmark's own objects would otherwise outlive a crash.
    """
    if name == "/":
        yield BrokerTarget("/")
        return
    rabbitmqctl("delete_vhost", name)
    if not (
        rabbitmqctl("add_vhost", name)
        and rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    ):
        print(
            f"note: could not create vhost {name!r} with rabbitmqctl; using the default vhost",
            flush=True,
        )
        yield BrokerTarget("/")
        return
    try:
        yield BrokerTarget(name)
    finally:
        rabbitmqctl("delete_vhost", name)


def broker_reachable() -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((HOST, PORT)) == 0


# ------------------------------------------------------------------------------- the run


@dataclass
class Options:
    systems: list[str]
    jobs: int
    warmup: int
    concurrency: list[int]
    rounds: int
    paced_seconds: float
    raw_marker: bool = False
    client_loop: str = "uvloop"
    paced_rates: list[str] = field(default_factory=list)


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


async def measure(
    options: Options,
    target: BrokerTarget,
    log_dir: Path,
    redis: RedisServer | None,
    stream_target: BrokerTarget | None = None,
) -> dict[str, Summary]:
    """Starts the workers and clients, runs every round, stops everything, returns figures."""
    url = target.url
    await delete_bench_objects(url)
    if stream_target is not None:
        await delete_bench_objects(stream_target.url)
    if "raw" in options.systems:
        await declare_raw_topology(url)
    workers = start_workers(
        target,
        options.systems,
        log_dir,
        raw_marker=options.raw_marker,
        redis_url=redis.url if redis else None,
        stream_target=stream_target,
    )
    clients: dict[str, InProcessClient | PeerClient] = {}
    summaries = {system: Summary() for system in options.systems}
    try:
        ready = {
            "raw": RAW_QUEUE,
            "sdk": SDK_QUEUE,
            **{name: peer.queue for name, peer in PEERS.items()},
        }
        await wait_consumers(
            url, {s: ready[s] for s in options.systems if s != "sdk-amqp"}, workers
        )
        if stream_target is not None:
            await wait_consumers(stream_target.url, {"sdk-amqp": SDK_QUEUE}, workers)
        python = peers_python() if any(s in PEERS for s in options.systems) else ""
        for system in options.systems:
            if system == "raw":
                clients[system] = InProcessClient(RawClient(url))
            elif system == "sdk":
                clients[system] = InProcessClient(SdkClient(url))
            elif system == "sdk-amqp":
                assert stream_target is not None
                clients[system] = InProcessClient(SdkClient(stream_target.url, "amqp"))
            else:
                peer = PEERS[system]
                env = peer.env(target.url, target.celery_url, redis.url if redis else None)
                clients[system] = PeerClient(peer, python, env, log_dir / f"{system}-client.log")
            await clients[system].start()

        broker = broker_pid()
        PAUSES.watch_gc()
        PAUSES.watch_loop()

        def meter(system: str) -> CpuMeter:
            uses_redis = redis is not None and system in PEERS and PEERS[system].uses_redis
            return CpuMeter(
                workers[system].process.pid,
                broker,
                client_pid=clients[system].pid,
                redis=redis.pid if redis is not None and uses_redis else None,
            )

        async def peak(system: str, jobs: int, in_flight: int) -> Run:
            cpu_meter = meter(system)
            await cpu_meter.sample_broker_idle()
            with cpu_meter as cpu:
                seconds, latencies = await clients[system].closed(jobs, in_flight)
            return Run(
                system,
                "peak",
                jobs,
                seconds,
                latencies,
                cpu=cpu.used,
                broker_io=cpu.broker_io,
                in_flight=in_flight,
            )

        async def half(system: str, rate: float, phase: str = "half") -> Run:
            cpu_meter = meter(system)
            await cpu_meter.sample_broker_idle()
            PAUSES.reset()
            with cpu_meter as cpu:
                seconds, latencies = await clients[system].open(rate, options.paced_seconds)
            run = Run(
                system, phase, len(latencies), seconds, latencies, round(rate, 1), cpu=cpu.used
            )
            if isinstance(clients[system], InProcessClient):  # raw's and ours' client: here
                run.pauses = PAUSES.summary()
            return run

        for system in options.systems:
            await peak(system, options.warmup, options.concurrency[0])
            print(f"  warmed up {LABELS[system]}", flush=True)
        for round_no in range(1, options.rounds + 1):
            for in_flight, system in itertools.product(options.concurrency, options.systems):
                run = await peak(system, options.jobs, in_flight)
                workers[system].check_alive()
                summaries[system].peak.append(run)
                print(
                    f"  peak  round {round_no} {in_flight:4d} in flight {LABELS[system]:32}"
                    f" {run.throughput:8.0f} jobs/s"
                    f"  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms  CPU ms/job "
                    + " ".join(f"{k} {v / run.jobs * 1000:.2f}" for k, v in run.cpu.items()),
                    flush=True,
                )
        for round_no in range(1, options.rounds + 1):
            for system in options.systems:
                rate = summaries[system].throughput / 2
                run = await half(system, rate)
                workers[system].check_alive()
                summaries[system].half.append(run)
                print(
                    f"  half  round {round_no} {LABELS[system]:32} {rate:8.0f} jobs/s offered"
                    f"  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms  load "
                    f"{os.getloadavg()[0]:.1f}"
                    + "".join(f"  {k} {v}" for k, v in run.pauses.items()),
                    flush=True,
                )
        rates = common_rates(options.paced_rates, summaries)
        for round_no in range(1, options.rounds + 1):
            for rate, system in itertools.product(rates, options.systems):
                run = await half(system, rate, "paced")
                workers[system].check_alive()
                summaries[system].paced.setdefault(rate, []).append(run)
                print(
                    f"  paced round {round_no} {LABELS[system]:32} {rate:8.0f} jobs/s offered"
                    f"  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms  load "
                    f"{os.getloadavg()[0]:.1f}  CPU ms/job "
                    + " ".join(f"{k} {v / run.jobs * 1000:.2f}" for k, v in run.cpu.items())
                    + "".join(f"  {k} {v}" for k, v in run.pauses.items()),
                    flush=True,
                )
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        for worker in workers.values():
            worker.stop()
        await delete_bench_objects(url)
        if stream_target is not None:
            await delete_bench_objects(stream_target.url)
    return summaries


PACED_RATE_NAMES = ("slowest-half", "ours-half")


def common_rates(specs: list[str], summaries: dict[str, Summary]) -> list[float]:
    """The ``--paced-rates`` in jobs/s, once the peaks they may name are measured:
    ``slowest-half`` is the lowest half peak of the run's systems, ``ours-half`` half of
    ours' (the SDK at its defaults; else ours over AMQP) peak. Duplicates are dropped."""
    rates: list[float] = []
    for spec in specs:
        if spec == "slowest-half":
            rate = min(s.throughput for s in summaries.values()) / 2
        elif spec == "ours-half":
            ours = next(o for o in OURS if o in summaries)
            rate = summaries[ours].throughput / 2
        else:
            rate = float(spec)
        rate = round(rate, 1)
        if rate not in rates:
            rates.append(rate)
    return rates


def report(summaries: dict[str, Summary], options: Options, header: dict[str, str]) -> list[str]:
    """The table, the ratios and the verdict against the goal's targets, as text lines."""
    lines = [f"{key}: {value}" for key, value in header.items()]
    lines.append("")
    lines.append(
        "| system | peak jobs/s (median; rounds min-max) | in flight @peak | p50 ms @peak "
        "| p99 ms @peak | half-peak rate jobs/s | p50 ms @half | p99 ms @half |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for system, s in summaries.items():
        d = s.as_dict()
        lines.append(
            f"| {LABELS[system]} | {d['peak_jobs_per_s']:.0f} "
            f"({s.spread(s.peak_runs, lambda r: r.throughput)}) | {d['peak_in_flight']} "
            f"| {d['peak_p50_ms']:.1f} | {d['peak_p99_ms']:.1f} | {d['half_rate']:.0f} "
            f"| {d['half_p50_ms']:.1f} | {d['half_p99_ms']:.1f} |"
        )
    rates = sorted({rate for s in summaries.values() for rate in s.paced})
    if rates:
        lines.append("")
        lines.append("p50 / p99 ms at common paced rates (median of rounds; rounds' p99 min-max):")
        lines.append("")
        lines.append("| system | " + " | ".join(f"{rate:.0f} jobs/s" for rate in rates) + " |")
        lines.append("|---|" + "---:|" * len(rates))
        for system, s in summaries.items():
            cells = []
            for rate in rates:
                d = s.as_dict()["paced"].get(str(rate))
                runs = s.paced.get(rate, [])
                cells.append(
                    f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f} "
                    f"({s.spread(runs, lambda r: r.p99_ms, 1)})"
                    if d
                    else "-"
                )
            lines.append(f"| {LABELS[system]} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            "CPU per job at the common paced rates (ms, median of rounds; "
            "client / worker / broker [/ redis] = total):"
        )
        lines.append("")
        lines.append("| system | " + " | ".join(f"{rate:.0f} jobs/s" for rate in rates) + " |")
        lines.append("|---|" + "---:|" * len(rates))
        for system, s in summaries.items():
            cells = []
            for rate in rates:
                sides = [s.paced_cpu_ms_per_job(rate, side) for side in SIDES]
                known = [v for v in sides if not math.isnan(v)]
                cells.append(
                    " / ".join(f"{v:.2f}" for v in known) + f" = {sum(known):.2f}" if known else "-"
                )
            lines.append(f"| {LABELS[system]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Throughput by client load (jobs/s, median of rounds):")
    lines.append("")
    lines.append("| system | " + " | ".join(f"{n} in flight" for n in options.concurrency) + " |")
    lines.append("|---|" + "---:|" * len(options.concurrency))
    for system, s in summaries.items():
        lines.append(
            f"| {LABELS[system]} | "
            + " | ".join(f"{s.throughput_at(n):.0f}" for n in options.concurrency)
            + " |"
        )
    lines.append("")
    lines.append(
        "CPU per job at peak (ms, median of rounds; broker: minus its idle rate before the round):"
    )
    lines.append("")
    lines.append(
        "| system | client | worker | broker | redis | total "
        "| broker read+write syscalls/job | broker disk KiB/job |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for system, s in summaries.items():
        sides = [s.cpu_ms_per_job(side) for side in SIDES]
        lines.append(
            f"| {LABELS[system]} | "
            + " | ".join("-" if math.isnan(v) else f"{v:.2f}" for v in sides)
            + f" | {sum(v for v in sides if not math.isnan(v)):.2f} "
            f"| {s.broker_io_per_job('syscalls'):.1f} "
            f"| {s.broker_io_per_job('disk_bytes') / 1024:.2f} |"
        )
    lines.append("")
    lines.append(
        "TCP segments with data per job at peak, between the broker (AMQP and stream ports) "
        "and each side (median of rounds; in brackets: of those, on the stream port):"
    )
    lines.append("")
    lines.append(
        "| system | client -> broker | broker -> client | worker -> broker | broker -> worker "
        "| into the broker |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|")
    for system, s in summaries.items():
        segs = [s.broker_io_per_job(key) for key in SEGMENTS]
        stream = [s.broker_io_per_job(f"stream_{key}") for key in SEGMENTS]
        lines.append(
            f"| {LABELS[system]} | "
            + " | ".join(
                f"{v:.2f}" + (f" ({w:.2f})" if w > 0 else "")
                for v, w in zip(segs, stream, strict=True)
            )
            + f" | {segs[0] + segs[2]:.2f} |"
        )
    lines.append("")
    lines.extend(verdicts(summaries))
    return lines


OURS = ("sdk", "sdk-amqp")


def verdicts(summaries: dict[str, Summary]) -> list[str]:
    """Ours (each results protocol in the run) against every other system, then the goal."""
    lines: list[str] = []
    for ours in (o for o in OURS if o in summaries):
        prefix = "ours" if ours == "sdk" else "ours (amqp)"
        lines.extend(
            f"{prefix}/{other} throughput = {summaries[ours].throughput / s.throughput:.2f}x"
            for other, s in summaries.items()
            if other != ours
        )
        for name, met, text in goal(summaries, ours):
            lines.append(f"{name}: {text} ({'met' if met else 'MISSED'})")
    return lines


def goal(summaries: dict[str, Summary], ours: str = "sdk") -> list[tuple[str, bool, str]]:
    """The targets that the systems in this run can judge: (target, met, figures)."""
    sdk = summaries[ours]
    name = "ours" if ours == "sdk" else "ours (amqp)"
    targets: list[tuple[str, bool, str]] = []
    if "raw" in summaries:
        ratio = sdk.throughput / summaries["raw"].throughput
        targets.append(
            (
                f"{name} vs raw aio-pika",
                ratio >= TARGET_VS_RAW,
                f"{ratio:.2f}x, >= {TARGET_VS_RAW}x",
            )
        )
    peers = [p for p in GOAL_PEERS if p in summaries]
    if peers:
        fastest = max(peers, key=lambda p: summaries[p].throughput)
        ratio = sdk.throughput / summaries[fastest].throughput
        targets.append(
            (
                f"{name} vs the fastest peer at its defaults",
                ratio >= TARGET_VS_PEERS,
                f"{ratio:.2f}x {LABELS[fastest]}, >= {TARGET_VS_PEERS}x",
            )
        )
    p99 = sdk.as_dict()["half_p99_ms"]
    targets.append(
        (f"{name} p99 at half peak", p99 < TARGET_P99_MS, f"{p99:.1f} ms, < {TARGET_P99_MS:.0f} ms")
    )
    return targets


def parse_args(argv: list[str] | None = None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--systems", default=",".join(LABELS), help="comma-separated subset of " + ",".join(LABELS)
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per peak round")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up jobs per system")
    parser.add_argument(
        "--concurrency",
        default="50,200",
        help="client loads (jobs in flight), comma-separated; the peak is the best load's rate",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per phase (median)")
    parser.add_argument("--paced-seconds", type=float, default=8.0, help="seconds per half round")
    parser.add_argument(
        "--paced-rates",
        default="",
        help="also pace every system at these common rates, comma-separated: jobs/s, "
        "'slowest-half' (the lowest half peak in the run) or 'ours-half' (half ours' peak)",
    )
    parser.add_argument(
        "--vhost",
        default=DEFAULT_VHOST,
        help="vhost created (rabbitmqctl) and deleted for the run; '/' to use the default",
    )
    parser.add_argument(
        "--raw-marker",
        action="store_true",
        help="raw worker also sends the SDK's unconfirmed 'processing' marker per job",
    )
    parser.add_argument(
        "--client-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of the raw and SDK clients (uvloop, as itl-api under uvicorn runs)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a target is missed (needs sdk, raw and the peers at their defaults)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run while developing: 1 round of 500 jobs at 100 in flight, 3 s paced",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.jobs, args.warmup = 1, 500, 100
        args.concurrency, args.paced_seconds = "100", 3.0
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(LABELS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    try:
        loads = [int(n) for n in args.concurrency.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--concurrency takes comma-separated integers, not {args.concurrency!r}")
    if not loads or min(loads) < 1:
        parser.error("--concurrency needs at least one load of 1 or more jobs in flight")
    paced_rates = [r.strip() for r in args.paced_rates.split(",") if r.strip()]
    for spec in paced_rates:
        if spec in PACED_RATE_NAMES:
            continue
        try:
            valid = float(spec) > 0
        except ValueError:
            valid = False
        if not valid:
            parser.error(
                f"--paced-rates takes positive jobs/s or {' or '.join(PACED_RATE_NAMES)}, "
                f"not {spec!r}"
            )
    if "ours-half" in paced_rates and not set(OURS) & set(systems):
        parser.error("--paced-rates ours-half needs sdk or sdk-amqp among the systems")
    missing = {"sdk", "raw", *GOAL_PEERS} - set(systems)
    if args.check and missing:
        parser.error(f"--check judges the goal, which needs {', '.join(sorted(missing))} too")
    options = Options(
        systems=systems,
        jobs=args.jobs,
        warmup=args.warmup,
        concurrency=loads,
        rounds=args.rounds,
        paced_seconds=args.paced_seconds,
        raw_marker=args.raw_marker,
        client_loop=args.client_loop,
        paced_rates=paced_rates,
    )
    return options, args


def main(argv: list[str] | None = None) -> int:
    options, args = parse_args(argv)
    if not broker_reachable():
        print(f"no RabbitMQ on {HOST}:{PORT}; start it with `make rabbitmq-up`", file=sys.stderr)
        return 2
    rabbitmq_version = asyncio.run(broker_version(BrokerTarget("/").url))
    load_before = os.getloadavg()
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}",
        "python": platform.python_version(),
        "versions": (
            f"RabbitMQ {rabbitmq_version}, aio-pika {aio_pika.__version__}"
            + (f", {peer_versions()}" if any(s in PEERS for s in options.systems) else "")
        ),
        "shape": (
            f"{options.rounds} rounds x {options.jobs} jobs at each of "
            f"{', '.join(map(str, options.concurrency))} jobs in flight, "
            f"then {options.rounds} rounds x {options.paced_seconds:g}s at half peak"
            + (
                f" and at each of {', '.join(options.paced_rates)} jobs/s"
                if options.paced_rates
                else ""
            )
            + "; "
            f"worker concurrency {WORKER_CONCURRENCY}; clients on {options.client_loop}"
            + ("; raw worker sends processing markers" if options.raw_marker else "")
        ),
    }
    print("measuring (" + header["shape"] + ")", flush=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="itl-bench-") as tmp,
        private_vhost(args.vhost) as target,
        (
            private_vhost(f"{args.vhost}-amqp")
            if "sdk-amqp" in options.systems
            else contextlib.nullcontext()
        ) as stream_target,
        redis_for(options.systems) as redis,
    ):
        header["vhost"] = target.vhost
        try:
            with asyncio.Runner(loop_factory=lambda: new_client_loop(options.client_loop)) as run:
                summaries = run.run(measure(options, target, Path(tmp), redis, stream_target))
        except Exception as exc:
            # On a shared broker a test suite may restart it (rabbitmqctl stop_app) mid-run;
            # a round disturbed that way measures nothing, so say so plainly and stop.
            print(f"\nbenchmark aborted: {type(exc).__name__}: {exc}", file=sys.stderr)
            print("(a broker restart or a failed job spoils a run: run it again)", file=sys.stderr)
            return 1
    header["load average (1 min) before/after"] = f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
    header["wall time"] = f"{time.monotonic() - started:.0f}s"
    print()
    print("\n".join(report(summaries, options, header)))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"header": header, "systems": {k: v.as_dict() for k, v in summaries.items()}},
                indent=2,
            )
        )
    if args.check:
        return 0 if all(met for _, met, _ in goal(summaries)) else 1
    return 0


@contextlib.contextmanager
def redis_for(systems: list[str]) -> Iterator[RedisServer | None]:
    """A Redis for the run when a peer keeps its results there (dramatiq, taskiq)."""
    if any(s in PEERS and PEERS[s].uses_redis for s in systems):
        with redis_server() as redis:
            yield redis
    else:
        yield None


def peer_versions() -> str:
    """The peers' versions, asked of their own virtualenv."""
    names = ("dramatiq", "taskiq", "taskiq-aio-pika", "taskiq-redis", "celery", "faststream")
    code = (
        "import importlib.metadata as m;"
        f"print(', '.join(f'{{n}} {{m.version(n)}}' for n in {names!r}))"
    )
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    version = next((w[2:] for w in redis.stdout.split() if w.startswith("v=")), "?")
    return (
        subprocess.run(
            [peers_python(), "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        + f", redis-server {version}"
    )


if __name__ == "__main__":
    sys.exit(main())
