"""Where the submit-to-result tail at half peak goes: every job's stages, timed.

One SDK client (this process, on uvloop, as in ``throughput.py``) and one SDK worker
(``_stage_worker.py``: the SDK's worker with stamps wrapped around it from the outside) run
the benchmark's no-op job at a paced rate, by default half of a peak measured first. For each
job it records, on the one monotonic clock all processes share:

    scheduled -> submit called -> submit_job returned (the job's publisher confirm)
    submit called -> delivered at the worker -> result made -> result frame sent ->
        result confirmed -> ack planned -> ack frame queued
    result sent -> result seen by the client's reader -> get_result returned

and, beside them, the event-loop lag of client and worker (a 2 ms sleep's lateness), their
garbage-collector pauses (``gc.callbacks``), the machine's steal time and run queue
(``/proc/stat``, sampled every 20 ms), how long the broker, worker and client waited for a
CPU (run-queue wait, ``/proc/PID/task/*/schedstat``) and the broker's CPU per job. It prints
each stage's p50/p99, the stages of the slowest 1 % of jobs, and what those jobs overlapped.

``--variants`` compares broker-side settings in interleaved rounds against the current code:
``current``; ``cqv2`` (the job queue at classic queue version 2, applied by a
``queue-version`` policy, which converts an existing queue in place); ``gcfreeze`` (the
client's start-up objects frozen out of the collector's sight, ``gc.freeze()``, as the
worker does after start-up); ``transient`` (diagnostic only, it drops a guarantee: jobs
published non-persistent, so their confirm does not wait for the queue's disk sync).

    python bench/latency_stages.py --rounds 3 --seconds 5 --variants current,cqv2,transient
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
from _broker import DEFAULT_VHOST, BrokerTarget, broker_pid, private_vhost, rabbitmqctl
from _counters import process_cpu_seconds
from _figures import percentile
from _loops import closed_loop, on_schedule
from _stage_probe import Stamps, wrap_async
from _systems import RESULT_TIMEOUT, SDK_QUEUE, SdkClient, delete_bench_objects, new_client_loop
from _workers import BENCH_DIR, WorkerProcess, sdk_worker_env, wait_consumers

from itl_controlplane_sdk.workers import JobStatus
from itl_controlplane_sdk.workers.queue import JobQueue
from itl_controlplane_sdk.workers.result_store import ResultReader

VARIANTS = ("current", "cqv2", "gcfreeze", "transient")
SAMPLE_SECONDS = 0.02
CLIENT_STAGES = ("scheduled", "submit", "confirmed", "seen", "done")
# (label, from stage, to stage); the worker's stamps are merged into each job's record.
SPANS = (
    ("late start (scheduled -> submit called)", "scheduled", "submit"),
    ("job confirm (submit -> submit_job returned)", "submit", "confirmed"),
    ("publish -> delivered at the worker", "submit", "delivered"),
    ("delivered -> result made (decode, handler)", "delivered", "result_start"),
    ("result made -> result frame sent", "result_start", "result_sent"),
    ("result sent -> result confirmed", "result_sent", "result_confirmed"),
    ("result confirmed -> ack frame queued", "result_confirmed", "ack_flushed"),
    ("result sent -> seen by the client", "result_sent", "seen"),
    ("max(confirmed, seen) -> get_result returned", "ready", "done"),
    ("total (scheduled -> result)", "scheduled", "done"),
)

CLIENT = Stamps()


# ---------------------------------------------------------------------------- machine probe


@dataclass
class MachineSamples:
    """The machine every 20 ms: steal share, runnable threads, broker CPU share."""

    times: list[float] = field(default_factory=list)
    steal: list[float] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    broker: list[float] = field(default_factory=list)

    def around(self, start: float, end: float) -> dict[str, float]:
        picked = [i for i, t in enumerate(self.times) if start - SAMPLE_SECONDS <= t <= end]
        if not picked:
            return {"steal": 0.0, "running_max": 0.0, "broker": 0.0}
        return {
            "steal": max(self.steal[i] for i in picked),
            "running_max": float(max(self.running[i] for i in picked)),
            "broker": max(self.broker[i] for i in picked),
        }


def _cpu_line() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7], sum(fields)  # steal, total


def _procs_running() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("procs_running"):
            return int(line.split()[1])
    return 0


def runqueue_wait(pid: int | None) -> float:
    """Seconds the threads of ``pid`` have spent runnable but waiting for a CPU, so far.

    The second field of each thread's ``/proc/PID/task/TID/schedstat``: on a machine with
    more runnable threads than cores this is how long a process was ready and not running.
    """
    if pid is None:
        return 0.0
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def sample_machine(samples: MachineSamples, stop: threading.Event, broker: int | None) -> None:
    steal0, total0 = _cpu_line()
    cpu0 = process_cpu_seconds(broker) if broker else None
    last = time.perf_counter()
    while not stop.wait(SAMPLE_SECONDS):
        now = time.perf_counter()
        steal1, total1 = _cpu_line()
        cpu1 = process_cpu_seconds(broker) if broker else None
        samples.times.append(now)
        samples.steal.append((steal1 - steal0) / max(1, total1 - total0))
        samples.running.append(_procs_running())
        samples.broker.append((cpu1 - cpu0) / (now - last) if cpu0 is not None and cpu1 else 0.0)
        steal0, total0, cpu0, last = steal1, total1, cpu1, now


# -------------------------------------------------------------------------------- variants


def apply_variant(target: BrokerTarget, variant: str) -> None:
    """Sets the broker-side part of a variant (the job queue's version) before its round."""
    if variant == "cqv2":
        ok = rabbitmqctl(
            "set_policy",
            "-p",
            target.vhost,
            "--apply-to",
            "queues",
            "bench-cqv2",
            f"^{SDK_QUEUE.replace('.', '[.]')}$",
            '{"queue-version": 2}',
        )
    else:
        ok = rabbitmqctl("clear_policy", "-p", target.vhost, "bench-cqv2")
    if not ok and variant == "cqv2":
        raise RuntimeError("could not set the queue-version policy with rabbitmqctl")


def instrument_client(transient: dict[str, bool]) -> None:
    """Stamps the client's reader seeing a result; makes jobs transient for that variant."""

    def seen(_reader: Any, job_id: str | None, message_type: str | None, *_: Any) -> None:
        if message_type is None:
            CLIENT.stamp(job_id, "seen")

    wrap_async(ResultReader, "_on_tail_record", seen)

    def maybe_transient(_queue: Any, _exchange: str, message: aio_pika.Message, *_: Any) -> None:
        if transient["on"]:
            message.delivery_mode = aio_pika.DeliveryMode.NOT_PERSISTENT

    wrap_async(JobQueue, "_publish_job", maybe_transient)


async def paced(client: SdkClient, rate: float, seconds: float) -> list[str]:
    """Submits on a fixed schedule; returns the ids of the jobs it ran."""
    ids: list[str] = []

    async def one(scheduled: float) -> None:
        submitted = time.perf_counter()
        job_id = await client.queue.submit_job("ITL.Bench", "Job", "create", client.request)
        confirmed = time.perf_counter()
        result = await client.queue.get_result(job_id, timeout=RESULT_TIMEOUT)
        done = time.perf_counter()
        if result is None or result.status is not JobStatus.COMPLETED:
            raise RuntimeError(f"job {job_id} did not complete: {result}")
        stamps = CLIENT.jobs[job_id]
        stamps.update(scheduled=scheduled, submit=submitted, confirmed=confirmed, done=done)
        ids.append(job_id)

    await on_schedule(one, rate, seconds)
    return ids


# -------------------------------------------------------------------------------- analysis


def _mean(values: Iterator[float], scale: float = 1.0, digits: int = 2) -> float:
    """Mean of ``values`` times ``scale``, rounded; NaN when there are none."""
    picked = list(values)
    return round(statistics.fmean(picked) * scale, digits) if picked else float("nan")


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000 if values else float("nan")


def analyse(
    name: str,
    jobs: dict[str, dict[str, float]],
    client_lags: list[tuple[float, float]],
    worker: dict[str, Any],
    client_gc: list[tuple[float, float, int]],
    machine: MachineSamples,
) -> dict[str, Any]:
    """Each stage's distribution, and what the slowest 1 % of jobs waited on and overlapped."""
    for stamps in jobs.values():
        if "confirmed" in stamps and "seen" in stamps:
            stamps["ready"] = max(stamps["confirmed"], stamps["seen"])
    complete = [s for s in jobs.values() if "done" in s]
    complete.sort(key=lambda s: s["done"] - s["scheduled"])
    slow = complete[-max(1, len(complete) // 100) :]
    spans: dict[str, dict[str, float]] = {}
    for label, start, end in SPANS:
        values = [s[end] - s[start] for s in complete if start in s and end in s]
        spans[label] = {
            "p50_ms": round(_ms(values, 50), 2),
            "p99_ms": round(_ms(values, 99), 2),
            "slowest_1pct_mean_ms": _mean(
                (s[end] - s[start] for s in slow if start in s and end in s), 1000
            ),
        }
    worker_lags = [tuple(x) for x in worker.get("lags", [])]
    worker_gc = [tuple(x) for x in worker.get("gc_pauses", [])]

    def overlap(events: list[Any], s: dict[str, float]) -> float:
        """Longest lag or pause that overlaps the job's life."""
        return max((e[1] for e in events if s["scheduled"] <= e[0] <= s["done"]), default=0.0)

    first = complete[0]["scheduled"] if complete else 0.0
    last = max((s["done"] for s in complete), default=0.0)

    def in_round(events: list[Any]) -> list[Any]:
        return [e for e in events if first <= e[0] <= last]

    def sampled(values: list[float] | list[int]) -> Iterator[float]:
        return (v for t, v in zip(machine.times, values, strict=True) if first <= t <= last)

    return {
        "variant": name,
        "jobs": len(complete),
        "p50_ms": round(_ms([s["done"] - s["scheduled"] for s in complete], 50), 2),
        "p99_ms": round(_ms([s["done"] - s["scheduled"] for s in complete], 99), 2),
        "spans": spans,
        "slowest_1pct": {
            "jobs": len(slow),
            "confirm_came_last": sum(1 for s in slow if s.get("confirmed", 0) >= s.get("seen", 0)),
            "client_lag_max_ms": _mean((overlap(client_lags, s) for s in slow), 1000),
            "worker_lag_max_ms": _mean((overlap(worker_lags, s) for s in slow), 1000),
            "client_gc_max_ms": _mean((overlap(client_gc, s) for s in slow), 1000),
            "worker_gc_max_ms": _mean((overlap(worker_gc, s) for s in slow), 1000),
            "steal_max": _mean(
                (machine.around(s["scheduled"], s["done"])["steal"] for s in slow), digits=3
            ),
            "runnable_max": _mean(
                (machine.around(s["scheduled"], s["done"])["running_max"] for s in slow),
                digits=1,
            ),
        },
        "round": {
            "client_lags_over_5ms": sum(1 for e in in_round(client_lags) if e[1] > 0.005),
            "client_lag_max_ms": round(
                max((e[1] for e in in_round(client_lags)), default=0) * 1e3, 1
            ),
            "worker_lags_over_5ms": sum(1 for e in in_round(worker_lags) if e[1] > 0.005),
            "worker_lag_max_ms": round(
                max((e[1] for e in in_round(worker_lags)), default=0) * 1e3, 1
            ),
            "client_gc_ms": round(sum(e[1] for e in in_round(client_gc)) * 1000, 1),
            "worker_gc_ms": round(sum(e[1] for e in in_round(worker_gc)) * 1000, 1),
            "steal_mean": _mean(sampled(machine.steal), digits=3),
            "runnable_mean": _mean(sampled(machine.running)),
            "broker_cpu_share": _mean(sampled(machine.broker), digits=3),
            "samples": sum(1 for _ in sampled(machine.steal)),
        },
    }


def print_analysis(result: dict[str, Any]) -> None:
    print(
        f"\n== {result['variant']}: {result['jobs']} jobs, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms",
        flush=True,
    )
    print(f"  {'stage':50} {'p50':>8} {'p99':>8} {'slowest 1%':>11}")
    for label, figures in result["spans"].items():
        print(
            f"  {label:50} {figures['p50_ms']:8.2f} {figures['p99_ms']:8.2f} "
            f"{figures['slowest_1pct_mean_ms']:11.2f}"
        )
    print(f"  slowest 1 %: {json.dumps(result['slowest_1pct'])}")
    print(f"  round: {json.dumps(result['round'])}", flush=True)


# ------------------------------------------------------------------------------------ run


@dataclass
class Args:
    rate: float | None
    seconds: float
    rounds: int
    variants: list[str]
    vhost: str
    json_path: Path | None


async def run(args: Args, target: BrokerTarget, log_dir: Path) -> list[dict[str, Any]]:
    await delete_bench_objects(target.url)
    transient = {"on": False}
    instrument_client(transient)
    CLIENT.watch_gc()
    stamps_path = log_dir / "worker-stamps.json"
    env = {**sdk_worker_env(target), "STAGE_STAMPS": str(stamps_path)}
    worker = WorkerProcess(
        "sdk-stages", [sys.executable, str(BENCH_DIR / "_stage_worker.py")], env, log_dir
    )
    samples = MachineSamples()
    stop = threading.Event()
    sampler = threading.Thread(
        target=sample_machine, args=(samples, stop, broker_pid()), daemon=True
    )
    client = SdkClient(target.url)
    rounds: list[tuple[str, list[str], float | None, dict[str, float]]] = []
    try:
        await wait_consumers(target.url, {"sdk": SDK_QUEUE}, {"sdk": worker})
        await client.start()
        CLIENT.watch_loop()
        await closed_loop(client.one_job, 300, 50)  # warm-up
        rate = args.rate
        if rate is None:
            seconds, _ = await closed_loop(client.one_job, 1500, 200)
            rate = round(1500 / seconds / 2)
            print(f"peak {1500 / seconds:.0f} jobs/s (1500 jobs, 200 in flight)", flush=True)
        print(f"paced at {rate:.0f} jobs/s for {args.seconds} s per round", flush=True)
        sampler.start()
        broker = broker_pid()
        for round_no in range(args.rounds):
            for variant in args.variants:
                apply_variant(target, variant)
                transient["on"] = variant == "transient"
                await asyncio.sleep(0.5)
                gc.collect()  # every variant starts its round with the same collector state
                if variant == "gcfreeze":
                    gc.freeze()
                cpu = process_cpu_seconds(broker) if broker else None
                pids = {"broker": broker, "worker": worker.process.pid, "client": os.getpid()}
                waited = {side: runqueue_wait(pid) for side, pid in pids.items()}
                started = time.perf_counter()
                ids = await paced(client, rate, args.seconds)
                elapsed = time.perf_counter() - started
                waits = {
                    side: round((runqueue_wait(pid) - waited[side]) / elapsed * 1000, 1)
                    for side, pid in pids.items()
                }
                after = process_cpu_seconds(broker) if broker else None
                gc.unfreeze()
                broker_ms = (after - cpu) / len(ids) * 1000 if cpu is not None and after else None
                rounds.append((variant, ids, broker_ms, waits))
                print(f"round {round_no + 1} {variant}: {len(ids)} jobs", flush=True)
    finally:
        stop.set()
        await client.close()
        worker.stop()
    worker_stamps = json.loads(stamps_path.read_text())
    if args.json_path is not None:  # the raw stamps first, whatever the analysis does
        raw = {"client": CLIENT.as_dict(), "worker": worker_stamps, "rounds": rounds}
        args.json_path.with_suffix(".raw.json").write_text(json.dumps(raw))
    results: list[dict[str, Any]] = []
    for variant, ids, broker_ms, waits in rounds:
        jobs = {
            job_id: {**CLIENT.jobs[job_id], **worker_stamps["jobs"].get(job_id, {})}
            for job_id in ids
        }
        result = analyse(variant, jobs, CLIENT.lags, worker_stamps, CLIENT.gc_pauses, samples)
        result["round"]["broker_cpu_ms_per_job"] = round(broker_ms, 3) if broker_ms else None
        result["round"]["runqueue_wait_ms_per_s"] = waits
        print_analysis(result)
        results.append(result)
    for variant in args.variants:
        mine = [r for r in results if r["variant"] == variant]
        print(
            f"{variant}: p99 by round {[r['p99_ms'] for r in mine]} ms, "
            f"job confirm p99 {[r['spans'][SPANS[1][0]]['p99_ms'] for r in mine]} ms, "
            f"broker ms/job {[r['round']['broker_cpu_ms_per_job'] for r in mine]}, "
            f"run-queue wait ms/s {[r['round']['runqueue_wait_ms_per_s'] for r in mine]}",
            flush=True,
        )
    return results


def parse_args(argv: list[str] | None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, help="jobs/s (default: half a measured peak)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="current", help=",".join(VARIANTS))
    parser.add_argument("--vhost", default=f"{DEFAULT_VHOST}-stages")
    parser.add_argument("--json", type=Path, dest="json_path")
    ns = parser.parse_args(argv)
    variants = ns.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    return Args(ns.rate, ns.seconds, ns.rounds, variants, ns.vhost, ns.json_path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"load average before: {os.getloadavg()}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="itl-stages-") as tmp,
        private_vhost(args.vhost) as target,
    ):
        loop = new_client_loop("uvloop")
        try:
            results = loop.run_until_complete(run(args, target, Path(tmp)))
        finally:
            loop.close()
    print(f"load average after: {os.getloadavg()}", flush=True)
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
