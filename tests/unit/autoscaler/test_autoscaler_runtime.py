"""The autoscaler runtime against fakes: reading inputs, applying decisions, reporting.

No broker, no API server: ``FakeCluster`` records writes, ``FakeQueue`` stands in for the
SDK's ``JobQueue``. The real thing is covered by ``tests/integration/autoscaler``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from workerpool_operator import api, scaling
from workerpool_operator.autoscaler import observe, report
from workerpool_operator.autoscaler.broker import BrokerHub, BrokerRead
from workerpool_operator.autoscaler.metrics import AutoscalerMetrics
from workerpool_operator.autoscaler.policy import PAUSED
from workerpool_operator.autoscaler.scaler import QUEUE_STATUS_SECONDS, PoolScaler
from workerpool_operator.autoscaler.supervisor import (
    ARRIVAL_FOLLOW_UP,
    IDLE_WAKE_GAP,
    Supervisor,
    _next_poll,
    _Wake,
    poll_interval,
    spread,
)
from workerpool_operator.builders import build_deployment
from workerpool_operator.pools import CachedPool, PoolCache
from workerpool_operator.reconcile import drift

# --- observe ---------------------------------------------------------------------------


def _pod(name: str, *, ready: bool = True, cost: str | None = None, **meta: Any) -> dict:
    annotations = {observe.DELETION_COST_ANNOTATION: cost} if cost is not None else {}
    return {
        "metadata": {
            "name": name,
            "annotations": annotations,
            "creationTimestamp": "2026-01-01T00:00:10Z",
            **meta,
        },
        "status": {
            "phase": "Running" if ready else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_pod_view_reads_readiness_termination_and_cost() -> None:
    view = observe.pod_view(_pod("a", cost="-1000"))
    assert view == scaling.PodView("a", ready=True, created_at=1767225610.0, deletion_cost=-1000)
    assert not observe.pod_view(_pod("b", ready=False)).ready
    assert observe.pod_view(_pod("c", deletionTimestamp="2026-01-01T00:00:00Z")).terminating
    assert observe.pod_view(_pod("d", cost="cheap")).deletion_cost is None


def test_heartbeats_keep_only_the_pools_queue_and_skip_garbage() -> None:
    raw = [
        {"worker_id": "a", "queue": "q", "in_flight": 2, "capacity": 4, "timestamp": 5.0},
        {"worker_id": "b", "queue": "other", "in_flight": 2, "capacity": 4, "timestamp": 5.0},
        {"worker_id": "c", "queue": "q", "in_flight": "x", "capacity": 4, "timestamp": 5.0},
        {
            "worker_id": "d",
            "queue": "q",
            "in_flight": 0,
            "capacity": 4,
            "draining": True,
            "timestamp": 6,
        },
    ]
    beats = observe.heartbeats(raw, queue="q")
    assert [b.worker_id for b in beats] == ["a", "d"]
    assert beats[1].draining


@pytest.mark.parametrize(
    ("stats", "reason"),
    [
        ({"connected": False, "queues": {}, "error": "refused"}, observe.BROKER_UNREACHABLE),
        ({"connected": True, "queues": {}}, observe.QUEUE_NOT_FOUND),
        (
            {"connected": True, "queues": {"q": {"exists": False, "error": "gone"}}},
            observe.QUEUE_NOT_FOUND,
        ),
        (
            {"connected": True, "queues": {"q": {"message_count": None, "consumer_count": 1}}},
            observe.STATS_INVALID,
        ),
    ],
)
def test_unusable_stats_become_failures(stats: dict, reason: str) -> None:
    reading = observe.queue_reading(stats, queue="q", dead_letter_queue=None)
    assert isinstance(reading, scaling.ObservationFailure)
    assert reading.reason == reason


def test_usable_stats() -> None:
    stats = {
        "connected": True,
        "queues": {
            "q": {"exists": True, "message_count": 7, "consumer_count": 2},
            "dlq": {"exists": True, "message_count": 3, "consumer_count": 0},
        },
    }
    reading = observe.queue_reading(stats, queue="q", dead_letter_queue="dlq")
    assert reading == observe.QueueReading(ready=7, consumers=2, dead_letters=3)


# --- report ----------------------------------------------------------------------------


def _decision(**overrides: Any) -> scaling.Decision:
    obs = scaling.Observation(current_replicas=2, ready_messages=40, consumers=2)
    base = scaling.decide(
        scaling.ScalingPolicy(target_jobs_per_replica=4), obs, scaling.ScalingHistory(), 0
    )
    return _replace(base, **overrides)


def _replace(decision: scaling.Decision, **overrides: Any) -> scaling.Decision:
    import dataclasses

    return dataclasses.replace(decision, **overrides)


def test_events_on_scale_changes_and_transitions_only() -> None:
    up = _decision()
    assert [e.reason for e in report.events(up, None)] == ["ScaledUp"]
    steady = _replace(up, current_replicas=up.replicas)
    assert report.events(steady, steady) == []
    failed = _replace(
        steady,
        mode="hold",
        scaling_active=scaling.ConditionInfo("ScalingActive", "False", "BrokerUnreachable", "x"),
    )
    assert [(e.type, e.reason) for e in report.events(failed, steady)] == [
        ("Warning", "BrokerUnreachable")
    ]
    assert report.events(failed, failed) == []  # one Warning per outage, not per poll
    assert [e.reason for e in report.events(steady, failed)] == ["ScalingResumed"]


def test_decision_log_is_bounded_and_records_changes_and_switches() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    log: list[dict[str, Any]] = []
    up = _decision()
    for _ in range(25):
        log = report.updated_log(log, up, up, now)
    assert len(log) == api.MAX_DECISIONS
    steady = _replace(up, current_replicas=up.replicas)
    assert report.updated_log([], steady, steady, now) == []
    entry = report.updated_log([], up, None, now)[0]
    api.ScalingDecision.model_validate(entry)  # fits the CRD's schema
    assert entry["from"] == 2


# --- broker hub ------------------------------------------------------------------------


class FakeQueue:
    """A stand-in for the SDK's JobQueue."""

    def __init__(self, url: str, *, fail_connect: bool = False) -> None:
        self.url = url
        self.fail_connect = fail_connect
        self.connects = 0
        self.stats_calls: list[list[str]] = []
        self.ready = 9
        self.beats: list[dict[str, Any]] = []
        self.arrivals = FakeArrivals()
        self.idle_watchers: dict[str, Any] = {}

    async def connect(self) -> None:
        self.connects += 1
        if self.fail_connect:
            raise ConnectionError("connection refused")

    async def disconnect(self) -> None:
        pass

    async def get_queue_stats(self, queues: list[str] | None = None) -> dict[str, Any]:
        names = list(queues or [])
        self.stats_calls.append(names)
        return {
            "connected": True,
            "queues": {
                n: {"exists": True, "message_count": self.ready, "consumer_count": 1} for n in names
            },
        }

    async def get_worker_heartbeats(self, pool: str | None = None) -> list[dict[str, Any]]:
        return self.beats

    def on_worker_idle(self, pool: str, callback: Any) -> bool:
        if callback is None:
            self.idle_watchers.pop(pool, None)
        else:
            self.idle_watchers[pool] = callback
        return True

    def arrival_watch(self) -> FakeArrivals:
        return self.arrivals


