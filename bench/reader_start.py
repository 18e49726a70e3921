"""Jobs right after a results reader starts on a busy history, against a reader already tailing.

A process that starts reading results (an API replica in a rolling update) tails the results
stream from its look-back window (``result_lookback``, 60 s) on, so it reads that minute of
other jobs' results before the results of the jobs it submits. Each round here writes
``--history`` results first (a busy minute), then runs ``--jobs`` jobs (``--in-flight`` at a
time, submit then ``get_result``) through a client started right then ("fresh") and through
one that has tailed the stream since the run began ("warm"), one after the other. The warm
client is the baseline: the difference is what starting costs.

Reported per round and client: jobs/s, p50, p99 and the slowest job, and the scans of the
stream's history its reader started (``ResultReader.scans_started``; a look-up the reader's
cache cannot vouch for scans). One SDK worker process runs the jobs, as in the throughput
benchmark, in a vhost of the run's own::

    python bench/reader_start.py --history 12000 --jobs 3000 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _broker import DEFAULT_VHOST, BrokerTarget, private_vhost
from _figures import percentile
from _loops import closed_loop
from _systems import SDK_QUEUE, SdkClient, delete_bench_objects, new_client_loop
from _workers import SDK_WORKER_ARGV, WorkerProcess, sdk_worker_env, wait_consumers


@dataclass(frozen=True)
class Args:
    history: int
    jobs: int
    in_flight: int
    rounds: int
    vhost: str


async def measure(client: SdkClient, args: Args) -> str:
    seconds, latencies = await closed_loop(client.one_job, args.jobs, args.in_flight)
    reader = await client.queue._result_reader()
    return (
        f"{args.jobs / seconds:6.0f} jobs/s  p50 {1000 * percentile(latencies, 50):6.1f}  "
        f"p99 {1000 * percentile(latencies, 99):7.1f}  max {1000 * max(latencies):7.1f} ms  "
        f"scans {getattr(reader, 'scans_started', '?')}"  # '?': an SDK from before the count
    )


async def run(args: Args, target: BrokerTarget, log_dir: Path) -> None:
    await delete_bench_objects(target.url)
    worker = WorkerProcess("sdk", SDK_WORKER_ARGV, sdk_worker_env(target), log_dir)
    warm = SdkClient(target.url)
    try:
        await wait_consumers(target.url, {"sdk": SDK_QUEUE}, {"sdk": worker})
        await warm.start()
        await closed_loop(warm.one_job, 300, args.in_flight)  # warm-up
        for round_no in range(args.rounds):
            await closed_loop(warm.one_job, args.history, args.in_flight)
            fresh = SdkClient(target.url)
            await fresh.start()
            try:
                print(f"round {round_no}: fresh  {await measure(fresh, args)}", flush=True)
            finally:
                await fresh.close()
            print(f"round {round_no}: warm   {await measure(warm, args)}", flush=True)
    finally:
        await warm.close()
        worker.stop()


def parse_args(argv: list[str] | None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=12_000, help="results before each start")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per client and round")
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--vhost", default=f"{DEFAULT_VHOST}-reader-start")
    ns = parser.parse_args(argv)
    return Args(ns.history, ns.jobs, ns.in_flight, ns.rounds, ns.vhost)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"load average before: {os.getloadavg()}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="itl-reader-start-") as tmp,
        private_vhost(args.vhost) as target,
    ):
        loop = new_client_loop("uvloop")
        try:
            loop.run_until_complete(run(args, target, Path(tmp)))
        finally:
            loop.close()
    print(f"load average after: {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
