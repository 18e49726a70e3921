"""The heartbeat view the autoscaler reads per pool at every poll (no broker needed: the
monitor's message handler is fed heartbeat bodies directly)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from itl_controlplane_sdk.workers.heartbeats import HeartbeatMonitor


@dataclass
class _Message:
    """A delivered heartbeat: the handler reads only its body."""

    body: bytes


def _beat(worker: str, pool: str, *, at: float = 1000.0, **extra: Any) -> AbstractIncomingMessage:
    body = {"worker_id": worker, "pool": pool, "in_flight": 0, "capacity": 4, "timestamp": at}
    return cast(AbstractIncomingMessage, _Message(json.dumps({**body, **extra}).encode()))


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(row["worker_id"]) for row in rows]


async def test_a_snapshot_holds_one_pools_live_workers_only() -> None:
    monitor = HeartbeatMonitor(cast(AbstractConnection, None))
    for worker, pool in [("b", "ns/p1"), ("a", "ns/p1"), ("c", "ns/p2")]:
        await monitor._on_message(_beat(worker, pool))
    assert _ids(monitor.snapshot("ns/p1", now=1001)) == ["a", "b"]
    assert _ids(monitor.snapshot("ns/p2", now=1001)) == ["c"]
    assert _ids(monitor.snapshot(None, now=1001)) == ["a", "b", "c"]
    assert monitor.snapshot("ns/other", now=1001) == []


async def test_workers_that_stop_move_or_go_silent_leave_their_pool() -> None:
    monitor = HeartbeatMonitor(cast(AbstractConnection, None))
    await monitor._on_message(_beat("a", "ns/p1"))
    await monitor._on_message(_beat("b", "ns/p1"))
    await monitor._on_message(_beat("c", "ns/p1", at=1010.0))
    await monitor._on_message(_beat("a", "ns/p2"))  # the same worker id, now in another pool
    await monitor._on_message(_beat("b", "ns/p1", stopped=True))
    # "a" moved, "b" stopped; at 1008 a heartbeat of 1000 (2 s interval) has expired.
    assert _ids(monitor.snapshot("ns/p1", now=1001)) == ["c"]
    assert _ids(monitor.snapshot("ns/p2", now=1001)) == ["a"]
    assert monitor.snapshot("ns/p2", now=1008) == []
    assert _ids(monitor.snapshot(None, now=1008)) == ["c"]


async def test_a_pools_idle_watcher_hears_only_workers_that_turned_idle() -> None:
    monitor = HeartbeatMonitor(cast(AbstractConnection, None))
    calls: list[str] = []
    monitor.on_worker_idle("ns/p1", lambda: calls.append("p1"))
    await monitor._on_message(_beat("a", "ns/p1", in_flight=2))
    await monitor._on_message(_beat("b", "ns/p1"))  # first beat seen: no transition known
    await monitor._on_message(_beat("b", "ns/p1"))  # idle and still idle: no news
    await monitor._on_message(_beat("c", "ns/p2", in_flight=1))
    await monitor._on_message(_beat("c", "ns/p2"))  # another pool's worker
    assert calls == []

    await monitor._on_message(_beat("a", "ns/p1", in_flight=1, jobs_processed=1))  # still busy
    await monitor._on_message(_beat("a", "ns/p1", jobs_processed=2))  # turned idle
    assert calls == ["p1"]
    # A job that started and ended between two beats shows in the counters.
    await monitor._on_message(_beat("b", "ns/p1", jobs_failed=1))
    assert calls == ["p1", "p1"]
    # Draining or stopping is leaving, not turning idle.
    await monitor._on_message(_beat("a", "ns/p1", in_flight=1, jobs_processed=2))
    await monitor._on_message(_beat("a", "ns/p1", jobs_processed=3, draining=True))
    assert calls == ["p1", "p1"]

    monitor.on_worker_idle("ns/p1", None)
    await monitor._on_message(_beat("b", "ns/p1", in_flight=1, jobs_failed=1))
    await monitor._on_message(_beat("b", "ns/p1", jobs_failed=1, jobs_processed=1))
    assert calls == ["p1", "p1"]