class FakeArrivals:
    """A stand-in for the SDK's ArrivalWatch: records what the hub asks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.watched: dict[str, Any] = {}
        self.refuse: Exception | None = None

    def watching(self, key: str) -> bool:
        return key in self.watched

    async def watch(
        self, key: str, *, bindings: Sequence[str], on_arrival: Any, queue_type: str = "classic"
    ) -> None:
        self.calls.append(("watch", key, *bindings))
        if self.refuse is not None:
            raise self.refuse
        self.watched[key] = on_arrival

    async def rearm(self, key: str) -> None:
        self.calls.append(("rearm", key))

    async def unwatch(self, key: str) -> None:
        if self.watched.pop(key, None) is not None:
            self.calls.append(("unwatch", key))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_one_connection_per_broker_url_shared_by_pools() -> None:
    made: dict[str, FakeQueue] = {}

    def factory(url: str) -> FakeQueue:
        made[url] = FakeQueue(url)
        return made[url]

    hub = BrokerHub(client_factory=factory)
    for pool in range(20):
        read = await hub.read("amqp://a", queue=f"q{pool}", pool=f"p{pool}")
        assert read.reading == observe.QueueReading(ready=9, consumers=1, dead_letters=9)
    await hub.read("amqp://b", queue="q", pool="p")
    assert sorted(made) == ["amqp://a", "amqp://b"]
    assert made["amqp://a"].connects == 1
    # The shared dead-letter queue was read once for the 20 pools, not 20 times.
    dlq_reads = [c for c in made["amqp://a"].stats_calls if c == ["provider.jobs.dlq"]]
    assert len(dlq_reads) == 1
    await hub.close()


async def test_unreachable_broker_is_retried_with_a_pause_not_a_stampede() -> None:
    clock = Clock()
    fake = FakeQueue("amqp://down", fail_connect=True)
    hub = BrokerHub(client_factory=lambda url: fake, retry_seconds=2.0, clock=clock)
    results = [await hub.read("amqp://down", queue="q", pool="p") for _ in range(10)]
    assert all(
        isinstance(r.reading, scaling.ObservationFailure)
        and r.reading.reason == observe.BROKER_UNREACHABLE
        for r in results
    )
    assert fake.connects == 1
    clock.now += 2.5
    fake.fail_connect = False
    read = await hub.read("amqp://down", queue="q", pool="p")
    assert isinstance(read.reading, observe.QueueReading)
    assert fake.connects == 2


async def test_a_hung_read_is_a_timeout_failure() -> None:
    class Hung(FakeQueue):
        async def get_queue_stats(self, queues: list[str] | None = None) -> dict[str, Any]:
            await asyncio.sleep(10)
            return {}

    hub = BrokerHub(client_factory=Hung, wait_timeout=0.01)
    read = await hub.read("amqp://slow", queue="q", pool="p")
    assert isinstance(read.reading, scaling.ObservationFailure)
    assert read.reading.reason == observe.STATS_TIMEOUT


async def test_a_read_that_waits_its_turn_is_not_a_failure() -> None:
    """An overloaded broker slows the polls down; it must not make them all fail at once."""

    class Busy(FakeQueue):
        async def get_queue_stats(self, queues: list[str] | None = None) -> dict[str, Any]:
            await asyncio.sleep(0.05)  # queued behind other reads, longer than read_timeout
            return await super().get_queue_stats(queues)

    hub = BrokerHub(client_factory=Busy, read_timeout=0.01, wait_timeout=5)
    read = await hub.read("amqp://busy", queue="q", pool="p")
    assert isinstance(read.reading, observe.QueueReading)


async def test_idle_connections_are_closed() -> None:
    clock = Clock()
    hub = BrokerHub(client_factory=FakeQueue, idle_seconds=60, clock=clock)
    await hub.read("amqp://a", queue="q", pool="p")
    clock.now += 61
    await hub.read("amqp://b", queue="q", pool="p")
    assert hub.connection_count == 1


async def test_an_idle_pool_gets_one_arrival_queue_rearmed_at_each_poll() -> None:
    hub = BrokerHub(client_factory=FakeQueue)
    await hub.read("amqp://a", queue="q", pool="p")
    for _ in range(2):
        await hub.wake_on_arrival(
            "amqp://a", key="ns/p", bindings=["provider.ITL.X.#"], on_arrival=lambda: None
        )
    await hub.stop_waking("amqp://a", "ns/p")
    await hub.stop_waking("amqp://a", "ns/p")  # nothing left: no second delete
    fake = hub._connections["amqp://a"].client
    assert isinstance(fake, FakeQueue)
    assert fake.arrivals.calls == [
        ("watch", "ns/p", "provider.ITL.X.#"),
        ("rearm", "ns/p"),
        ("unwatch", "ns/p"),
    ]


async def test_a_broker_refusing_arrival_queues_is_logged_once_and_polling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    hub = BrokerHub(client_factory=FakeQueue, wake_retry_seconds=60, clock=clock)
    await hub.read("amqp://a", queue="q", pool="p")
    fake = hub._connections["amqp://a"].client
    assert isinstance(fake, FakeQueue)
    fake.arrivals.refuse = PermissionError("ACCESS_REFUSED - read access to exchange")
    for pool in ("ns/a", "ns/b", "ns/c"):
        await hub.wake_on_arrival("amqp://a", key=pool, bindings=[], on_arrival=lambda: None)
    assert len(fake.arrivals.calls) == 1  # not asked again within wake_retry_seconds
    warnings = [r for r in caplog.records if "no arrival queues" in r.getMessage()]
    assert len(warnings) == 1 and "ACCESS_REFUSED" in warnings[0].getMessage()
    read = await hub.read("amqp://a", queue="q", pool="p")
    assert isinstance(read.reading, observe.QueueReading)

    clock.now += 61
    fake.arrivals.refuse = None
    await hub.wake_on_arrival("amqp://a", key="ns/a", bindings=[], on_arrival=lambda: None)
    assert fake.arrivals.watching("ns/a")
    assert len([r for r in caplog.records if "no arrival queues" in r.getMessage()]) == 1


# --- the poller ------------------------------------------------------------------------


class FakeCluster:
    def __init__(self) -> None:
        self.writes: list[tuple[str, Any]] = []
        self.url: str | None = "amqp://broker"
        self.fail_scale = False
        self.fail_deployment: Exception | None = None
        self.version = 100

    async def broker_url(self, namespace: str, ref: api.SecretKeyRef) -> str | None:
        return self.url

    async def set_deletion_costs(
        self, namespace: str, costs: Sequence[scaling.DeletionCost]
    ) -> None:
        self.writes.append(("costs", tuple(costs)))

    async def scale(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        if self.fail_scale:
            from workerpool_operator.kube import Unavailable

            raise Unavailable(503, "ServiceUnavailable", "try later")
        self.writes.append(("scale", replicas))
        self.version += 1
        written = _body(replicas)
        written["metadata"]["resourceVersion"] = str(self.version)
        return written

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        if self.fail_deployment is not None:
            raise self.fail_deployment
        self.writes.append(("deployment", replicas))

    async def apply_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.writes.append(("status", dict(status)))
        return {}


class FakeBroker:
    def __init__(self) -> None:
        self.read_result = BrokerRead(observe.QueueReading(ready=0, consumers=0, dead_letters=0))
        self.wakes: list[tuple[str, ...]] = []
        self.on_idle: Any = None

    async def read(
        self, url: str, *, queue: str, pool: str, queue_type: str = "classic"
    ) -> BrokerRead:
        return self.read_result

    async def wake_on_arrival(
        self,
        url: str,
        *,
        key: str,
        bindings: Sequence[str],
        on_arrival: Any,
        queue_type: str = "classic",
    ) -> None:
        self.wakes.append(("wake", key, *bindings))

    async def stop_waking(self, url: str, key: str) -> None:
        self.wakes.append(("stop", key))

    def wake_on_idle(self, url: str, *, pool: str, on_idle: Any) -> bool:
        self.wakes.append(("idle" if on_idle is not None else "no idle", pool))
        self.on_idle = on_idle
        return True


def _body(replicas: int, **autoscaling: Any) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "pool", "namespace": "ns", "generation": 3, "annotations": {}},
        "spec": {
            "rabbitmq": {"secretRef": {"name": "broker"}},
            "maxConcurrentJobs": 4,
            "replicaCount": replicas,
            "autoscaling": {
                "enabled": True,
                "scaleDown": {"stabilizationWindowSeconds": 0},
                "cooldownSeconds": 0,
                **autoscaling,
            },
        },
    }


def _parsed(body: dict[str, Any]) -> CachedPool:
    """The pool as the operator's cache holds it: the body and its one parse."""
    return CachedPool(body, api.parse_pool(body))


