"""The SDK worker's CPU per job from two source trees, side by side in one run.

A change to the worker's hot path moves its CPU per job by a few per cent, less than this
machine drifts between two runs of ``throughput.py``. Here worker A runs the SDK of one tree
(``--a``, a git worktree of the base) and worker B that of another (``--b``, default: this
one), each in a vhost of its own so neither takes the other's jobs, and one client process
drives both with the same closed loop (``--in-flight`` jobs at a time), in blocks of
``--jobs`` that alternate A B, B A, ... so drift hits both alike. Each block's figure is the
worker process tree's CPU time (``/proc``) over the block's jobs; the paired changes say how
often B was the cheaper of a pair::

    git worktree add /tmp/base main
    python bench/worker_ab.py --a /tmp/base --blocks 10 --jobs 3000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from _broker import BrokerTarget, private_vhost
from _loops import closed_loop
from _systems import SDK_QUEUE, SdkClient, new_client_loop
from _workers import SDK_WORKER_ARGV, WorkerProcess, sdk_worker_env, wait_consumers

HERE = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the worker may fork helpers)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    total = 0
    for each in [pid, *map(int, children.split())]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a child that exited between the listing and the read
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


@dataclass
class Side:
    name: str
    tree: Path
    worker: WorkerProcess
    client: SdkClient
    cpu_ms_per_job: list[float] = field(default_factory=list)
    jobs_per_second: list[float] = field(default_factory=list)


async def start_side(name: str, tree: Path, target: BrokerTarget, log_dir: Path) -> Side:
    env = sdk_worker_env(target, worker_id=f"worker-ab-{name}")
    env["PYTHONPATH"] = os.pathsep.join((str(tree / "sdk"), str(HERE / "bench")))
    worker = WorkerProcess(f"worker-{name}", SDK_WORKER_ARGV, env, log_dir)
    await wait_consumers(target.url, {"sdk": SDK_QUEUE}, {"sdk": worker})
    client = SdkClient(target.url)
    await client.start()
    return Side(name, tree, worker, client)


async def run(args: argparse.Namespace, targets: tuple[BrokerTarget, BrokerTarget]) -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="worker-ab-"))
    sides = [
        await start_side("A", args.a, targets[0], log_dir),
        await start_side("B", args.b, targets[1], log_dir),
    ]
    try:
        for side in sides:  # warm-up: connections, caches, the broker's queues
            await closed_loop(side.client.one_job, 1000, args.in_flight)
        for block in range(args.blocks):
            for side in sides if block % 2 == 0 else sides[::-1]:
                side.worker.check_alive()
                before = tree_cpu_seconds(side.worker.process.pid)
                elapsed, _ = await closed_loop(side.client.one_job, args.jobs, args.in_flight)
                spent = tree_cpu_seconds(side.worker.process.pid) - before
                side.cpu_ms_per_job.append(1000 * spent / args.jobs)
                side.jobs_per_second.append(args.jobs / elapsed)
    finally:
        for side in sides:
            await side.client.close()
            side.worker.stop()
    a, b = sides
    for side in sides:
        blocks = " ".join(f"{x:.3f}" for x in side.cpu_ms_per_job)
        print(
            f"{side.name} ({side.tree}): worker CPU ms/job median "
            f"{statistics.median(side.cpu_ms_per_job):.3f} (blocks {blocks}); "
            f"jobs/s median {statistics.median(side.jobs_per_second):.0f}"
        )
    changes = [y / x - 1 for x, y in zip(a.cpu_ms_per_job, b.cpu_ms_per_job, strict=True)]
    print(
        f"B against A: paired change median {100 * statistics.median(changes):+.1f} %, "
        f"B the cheaper in {sum(c < 0 for c in changes)} of {len(changes)} pairs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="source tree of worker A")
    parser.add_argument("--b", type=Path, default=HERE, help="source tree of worker B")
    parser.add_argument("--blocks", type=int, default=10, help="blocks per worker")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per block")
    parser.add_argument("--in-flight", type=int, default=100, help="client load")
    args = parser.parse_args()
    for tree in (args.a, args.b):
        if not (tree / "sdk" / "itl_controlplane_sdk").is_dir():
            parser.error(f"{tree} is not a source tree of this project (no sdk/)")
    with private_vhost("worker-ab-a") as first, private_vhost("worker-ab-b") as second:
        new_client_loop("uvloop").run_until_complete(run(args, (first, second)))


if __name__ == "__main__":
    main()
