"""Where our job round trip saturates: 1, 2 and 4 worker processes, 1 and 3 client processes;
and whether memory stays bounded: RSS of a client and a worker after many jobs.

Every SDK client here runs in a process of its own (``bench/_sdk_client.py``, driven over
stdin/stdout like the peers of ``bench/throughput.py``), each worker is
``python -m itl_controlplane_sdk.workers`` with 10 jobs at once, all on one queue. For each
combination, ``--rounds`` closed-loop rounds: every client process runs ``--jobs / clients``
jobs with ``--in-flight / clients`` in flight at the same moment; jobs/s = all jobs / the
slowest client's time. CPU per job is reported for the clients, the workers and the broker:
on two cores the sum of those is what bounds the rate.

``--rss-jobs N`` instead pushes N jobs through one client and one worker in steps, and prints
both processes' RSS after each step. ``--results-protocol`` (default ``auto``, the SDK's)
runs clients and workers with that ``RESULTS_PROTOCOL`` (the broker's stream port:
``ITL_BENCH_RABBITMQ_STREAM_PORT``).

    python bench/scaling.py --workers 1,2,4 --clients 1,3
    python bench/scaling.py --rss-jobs 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from _broker import BrokerTarget, broker_pid, private_vhost
from _counters import process_cpu_seconds, tree_cpu_seconds
from _systems import SDK_QUEUE, delete_bench_objects
from _workers import SDK_WORKER_ARGV, WorkerProcess, sdk_worker_env, wait_consumers
from peers import Peer, PeerClient

from itl_controlplane_sdk.contract.settings import RESULTS_PROTOCOLS, ResultsProtocol

SDK_CLIENT = Peer("sdk-client", "_sdk_client", "defaults", "ours (client process)")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Fleet:
    """``workers`` SDK worker processes and ``clients`` SDK client processes on one queue."""

    def __init__(
        self,
        target: BrokerTarget,
        workers: int,
        clients: int,
        log_dir: Path,
        results_protocol: ResultsProtocol = "auto",
    ) -> None:
        self.target = target
        self.log_dir = log_dir
        worker_env = sdk_worker_env(target, results_protocol=results_protocol)
        self.workers = [
            WorkerProcess(
                f"worker-{i}", SDK_WORKER_ARGV, {**worker_env, "WORKER_ID": f"bench-w{i}"}, log_dir
            )
            for i in range(workers)
        ]
        env = {
            "BENCH_AMQP_URL": target.url,
            "PYTHONPATH": worker_env["PYTHONPATH"],
            "RESULTS_PROTOCOL": results_protocol,
            "RESULTS_STREAM_PORT": worker_env["RESULTS_STREAM_PORT"],
        }
        self.clients = [
            PeerClient(SDK_CLIENT, sys.executable, env, log_dir / f"client-{i}.log")
            for i in range(clients)
        ]

    async def start(self) -> None:
        first = {"worker-0": self.workers[0]}
        await wait_consumers(self.target.url, {"worker-0": SDK_QUEUE}, first)
        for client in self.clients:
            await client.start()

    def cpu(self) -> dict[str, float]:
        broker = broker_pid()
        return {
            "clients": sum(process_cpu_seconds(c.pid) or 0.0 for c in self.clients),
            "workers": sum(tree_cpu_seconds(w.process.pid) for w in self.workers),
            "broker": (process_cpu_seconds(broker) or 0.0) if broker else 0.0,
        }

    async def round(self, jobs: int, in_flight: int) -> tuple[float, dict[str, float]]:
        """All clients at once; returns jobs/s and CPU ms per job by side."""
        per_client = max(1, jobs // len(self.clients))
        lanes = max(1, in_flight // len(self.clients))
        before = self.cpu()
        answers = await asyncio.gather(*(c.closed(per_client, lanes) for c in self.clients))
        after = self.cpu()
        for worker in self.workers:
            worker.check_alive()
        total = per_client * len(self.clients)
        seconds = max(s for s, _ in answers)
        return total / seconds, {k: (after[k] - before[k]) / total * 1000 for k in before}

    async def stop(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        for worker in self.workers:
            worker.stop()


async def scaling(options: argparse.Namespace, target: BrokerTarget, log_dir: Path) -> None:
    print("| workers | clients | jobs/s (rounds) | CPU ms/job clients | workers | broker | total |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for workers in options.workers:
        for clients in options.clients:
            await delete_bench_objects(target.url)
            fleet = Fleet(target, workers, clients, log_dir, options.results_protocol)
            try:
                await fleet.start()
                await fleet.round(options.warmup, options.in_flight)
                rates, cpus = [], []
                for _ in range(options.rounds):
                    rate, cpu = await fleet.round(options.jobs, options.in_flight)
                    rates.append(rate)
                    cpus.append(cpu)
            finally:
                await fleet.stop()
            cpu = {k: sorted(c[k] for c in cpus)[len(cpus) // 2] for k in cpus[0]}
            print(
                f"| {workers} | {clients} | {sorted(rates)[len(rates) // 2]:.0f} "
                f"({', '.join(f'{r:.0f}' for r in rates)}) | {cpu['clients']:.2f} "
                f"| {cpu['workers']:.2f} | {cpu['broker']:.2f} | {sum(cpu.values()):.2f} |",
                flush=True,
            )


async def memory(options: argparse.Namespace, target: BrokerTarget, log_dir: Path) -> None:
    await delete_bench_objects(target.url)
    fleet = Fleet(target, 1, 1, log_dir, options.results_protocol)
    step = max(1, options.rss_jobs // 10)
    print("| jobs done | client RSS MiB | worker RSS MiB | jobs/s of the step |")
    print("|---:|---:|---:|---:|")
    try:
        await fleet.start()
        client, worker = fleet.clients[0], fleet.workers[0].process.pid
        print(f"| 0 | {await client.rss_kib() / 1024:.1f} | {rss_mib(worker):.1f} | |", flush=True)
        done = 0
        while done < options.rss_jobs:
            seconds, _ = await client.closed(step, options.in_flight)
            done += step
            print(
                f"| {done} | {await client.rss_kib() / 1024:.1f} | {rss_mib(worker):.1f} "
                f"| {step / seconds:.0f} |",
                flush=True,
            )
    finally:
        await fleet.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="worker processes, comma-separated")
    parser.add_argument("--clients", default="1,3", help="client processes, comma-separated")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per round (all clients)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=200, help="jobs in flight (all clients)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss-jobs", type=int, default=0, help="measure RSS over this many jobs")
    parser.add_argument("--vhost", default="bench-scaling")
    parser.add_argument("--results-protocol", choices=RESULTS_PROTOCOLS, default="auto")
    options = parser.parse_args()
    options.workers = [int(n) for n in options.workers.split(",")]
    options.clients = [int(n) for n in options.clients.split(",")]
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="itl-scaling-") as tmp,
        private_vhost(options.vhost) as target,
    ):
        run = memory if options.rss_jobs else scaling
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(options, target, Path(tmp)))
    print(f"\nwall time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