def _cached(replicas: int, **autoscaling: Any) -> CachedPool:
    return _parsed(_body(replicas, **autoscaling))


def _scaler(
    cluster: FakeCluster,
    broker: FakeBroker,
    events: list,
    clock: Clock | None = None,
    cache: PoolCache | None = None,
) -> PoolScaler:
    clock = clock or Clock()
    return PoolScaler(
        "ns",
        "pool",
        cluster=cluster,
        broker=broker,
        metrics=AutoscalerMetrics(CollectorRegistry()),
        post_event=lambda body, *event: events.append(event),
        clock=clock,
        remember=cache.remember if cache is not None else lambda body: None,
        on_arrival=lambda: None,
        on_idle=lambda: None,
    )


async def test_poll_scales_up_and_reports() -> None:
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    broker.read_result = BrokerRead(observe.QueueReading(ready=12, consumers=0, dead_letters=1))
    decision = await _scaler(cluster, broker, events).poll(_cached(0), [])
    assert decision is not None
    assert decision.replicas == 3
    kinds = [w[0] for w in cluster.writes]
    assert kinds == ["scale", "deployment", "status"]
    assert cluster.writes[1] == ("deployment", 3)
    status = cluster.writes[-1][1]
    assert status["queue"] == {"ready": 12, "inFlight": 0, "consumers": 0, "dlq": 1}
    assert status["decisions"][-1]["to"] == 3
    assert {c["type"] for c in status["conditions"]} == {"ScalingActive", "ScalingLimited"}
    assert "lastScaleTime" in status
    assert [e[1] for e in events] == ["ScaledUp"]


