"""What every chaos scenario needs: jobs with names, the record of executions, the verdict."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itl_controlplane_sdk import ResourceRequest
from itl_controlplane_sdk.workers import JobQueue
from itl_harness.workers import WorkerProcess
from tests.chaos.recorder import NAMESPACE, RESOURCE_TYPE

REPORT = Path(os.environ.get("CHAOS_REPORT", "/tmp/itl-chaos-report.jsonl"))


def job_request(name: str, seconds: float = 0.0) -> ResourceRequest:
    return ResourceRequest(
        subscription_id="sub-chaos",
        resource_group="rg-chaos",
        provider_namespace=NAMESPACE,
        resource_type=RESOURCE_TYPE,
        resource_name=name,
        location="westeurope",
        body={"seconds": seconds},
    )


def executions(record_dir: Path) -> Counter[str]:
    """How often each job ran to the end, over every worker process of the scenario."""
    counts: Counter[str] = Counter()
    for path in record_dir.glob("*.log"):
        counts.update(line for line in path.read_text().splitlines() if line)
    return counts


async def submit(queue: JobQueue, name: str, seconds: float = 0.0) -> str:
    return await queue.submit_job(NAMESPACE, RESOURCE_TYPE, "create", job_request(name, seconds))


async def submit_all(queue: JobQueue, names: list[str], seconds: Callable[[], float]) -> None:
    for start in range(0, len(names), 100):
        await asyncio.gather(*(submit(queue, n, seconds()) for n in names[start : start + 100]))


@dataclass
class PacedProducer:
    """Submits a job every ``interval`` until stopped; a refused submit is not a lost job."""

    queue: JobQueue
    interval: float
    longest: float
    prefix: str = "paced"
    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Submits that raised: the broker may still have taken some (its confirm was lost)."""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, count: int) -> None:
        rng = random.Random(count)
        for n in range(count):
            if self._stop.is_set():
                return
            name = f"{self.prefix}-{n}"
            try:
                await submit(self.queue, name, rng.random() * self.longest)
            except Exception:
                self.refused.append(name)
            else:
                self.accepted.append(name)
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.2)


def all_ran(record_dir: Path, names: Iterable[str]) -> Callable[[], bool]:
    wanted = set(names)
    return lambda: wanted <= set(executions(record_dir))


def assert_no_stuck_slots(workers: Iterable[WorkerProcess]) -> None:
    for worker in workers:
        if worker.process is None or worker.process.poll() is not None:
            continue
        status = worker.status()
        held = {key: status[key] for key in ("in_flight", "unacked", "stuck")}
        assert held == {"in_flight": 0, "unacked": 0, "stuck": 0}, (worker.worker_id, held)


def verdict(
    scenario: str,
    record_dir: Path,
    accepted: Iterable[str],
    *,
    faults: bool,
    maybe: Iterable[str] = (),
    **figures: Any,
) -> Counter[str]:
    """Fails on a lost job (and on a duplicate when there was no fault); reports the figures."""
    accepted = list(accepted)
    runs = executions(record_dir)
    lost = sorted(set(accepted) - set(runs))
    duplicates = {name: count for name, count in runs.items() if count > 1}
    unexpected = sorted(set(runs) - set(accepted) - set(maybe))
    line = {
        "scenario": scenario,
        "jobs": len(accepted),
        "executions": sum(runs.values()),
        "lost": len(lost),
        "duplicates": sum(count - 1 for count in duplicates.values()),
        **figures,
    }
    with REPORT.open("a") as report:
        report.write(json.dumps(line) + "\n")
    print(f"\nchaos {scenario}: {json.dumps(line)}")
    assert lost == [], f"{len(lost)} lost jobs, e.g. {lost[:5]}"
    assert unexpected == [], f"executions of jobs never accepted: {unexpected[:5]}"
    if not faults:
        assert duplicates == {}, f"duplicates without a fault: {list(duplicates.items())[:5]}"
    return runs
