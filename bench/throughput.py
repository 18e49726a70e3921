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
raw-stream
    the same with the results over RabbitMQ's stream protocol (rstream): the worker's
    ``send_wait`` per result, the client's ``subscribe``. What ours does at its defaults,
    written the plainest way aio-pika and rstream allow: the SDK's own overhead is the gap.
    With ``--raw-stream-batched`` its worker sends the results of one event-loop iteration in
    one frame and acks a run of jobs with one ``multiple`` ack: the floor of broker work per
    job with the same guarantees, for the broker CPU the design could save at best.
sdk
    ``JobQueue.submit_job`` + ``JobQueue.get_result`` against one
    ``python -m itl_controlplane_sdk.workers`` process (MAX_CONCURRENT_JOBS=10) running the
    benchmark's no-op provider (``_sdk_providers.NoOpJob``: the peers' answer, the resource
    name and a status, in the SDK's response model), at the SDK's defaults:
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

This module runs the rounds and reads the command line; its parts live beside it, one job
each: ``_broker`` (where the broker is, the run's vhost), ``_systems`` (raw's and ours'
clients and broker objects), ``_workers`` (the worker processes), ``_counters`` (CPU, system
calls and TCP segments from the kernel), ``_figures`` (a round's and a system's figures) and
``_report`` (the tables and the verdict).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
from _broker import (
    DEFAULT_VHOST,
    HOST,
    PORT,
    BrokerTarget,
    broker_pid,
    broker_reachable,
    broker_version,
    private_vhost,
)
from _counters import CpuMeter
from _figures import Run, Summary
from _report import GOAL_PEERS, LABELS, OURS, PACED_RATE_NAMES, common_rates, goal, report
from _stage_probe import Stamps
from _systems import (
    RAW_QUEUE,
    RAW_STREAM_QUEUE,
    SDK_QUEUE,
    WORKER_CONCURRENCY,
    InProcessClient,
    RawClient,
    RawStreamClient,
    SdkClient,
    declare_raw_topology,
    delete_bench_objects,
    new_client_loop,
)
from _workers import start_workers, wait_consumers
from peers import PEERS, PeerClient, RedisServer, peers_python, redis_server

PAUSES = Stamps()
"""Event-loop lag and GC pauses of this process, which runs raw's and ours' clients: the
half-peak rounds report them beside their p99 (``latency_stages.py`` splits the tail)."""


@dataclass
class Options:
    systems: list[str]
    jobs: int
    warmup: int
    concurrency: list[int]
    rounds: int
    paced_seconds: float
    raw_marker: bool = False
    raw_stream_batched: bool = False
    client_loop: str = "uvloop"
    paced_rates: list[str] = field(default_factory=list)


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
    if {"raw", "raw-stream"} & set(options.systems):
        await declare_raw_topology(url)
    workers = start_workers(
        target,
        options.systems,
        log_dir,
        raw_marker=options.raw_marker,
        raw_stream_batched=options.raw_stream_batched,
        redis_url=redis.url if redis else None,
        stream_target=stream_target,
    )
    clients: dict[str, InProcessClient | PeerClient] = {}
    summaries = {system: Summary() for system in options.systems}
    try:
        ready = {
            "raw": RAW_QUEUE,
            "raw-stream": RAW_STREAM_QUEUE,
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
            elif system == "raw-stream":
                clients[system] = InProcessClient(RawStreamClient(url))
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

        # Every client is connected: freeze what exists now (modules, clients; the peers'
        # drivers do the same after their start) out of the collector's sight, as the SDK's
        # worker and itl-api do at start-up. Otherwise a full collection of this process's
        # import-time objects (18-28 ms measured) lands in a paced round and sets its p99.
        gc.collect()
        gc.freeze()
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
        "--raw-stream-batched",
        action="store_true",
        help="raw-stream worker sends the results of one loop iteration in one frame and acks "
        "them with one multiple ack: the floor of broker work per job",
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
        raw_stream_batched=args.raw_stream_batched,
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
            + (
                "; raw-stream worker batches results and acks per iteration"
                if options.raw_stream_batched
                else ""
            )
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
    print("\n".join(report(summaries, options.concurrency, header)))
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