async def test_the_deployment_is_scaled_at_once_and_is_not_drift() -> None:
    """The autoscaler sets the Deployment's replicas right after the pool's, and the pool as
    written is in the cache first: the Deployment's watch event is then no drift to undo."""
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    broker.read_result = BrokerRead(observe.QueueReading(ready=8, consumers=0, dead_letters=0))
    cache = PoolCache()
    old = _body(0)
    old["metadata"]["resourceVersion"] = "100"
    cache.observe("ADDED", old)
    cached = cache.get(("ns", "pool"))
    assert cached is not None
    await _scaler(cluster, broker, events, cache=cache).poll(cached, [])
    assert [w for w in cluster.writes if w[0] != "status"] == [("scale", 2), ("deployment", 2)]

    now = cache.get(("ns", "pool"))
    assert now is not None and now.pool is not None
    assert now.pool.spec.replica_count == 2
    scaled = build_deployment(now.pool, default_image="worker:1")
    assert drift(now.body, scaled, default_image="worker:1") is None
    # What the old path saw: the pool the watch had not delivered yet called it drift.
    assert drift(old, scaled, default_image="worker:1") == "spec.replicas"


async def test_a_failed_deployment_write_keeps_the_scale_for_the_reconcile() -> None:
    from workerpool_operator.kube import Unavailable

    cluster, broker, events = FakeCluster(), FakeBroker(), []
    cluster.fail_deployment = Unavailable(503, "ServiceUnavailable", "try later")
    broker.read_result = BrokerRead(observe.QueueReading(ready=8, consumers=0, dead_letters=0))
    scaler = _scaler(cluster, broker, events)
    decision = await scaler.poll(_cached(0), [])
    assert decision is not None and decision.replicas == 2
    assert scaler.state.previous is decision  # the pool's count is written: history moves on
    assert [w[0] for w in cluster.writes] == ["scale", "status"]
    assert [e[1] for e in events] == ["ScaledUp"]


async def test_a_pool_at_zero_keeps_an_arrival_queue_only_while_it_reads_and_idles() -> None:
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    scaler = _scaler(cluster, broker, events)
    body = _body(0)
    body["spec"]["providers"] = ["ITL.Compute/VirtualMachine"]
    await scaler.poll(_parsed(body), [])  # idle, read fine: wake on its next job
    assert broker.wakes == [("wake", "ns/pool", "provider.ITL.Compute.VirtualMachine.*")]

    broker.read_result = BrokerRead(scaling.ObservationFailure(observe.QUEUE_NOT_FOUND, "gone"))
    await scaler.poll(_parsed(body), [])  # its queue may not exist: no arrival queue
    broker.read_result = BrokerRead(observe.QueueReading(ready=8, consumers=0, dead_letters=0))
    await scaler.poll(_parsed(body), [])  # scaled up: busy pools have none
    assert broker.wakes[1:] == [("stop", "ns/pool"), ("stop", "ns/pool")]
    assert [w[1] for w in cluster.writes if w[0] == "scale"] == [2]


async def test_only_a_pool_held_up_by_busy_workers_wakes_when_one_turns_idle() -> None:
    cluster, broker, events, clock = FakeCluster(), FakeBroker(), [], Clock()
    scaler = _scaler(cluster, broker, events, clock)

    def poll_with(in_flight: dict[str, int]) -> Any:
        clock.now += 2
        beats = tuple(
            scaling.WorkerHeartbeat(
                n, f, capacity=4, draining=False, timestamp=clock.now, jobs_finished=0
            )
            for n, f in in_flight.items()
        )
        broker.read_result = BrokerRead(observe.QueueReading(0, len(beats), None), beats)
        pods = [scaling.PodView(n, ready=True) for n in in_flight]
        return scaler.poll(_cached(len(in_flight)), pods)

    # 3 jobs in flight want one replica; two busy workers hold the pool at 2.
    decision = await poll_with({"a": 2, "b": 1})
    assert decision.replicas == 2 and decision.held_by_busy_workers
    assert broker.wakes == [("stop", "ns/pool"), ("idle", "ns/pool")]
    assert broker.on_idle is not None
    # Then nothing arrived for the (zero) window: the target is zero. b went idle and goes;
    # a still holds the pool up, and the wake stays as it was.
    decision = await poll_with({"a": 2, "b": 0})
    assert decision.replicas == 1 and decision.victims == ("b",), decision.reason
    assert decision.held_by_busy_workers
    assert broker.wakes[2:] == [("stop", "ns/pool")]
    # a went idle too: nothing holds the pool up, nothing wakes it.
    decision = await poll_with({"a": 0})
    assert decision.replicas == 0 and not decision.held_by_busy_workers
    assert [w for w in broker.wakes[3:] if "idle" in w[0]] == [("no idle", "ns/pool")]
    # A pool that wants more than it has is not held up by anyone.
    decision = await poll_with({"a": 4, "b": 4, "c": 4})
    assert not decision.held_by_busy_workers


async def test_the_idle_wake_waits_for_the_heartbeat_subscription() -> None:
    fake = FakeQueue("amqp://a")
    hub = BrokerHub(client_factory=lambda url: fake)
    woken: list[str] = []
    assert not hub.wake_on_idle("amqp://a", pool="ns/p", on_idle=lambda: woken.append("p"))
    await hub.read("amqp://a", queue="q", pool="ns/p")  # subscribes to heartbeats
    assert hub.wake_on_idle("amqp://a", pool="ns/p", on_idle=lambda: woken.append("p"))
    fake.idle_watchers["ns/p"]()
    assert woken == ["p"]
    assert hub.wake_on_idle("amqp://a", pool="ns/p", on_idle=None)
    assert fake.idle_watchers == {}


async def test_deletion_costs_are_written_before_replicas_drop() -> None:
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    now = Clock().now
    beats = tuple(
        scaling.WorkerHeartbeat(n, in_flight=f, capacity=4, draining=False, timestamp=now)
        for n, f in [("busy", 3), ("idle-a", 0), ("idle-b", 0)]
    )
    broker.read_result = BrokerRead(observe.QueueReading(0, 3, None), beats)
    pods = [scaling.PodView(n, ready=True) for n in ("busy", "idle-a", "idle-b")]
    scaler = _scaler(cluster, broker, events)
    scaler.state.history = scaling.ScalingHistory(started_at=0, last_arrival_at=0)
    decision = await scaler.poll(_cached(3), pods)
    assert decision is not None
    assert decision.replicas == 1
    assert [w[0] for w in cluster.writes] == ["costs", "scale", "deployment", "status"]
    costs = {c.pod: c.cost for c in cluster.writes[0][1]}
    assert costs == {"idle-a": -1000, "idle-b": -1000, "busy": 1000}


async def test_a_failed_scale_keeps_the_old_history() -> None:
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    cluster.fail_scale = True
    broker.read_result = BrokerRead(observe.QueueReading(ready=12, consumers=0, dead_letters=0))
    scaler = _scaler(cluster, broker, events)
    await scaler.poll(_cached(0), [])
    assert scaler.state.history == scaling.ScalingHistory()
    assert scaler.state.previous is None
    assert cluster.writes == []


async def test_a_step_is_never_made_twice_from_a_body_older_than_our_scale() -> None:
    # The watch feeding the cache may deliver our own scale seconds late: polls meanwhile
    # still see the old replicaCount, and must not decide (and log) the same step again.
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    scaler = _scaler(cluster, broker, events)
    scaler.state.history = scaling.ScalingHistory(started_at=0, last_arrival_at=0)
    stale = _body(1)
    stale["metadata"]["resourceVersion"] = "100"
    first = await scaler.poll(_parsed(stale), [])
    assert first is not None and (first.current_replicas, first.replicas) == (1, 0)
    assert await scaler.poll(_parsed(stale), []) is None
    assert [w[1] for w in cluster.writes if w[0] == "scale"] == [0]
    assert [e[1] for e in events].count("ScaledDown") == 1

    fresh = _body(0)
    fresh["metadata"]["resourceVersion"] = "101"  # our scale, delivered
    again = await scaler.poll(_parsed(fresh), [])
    assert again is not None and again.current_replicas == again.replicas == 0
    steps = [(d["from"], d["to"]) for d in cluster.writes[-1][1]["decisions"]]
    assert steps.count((1, 0)) == 1, steps


async def test_missing_secret_holds_with_a_reason() -> None:
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    cluster.url = None
    decision = await _scaler(cluster, broker, events).poll(_cached(2), [])
    assert decision is not None
    assert decision.mode == "hold"
    assert decision.scaling_active.reason == observe.BROKER_SECRET_MISSING
    assert [e[1] for e in events] == [observe.BROKER_SECRET_MISSING]


async def test_status_is_written_only_when_it_changes() -> None:
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    broker.read_result = BrokerRead(observe.QueueReading(ready=4, consumers=0, dead_letters=0))
    scaler = _scaler(cluster, broker, events)
    cached = _cached(1)
    for _ in range(5):
        await scaler.poll(cached, [])
    assert [w[0] for w in cluster.writes] == ["status"]


async def test_status_is_not_rewritten_while_the_watch_has_not_caught_up() -> None:
    """The cached body never shows our own conditions here (no watch): the poller uses the
    ones it wrote, so time passing alone does not rewrite them with a new timestamp."""
    cluster, broker, events, clock = FakeCluster(), FakeBroker(), [], Clock()
    broker.read_result = BrokerRead(observe.QueueReading(ready=4, consumers=0, dead_letters=0))
    scaler = _scaler(cluster, broker, events, clock)
    cached = _cached(1)
    for _ in range(10):
        await scaler.poll(cached, [])
        clock.now += 2
    assert [w[0] for w in cluster.writes] == ["status"]


async def test_queue_numbers_alone_reach_status_at_a_bounded_rate() -> None:
    cluster, broker, events, clock = FakeCluster(), FakeBroker(), [], Clock()
    scaler = _scaler(cluster, broker, events, clock)
    cached = _cached(1)
    broker.read_result = BrokerRead(observe.QueueReading(ready=4, consumers=0, dead_letters=0))
    await scaler.poll(cached, [])

    broker.read_result = BrokerRead(observe.QueueReading(ready=4, consumers=0, dead_letters=3))
    clock.now += 2
    await scaler.poll(cached, [])
    assert len(cluster.writes) == 1  # only the dead-letter count moved: not yet

    clock.now += QUEUE_STATUS_SECONDS
    await scaler.poll(cached, [])
    assert len(cluster.writes) == 2
    assert cluster.writes[-1][1]["queue"]["dlq"] == 3


async def test_a_changed_condition_reaches_status_at_once() -> None:
    cluster, broker, events, clock = FakeCluster(), FakeBroker(), [], Clock()
    scaler = _scaler(cluster, broker, events, clock)
    cached = _cached(1)  # fallback.failureThreshold at its default, 3
    broker.read_result = BrokerRead(observe.QueueReading(ready=4, consumers=0, dead_letters=0))
    await scaler.poll(cached, [])
    broker.read_result = BrokerRead(scaling.ObservationFailure("BrokerUnreachable", "down"))
    for _ in range(3):
        clock.now += 2
        await scaler.poll(cached, [])
    active = next(c for c in cluster.writes[-1][1]["conditions"] if c["type"] == "ScalingActive")
    assert (len(cluster.writes), active["reason"]) == (2, "BrokerUnreachable")


async def test_failed_reads_below_the_threshold_write_no_status_and_post_no_event() -> None:
    """A slow broker (a read timing out now and then) must not cause a status-write storm."""
    cluster, broker, events, clock = FakeCluster(), FakeBroker(), [], Clock()
    scaler = _scaler(cluster, broker, events, clock)
    cached = _cached(2)
    good = BrokerRead(observe.QueueReading(ready=0, consumers=2, dead_letters=0))
    timeout = BrokerRead(scaling.ObservationFailure("StatsTimeout", "no answer in 5 s"))
    broker.read_result = good
    await scaler.poll(cached, [])
    writes, posted = len(cluster.writes), len(events)
    for read in (timeout, good, timeout, timeout, good, timeout, good):
        broker.read_result = read
        clock.now += 2
        decision = await scaler.poll(cached, [])
        assert decision is not None and decision.replicas == 2  # held, never lowered
    assert (len(cluster.writes), len(events)) == (writes, posted)
    assert scaler.state.history.active is not None
    assert scaler.state.history.active.reason == "ValidMetric"


async def test_a_new_body_takes_effect_at_the_next_poll() -> None:
    """The policy is built once per body: a new body (here: paused) must replace it."""
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    broker.read_result = BrokerRead(observe.QueueReading(ready=40, consumers=0, dead_letters=0))
    scaler = _scaler(cluster, broker, events)
    first = await scaler.poll(_cached(1), [])
    paused_body = _body(2)
    paused_body["metadata"]["annotations"] = {PAUSED: "true"}
    second = await scaler.poll(_parsed(paused_body), [])
    assert first is not None and second is not None
    assert first.mode == "auto" and first.replicas > 1
    assert second.mode == "paused" and second.replicas == 2


async def test_an_unparsable_spec_is_skipped() -> None:
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    scaler = _scaler(cluster, broker, events)
    assert await scaler.poll(CachedPool(_body(1), None), []) is None
    assert cluster.writes == []


async def test_queue_numbers_survive_an_outage_in_status() -> None:
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    broker.read_result = BrokerRead(observe.QueueReading(ready=4, consumers=1, dead_letters=0))
    scaler = _scaler(cluster, broker, events)
    await scaler.poll(_cached(1), [])
    broker.read_result = BrokerRead(scaling.ObservationFailure("BrokerUnreachable", "down"))
    for _ in range(3):  # fallback.failureThreshold at its default
        await scaler.poll(_cached(1), [])
    status = cluster.writes[-1][1]
    assert status["queue"]["ready"] == 4
    active = next(c for c in status["conditions"] if c["type"] == "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "BrokerUnreachable")


# --- the supervisor ----------------------------------------------------------------------


async def test_supervisor_polls_enabled_pools_and_marks_disabled_ones() -> None:
    class ClosableBroker(FakeBroker):
        async def close(self) -> None:
            pass

    cluster = FakeCluster()
    pools = PoolCache()
    supervisor = Supervisor(
        pools=pools,
        cluster=cluster,
        broker=ClosableBroker(),  # type: ignore[arg-type]
        metrics=AutoscalerMetrics(CollectorRegistry()),
        post=lambda *event: None,
        first_poll_delay=lambda interval: 0.0,
    )
    body = _body(0)
    supervisor.track(pools.observe(None, body), {})
    assert supervisor.autoscaled == [("ns", "pool")]
    await asyncio.sleep(0.05)
    assert cluster.writes[-1][0] == "status"  # polled once already

    disabled = _body(0)
    disabled["spec"]["autoscaling"]["enabled"] = False
    supervisor.track(pools.observe("MODIFIED", disabled), {})
    assert supervisor.autoscaled == []
    await asyncio.sleep(0.05)
    last = cluster.writes[-1][1]
    assert list(last) == ["conditions"]
    assert last["conditions"][0]["reason"] == "AutoscalingDisabled"

    writes = len(cluster.writes)
    supervisor.track(pools.observe("DELETED", disabled), {})
    await asyncio.sleep(0.05)
    assert len(cluster.writes) == writes
    await supervisor.close()


def test_the_poll_interval_is_the_crds_default_when_unset() -> None:
    body = _body(0)  # no pollIntervalSeconds
    pools = PoolCache()
    cached = pools.get(pools.observe(None, body))

    assert cached is not None
    assert poll_interval(cached) == 2.0


async def test_a_poll_exports_the_pool_series_the_dashboard_and_alerts_read() -> None:
    cluster, broker, events = FakeCluster(), FakeBroker(), []
    registry = CollectorRegistry()
    scaler = PoolScaler(
        "ns",
        "pool",
        cluster=cluster,
        broker=broker,
        metrics=AutoscalerMetrics(registry),
        post_event=lambda body, *event: events.append(event),
        clock=Clock(),
    )
    broker.read_result = BrokerRead(observe.QueueReading(ready=12, consumers=1, dead_letters=0))
    pods = [
        scaling.PodView("ready", ready=True),
        scaling.PodView("starting", ready=False),
        scaling.PodView("leaving", ready=True, terminating=True),
    ]
    await scaler.poll(_cached(1, maxReplicas=5), pods)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"namespace": "ns", "pool": "pool", **labels})

    assert value("workerpool_ready_replicas") == 1
    assert value("workerpool_max_capacity_jobs") == 5 * 4
    assert value("workerpool_broker_reachable") == 1
    assert value("workerpool_scaling_mode", mode="auto") == 1
    assert value("workerpool_scaling_mode", mode="hold") == 0

    broker.read_result = BrokerRead(scaling.ObservationFailure("BrokerUnreachable", "down"))
    await scaler.poll(_cached(1, maxReplicas=5), pods)
    assert value("workerpool_broker_reachable") == 0
    assert value("workerpool_scaling_mode", mode="hold") == 1
    assert value("workerpool_scaling_mode", mode="auto") == 0


async def test_a_worker_turning_idle_brings_the_next_poll_forward_but_not_too_close() -> None:
    wake = _Wake()
    started = time.monotonic()
    asyncio.get_running_loop().call_later(0.05, wake.on_idle)
    woken_by_arrival = await _next_poll(wake, started, 5.0, woken_at=None)
    took = time.monotonic() - started
    assert not woken_by_arrival
    assert IDLE_WAKE_GAP <= took < 1.0  # not at the 5 s interval, not sooner than the gap

    # After a poll an arrival woke, arrivals wait for the interval; an idle worker does not.
    wake.clear()
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, wake.on_arrival)
    loop.call_later(0.2, wake.on_idle)
    assert not await _next_poll(wake, started, 5.0, woken_at=started)
    assert 0.2 <= time.monotonic() - started < ARRIVAL_FOLLOW_UP
    wake.clear()
    started = time.monotonic()
    loop.call_later(0.05, wake.on_arrival)
    assert not await _next_poll(wake, started, 0.3, woken_at=started)
    assert time.monotonic() - started >= 0.3
    # Otherwise an arrival wakes the next poll at once.
    wake.clear()
    started = time.monotonic()
    loop.call_later(0.05, wake.on_arrival)
    assert await _next_poll(wake, started, 5.0, woken_at=None)
    assert time.monotonic() - started < 1.0
    wake.clear()
    started = time.monotonic()
    loop.call_later(0.05, wake.on_arrival)
    assert await _next_poll(wake, started, 5.0, woken_at=started - 5.0)
    assert time.monotonic() - started < 1.0


async def test_a_poll_an_arrival_woke_is_followed_soon_by_one_more_then_the_interval() -> None:
    """The follow-up sees the rest of a burst whose first job woke the pool; after it the
    pool waits out the interval from the woken poll, whatever keeps arriving."""
    wake, loop = _Wake(), asyncio.get_running_loop()
    woken_at = time.monotonic()
    loop.call_later(0.05, wake.on_arrival)
    assert not await _next_poll(wake, woken_at, 1.5, woken_at=woken_at)
    follow_up = time.monotonic()
    assert ARRIVAL_FOLLOW_UP <= follow_up - woken_at < 1.0
    wake.clear()
    loop.call_later(0.05, wake.on_arrival)
    assert not await _next_poll(wake, follow_up, 1.5, woken_at=woken_at)
    assert time.monotonic() - woken_at >= 1.5


def test_first_polls_spread_over_the_interval() -> None:
    """Pools that start together must not poll together at every interval."""
    delays = [spread(2.0) for _ in range(1000)]
    assert all(0.0 <= d <= 2.0 for d in delays)
    assert sum(d < 1.0 for d in delays) not in (0, 1000)  # not all at one end
    assert len({round(d, 3) for d in delays}) > 500
