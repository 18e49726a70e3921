"""The autoscaling scenarios of docs/autoscaling.md on the real control plane and RabbitMQ.

Each test creates a WorkerPool in its own namespace. ``PodWorkers`` runs a real SDK
worker process for every Running pod, with WORKER_ID set to the pod name. Jobs are real
messages on the pool's own queue. The assertions are about what users see: the
Deployment's replicas, which pods went away, the pool's status and Events, and whether
every job finished exactly once.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from itl_controlplane_sdk.contract.topology import ARRIVAL_WATCH_PREFIX, provider_binding
from itl_harness import jobs
from itl_harness.operator_process import OperatorProcess, sample_metric
from itl_harness.pod_workers import PodWorkers, wait_for
from itl_harness.stack import put_secret
from localcluster import Cluster
from tests.integration.autoscaler.autoscaler_tcp_proxy import TcpProxy
from tests.support.services import rabbitmqctl

pytestmark = pytest.mark.integration

WP = "/apis/controlplane.itlusions.com/v1alpha1/namespaces/{ns}/workerpools/{name}"
DEPLOY = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"
PAUSED = "autoscaling.controlplane.itlusions.com/paused"
PAUSED_REPLICAS = "autoscaling.controlplane.itlusions.com/paused-replicas"


class Pool:
    """One WorkerPool under test, with its queue and (optionally) its worker processes."""

    def __init__(self, cluster: Cluster, namespace: str, url: str, tmp: Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = "pool"
        self.url = url
        self.tmp = tmp
        self.provider = f"ITL.AutoscalerTest{uuid.uuid4().hex[:8]}"
        self.queue = jobs.pool_queue(namespace, self.name)
        self.workers: PodWorkers | None = None

    def create(self, annotations: dict[str, str] | None = None, **autoscaling: Any) -> None:
        jobs.declare(self.url, self.queue, self.provider)
        body = {
            "apiVersion": "controlplane.itlusions.com/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": self.name, "annotations": annotations or {}},
            "spec": {
                "rabbitmq": {"secretRef": {"name": "rabbitmq"}},
                "maxConcurrentJobs": autoscaling.pop("maxConcurrentJobs", 2),
                "jobTimeout": 120,
                "replicaCount": 0,
                "providers": [self.provider],
                "autoscaling": {"enabled": True, **autoscaling},
            },
        }
        self.cluster.kubectl("-n", self.namespace, "apply", "-f", "-", input=yaml.safe_dump(body))

    def start_workers(self, rabbitmq_url: str | None = None) -> PodWorkers:
        self.workers = PodWorkers(
            self.cluster,
            self.namespace,
            self.name,
            rabbitmq_url=rabbitmq_url or self.url,
            log_dir=self.tmp,
        ).__enter__()
        return self.workers

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
        jobs.delete(self.url, self.queue)

    # -- reads ---------------------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        return dict(self.cluster.api.get(WP.format(ns=self.namespace, name=self.name)))

    def replicas(self) -> int | None:
        deployment = self.cluster.api.get_or_none(DEPLOY.format(ns=self.namespace, name=self.name))
        return None if deployment is None else int(deployment["spec"].get("replicas", 0))

    def condition(self, type_: str) -> dict[str, Any] | None:
        for condition in (self.body().get("status") or {}).get("conditions") or []:
            if condition["type"] == type_:
                return dict(condition)
        return None

    def active(self) -> tuple[str, str] | None:
        found = self.condition("ScalingActive")
        return None if found is None else (found["status"], found["reason"])

    def events(self) -> list[dict[str, Any]]:
        items = self.cluster.api.get(
            f"/api/v1/namespaces/{self.namespace}/events",
            fieldSelector=f"involvedObject.name={self.name},involvedObject.kind=WorkerPool",
        )["items"]
        return list(items)

    # -- writes --------------------------------------------------------------------------

    def patch(self, body: dict[str, Any]) -> None:
        self.cluster.api.patch(WP.format(ns=self.namespace, name=self.name), body)

    def publish(self, durations: list[float], *, routed: bool = False) -> list[str]:
        """Jobs straight into the pool's queue, or ``routed`` through the job exchange."""
        provider = self.provider if routed else None
        return jobs.publish(self.url, self.queue, durations, provider=provider)

    def arrival_queues(self) -> list[str]:
        """Arrival queues bound with this pool's routing key (the autoscaler's wake-up)."""
        vhost = unquote(urlsplit(self.url).path[1:]) or "/"
        listing = rabbitmqctl("list_bindings", "-q", "-p", vhost, "destination_name", "routing_key")
        binding = provider_binding(self.provider)
        return [
            columns[0]
            for columns in (line.split("\t") for line in listing.splitlines())
            if len(columns) == 2
            and columns[0].startswith(ARRIVAL_WATCH_PREFIX)
            and columns[1] == binding
        ]

    def results(self, ids: list[str], timeout: float) -> dict[str, Any]:
        return jobs.results(self.url, self.queue, self.provider, ids, timeout)

    def describe(self) -> str:
        """The pool's decision log and conditions, for assertion messages."""
        status = self.body().get("status") or {}
        lines = [
            f"{d['time']} {d['from']}->{d['to']}: {d['reason']}"
            for d in status.get("decisions", [])
        ]
        lines += [
            f"{c['type']}={c['status']} {c['reason']}: {c['message']}"
            for c in status.get("conditions", [])
        ]
        if self.workers is not None:
            lines.append(f"workers {self.workers.in_flight()} stopped {self.workers.stopped}")
        return "\n".join(lines)

    def wait_replicas(self, expected: int, timeout: float) -> float:
        """Wait until the Deployment asks for ``expected`` replicas; return when (monotonic)."""
        try:
            return self._wait_replicas(expected, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.describe()}") from None

    def _wait_replicas(self, expected: int, timeout: float) -> float:
        wait_for(
            lambda: self.replicas() == expected,
            timeout=timeout,
            what=f"{expected} replicas (now {self.replicas()})",
            interval=0.05,
        )
        return time.monotonic()

    def wait_active(self, timeout: float = 60) -> None:
        wait_for(
            lambda: self.active() == ("True", "ValidMetric"),
            timeout=timeout,
            what=f"ScalingActive=True (now {self.active()})",
        )


class Recorder:
    """Samples the Deployment's replicas in the background, to check for flapping."""

    def __init__(self, pool: Pool, interval: float = 0.25) -> None:
        self.pool = pool
        self.interval = interval
        self.samples: list[tuple[float, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append((time.monotonic(), self.pool.replicas()))
            self._stop.wait(self.interval)

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(5)
        self.samples.append((time.monotonic(), self.pool.replicas()))
        series = [r for _, r in self.samples if r is not None]
        return [r for i, r in enumerate(series) if i == 0 or series[i - 1] != r]


@pytest.fixture
def pool(
    k8s_cluster: Cluster, wpa_namespace: str, rabbitmq_url: str, tmp_path: Path
) -> Iterator[Pool]:
    put_secret(k8s_cluster, wpa_namespace, rabbitmq_url)
    created = Pool(k8s_cluster, wpa_namespace, rabbitmq_url, tmp_path)
    yield created
    created.close()


# -- 0 -> N --------------------------------------------------------------------------------


def test_burst_wakes_an_idle_pool_within_one_poll_interval(
    pool: Pool, autoscaling_operator: OperatorProcess, k8s_cluster: Cluster
) -> None:
    """A burst of 8 jobs at target 2 per replica gives 4 replicas within poll + 1 s."""
    poll = 2
    pool.create(minReplicas=0, maxReplicas=6, pollIntervalSeconds=poll, maxConcurrentJobs=2)
    pool.wait_active()
    pool.wait_replicas(0, timeout=30)
    workers = pool.start_workers()

    published = time.monotonic()
    ids = pool.publish([3.0] * 8)
    reacted = pool.wait_replicas(4, timeout=poll + 10) - published
    assert reacted <= poll + 1.0, f"reaction {reacted:.2f}s"

    done = pool.results(ids, timeout=90)
    assert all(r is not None and r.status.value == "completed" for r in done.values()), done
    assert workers.errors == []
    status = pool.body()["status"]
    assert any(d["from"] == 0 and d["to"] == 4 for d in status["decisions"]), status
    assert status["lastScaleTime"]
    assert any(e["reason"] == "ScaledUp" for e in pool.events())
    columns = k8s_cluster.kubectl("-n", pool.namespace, "get", "wp", pool.name).stdout
    assert "QUEUE" in columns.upper()
    metrics = autoscaling_operator.metrics()
    labels = f'namespace="{pool.namespace}",pool="{pool.name}"'
    scaled_up = sample_metric(metrics, "workerpool_scale_events_total", f'direction="up",{labels}')
    assert scaled_up >= 1, [line for line in metrics.splitlines() if "workerpool_" in line]


def test_the_autoscaler_writes_the_deployment_and_the_reconcile_leaves_it(
    pool: Pool, autoscaling_operator: OperatorProcess, k8s_cluster: Cluster
) -> None:
    """A scale reaches the Deployment through the autoscaler's own write to its scale
    subresource, not a reconcile's; the reconcile of the pool's new generation and the
    Deployment's watch event take it as it is (no drift repaired, no second write)."""
    pool.create(minReplicas=0, maxReplicas=4, pollIntervalSeconds=1, maxConcurrentJobs=2)
    pool.wait_active()
    pool.wait_replicas(0, timeout=30)
    log_from = autoscaling_operator.log_size()

    pool.publish([60.0] * 4)  # no workers: the 4 jobs stay ready, 2 replicas' worth
    pool.wait_replicas(2, timeout=20)
    path = DEPLOY.format(ns=pool.namespace, name=pool.name)
    deployment = k8s_cluster.api.get(path)
    replicas_writers = [
        (entry["manager"], entry.get("subresource"))
        for entry in deployment["metadata"]["managedFields"]
        if "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {})
    ]
    assert ("workerpool-autoscaler", "scale") in replicas_writers, replicas_writers

    def reconciled() -> bool:
        body = pool.body()
        observed = (body.get("status") or {}).get("observedGeneration")
        return observed == body["metadata"]["generation"]

    wait_for(reconciled, timeout=30, what="the operator's reconcile of the scaled pool")
    after = k8s_cluster.api.get(path)
    assert after["metadata"]["generation"] == deployment["metadata"]["generation"], (
        "the reconcile wrote the Deployment again"
    )
    assert after["spec"]["replicas"] == 2
    assert not [e for e in pool.events() if e["reason"] == "DriftRepaired"], pool.describe()
    log = autoscaling_operator.log_path.read_text(errors="replace")[log_from:]
    assert f"{pool.namespace}/{pool.name} drifted" not in log


def test_a_job_wakes_an_idle_pool_long_before_its_next_poll(pool: Pool) -> None:
    """A pool at zero keeps an arrival queue bound like its own queue: the first job sent to
    it triggers a poll at once, so a 600 s poll interval does not mean a 600 s wait. Once
    the pool is busy the arrival queue is gone (its jobs cost the broker nothing extra)."""
    pool.create(minReplicas=0, maxReplicas=4, pollIntervalSeconds=1, maxConcurrentJobs=2)
    pool.wait_active()
    pool.wait_replicas(0, timeout=30)
    pool.patch({"spec": {"autoscaling": {"pollIntervalSeconds": 600}}})
    generation = pool.body()["metadata"]["generation"]

    def polled_with_the_long_interval() -> bool:
        # A poll of the new generation writes it into the condition; it then waits 600 s.
        active = pool.condition("ScalingActive")
        return active is not None and active.get("observedGeneration") == generation

    wait_for(polled_with_the_long_interval, timeout=30, what="a poll of the 600 s spec")
    wait_for(lambda: len(pool.arrival_queues()) == 1, timeout=10, what="one arrival queue")

    published = time.monotonic()
    pool.publish([60.0] * 4, routed=True)  # no workers: the jobs stay ready
    wait_for(
        lambda: (pool.replicas() or 0) > 0,
        timeout=30,
        what=f"a scale-up (now {pool.replicas()})",
        interval=0.05,
    )
    reacted = time.monotonic() - published
    assert reacted < 5.0, f"first scale-up {reacted:.2f}s with a 600 s poll interval"
    wait_for(lambda: pool.arrival_queues() == [], timeout=10, what="no arrival queue")
    # The woken poll may see only the first job (0 -> 1) and its follow-up the rest (1 -> 2).
    decisions = pool.body()["status"]["decisions"]
    assert any(d["from"] == 0 and d["to"] > 0 for d in decisions), decisions
    wait_for(lambda: pool.replicas() == 2, timeout=5, what=f"2 replicas (now {pool.replicas()})")


# -- N -> fewer, busy workers spared ------------------------------------------------------


def test_scale_down_removes_only_idle_workers_and_interrupts_nothing(pool: Pool) -> None:
    """4 workers, 2 of them on long jobs: the pool goes to 2 and the long jobs finish once."""
    pool.create(
        minReplicas=0,
        maxReplicas=4,
        pollIntervalSeconds=1,
        maxConcurrentJobs=1,
        cooldownSeconds=600,
        scaleDown={"stabilizationWindowSeconds": 0},
    )
    pool.wait_active()
    workers = pool.start_workers()
    published = time.monotonic()
    long_ids = pool.publish([25.0, 25.0])
    short_ids = pool.publish([1.0, 1.0])
    pool.wait_replicas(4, timeout=10)

    short = pool.results(short_ids, timeout=60)
    assert all(r is not None for r in short.values())
    pool.wait_replicas(2, timeout=20)
    wait_for(lambda: len(workers.running()) == 2, timeout=20, what="two workers left")
    assert workers.busy_at_stop == {}, "a busy worker was stopped"
    assert sorted(workers.in_flight().values()) == [1, 1]

    done = pool.results(long_ids, timeout=90)
    finished = time.monotonic() - published
    assert all(r is not None and r.status.value == "completed" for r in done.values()), done
    # A redelivered long job would have restarted from zero and taken about twice as long.
    assert finished < 25.0 * 2
    assert workers.busy_at_stop == {}
    assert any(e["reason"] == "ScaledDown" for e in pool.events())


# -- drain to zero, no flapping -----------------------------------------------------------


def test_drains_to_zero_only_after_the_cooldown(pool: Pool) -> None:
    cooldown = 8
    pool.create(
        minReplicas=0,
        maxReplicas=2,
        pollIntervalSeconds=1,
        maxConcurrentJobs=2,
        cooldownSeconds=cooldown,
        scaleDown={"stabilizationWindowSeconds": 0},
    )
    pool.wait_active()
    pool.start_workers()
    recorder = Recorder(pool)
    published = time.monotonic()
    ids = pool.publish([2.0, 2.0])
    pool.wait_replicas(1, timeout=10)
    assert all(r is not None for r in pool.results(ids, timeout=60).values())
    zero_at = pool.wait_replicas(0, timeout=cooldown + 15)
    # The cooldown counts from the last arrival, which is no earlier than the publish.
    assert zero_at - published >= cooldown
    assert recorder.stop() == [0, 1, 0]


def test_after_a_quiet_window_each_worker_goes_when_its_last_job_ends(pool: Pool) -> None:
    """Long jobs, then nothing: each worker leaves within about a second of its last job, not
    a window later (what KEDA saves by stopping busy workers) and not at the next poll (the
    worker's idle heartbeat wakes the poll); the busy one stays until its job is done."""
    window = 8
    pool.create(
        minReplicas=0,
        maxReplicas=2,
        pollIntervalSeconds=1,
        maxConcurrentJobs=1,
        cooldownSeconds=window,
        scaleDown={"stabilizationWindowSeconds": window},
    )
    pool.wait_active()
    workers = pool.start_workers()
    recorder = Recorder(pool)
    short, long = pool.publish([18.0]), pool.publish([30.0])
    pool.wait_replicas(2, timeout=10)

    def held_by_busy_workers() -> bool:
        limited = pool.condition("ScalingLimited")
        return limited is not None and (limited["status"], limited["reason"]) == (
            "True",
            "BusyWorkers",
        )

    # A window after the last arrival, the target is zero and only the busy workers hold
    # the pool at 2. From then on it polls every 60 s: a worker leaving within about a
    # second of its job is the idle wake's doing.
    wait_for(held_by_busy_workers, timeout=30, what="ScalingLimited=True/BusyWorkers")
    pool.patch({"spec": {"autoscaling": {"pollIntervalSeconds": 60}}})
    running = wait_for(
        lambda: [n for n, f in workers.in_flight().items() if f == 1],
        timeout=10,
        what="workers running the jobs",
    )
    assert len(running) == 2, running
    for left in (1, 0):

        def idle_worker() -> str | None:
            flights = workers.in_flight()
            return next((n for n in running if flights.get(n) == 0), None)

        name = wait_for(idle_worker, timeout=40, what="a worker finishing", interval=0.05)
        idle_at = time.monotonic()
        gone_after = pool.wait_replicas(left, timeout=20) - idle_at
        # 0.13-0.18 s on a quiet machine; the 60 s poll alone would take up to a minute.
        assert gone_after < 3.0, f"{name} left {gone_after:.2f}s after its job\n{pool.describe()}"
        running.remove(name)
    assert all(r is not None for r in pool.results(short + long, timeout=60).values())
    assert workers.busy_at_stop == {}, "a busy worker was stopped"
    assert recorder.stop() == [0, 2, 1, 0]


def test_no_flapping_under_steady_load_near_a_threshold(pool: Pool) -> None:
    """A 1.8 s job every 0.5 s keeps ~3.6 jobs in flight: 90 % of 2 replicas x 2 slots, at
    the edge of the tolerance around the 2-replica threshold.

    Not 2 s (4 jobs, exactly 2 replicas' slots): on a loaded machine a job holds its slot a
    little longer than it runs (its result and ack), so two replicas fall behind, jobs wait,
    and 3 replicas is the right answer; with a 10 s scale-down window the pool then goes
    3 -> 2 -> 3 whenever a third worker happens to be idle at a poll once the window has
    passed, as the HPA would. A failing run's log showed a job waiting at 2 replicas, and
    per-poll traces fresh heartbeats with in-flight sums within one of the workers' own: the
    load, not a stale signal.
    """
    pool.create(
        minReplicas=0,
        maxReplicas=6,
        pollIntervalSeconds=1,
        maxConcurrentJobs=2,
        scaleDown={"stabilizationWindowSeconds": 10},
    )
    pool.wait_active()
    pool.start_workers()
    stop = threading.Event()
    producer = threading.Thread(
        target=jobs.produce,
        args=(pool.url, pool.queue),
        kwargs={"seconds": 1.8, "every": 0.5, "stop": stop},
        daemon=True,
    )
    producer.start()
    try:
        time.sleep(15)  # let it settle
        recorder = Recorder(pool)
        time.sleep(30)
        changes = recorder.stop()
    finally:
        stop.set()
        producer.join(10)
    reversals = sum(
        1
        for a, b, c in zip(changes, changes[1:], changes[2:], strict=False)
        if (b - a) * (c - b) < 0
    )
    # The start may overshoot (workers start slowly, jobs queue meanwhile): the pool may
    # still be settling when recording starts (4 -> 3 -> 2), but never moves back.
    assert reversals == 0, f"replicas went back and forth: {changes}\n{pool.describe()}"
    assert all(2 <= r <= 4 for r in changes), f"{changes}\n{pool.describe()}"


# -- broker outage ------------------------------------------------------------------------


def test_broker_outage_holds_replicas_and_recovers(
    pool: Pool, k8s_cluster: Cluster, rabbitmq_url: str
) -> None:
    proxy = TcpProxy.for_url(rabbitmq_url)
    proxy.start()
    put_secret(k8s_cluster, pool.namespace, proxy.url())
    try:
        pool.create(
            minReplicas=0,
            maxReplicas=4,
            pollIntervalSeconds=1,
            maxConcurrentJobs=2,
            cooldownSeconds=0,
            scaleDown={"stabilizationWindowSeconds": 0},
        )
        pool.wait_active()
        pool.start_workers(rabbitmq_url)  # the workers keep their own, direct connection
        ids = pool.publish([4.0, 4.0])
        pool.wait_replicas(1, timeout=10)

        proxy.stop()
        wait_for(
            lambda: pool.active() == ("False", "BrokerUnreachable"),
            timeout=15,
            what="ScalingActive=False/BrokerUnreachable",
        )
        assert all(r is not None for r in pool.results(ids, timeout=30).values())
        # With data the pool would now go to zero (cooldown 0); without data it holds.
        more = pool.publish([5.0] * 6)
        held_until = time.monotonic() + 6
        while time.monotonic() < held_until:
            assert pool.replicas() == 1
            time.sleep(0.25)
        assert any(e["reason"] == "BrokerUnreachable" for e in pool.events())

        # The one worker kept working meanwhile (it talks to the broker directly). Add
        # enough work that the pool must grow to its max once the autoscaler sees it.
        more += pool.publish([5.0] * 10)
        proxy.start()
        pool.wait_active(timeout=30)
        pool.wait_replicas(4, timeout=10)
        wait_for(
            lambda: any(e["reason"] == "ScalingResumed" for e in pool.events()),
            timeout=10,
            what="the ScalingResumed Event",
        )
        assert all(r is not None for r in pool.results(more, timeout=120).values())
    finally:
        proxy.stop()


# -- pause, bounds, spec changes ----------------------------------------------------------


def test_pause_bounds_and_spec_changes_take_effect_at_the_next_poll(pool: Pool) -> None:
    pool.create(
        annotations={PAUSED: "true"},
        minReplicas=0,
        maxReplicas=4,
        pollIntervalSeconds=1,
        maxConcurrentJobs=1,
        # No rate limit here: this test is about pause, bounds and spec changes.
        scaleUp={"policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]},
    )
    wait_for(lambda: pool.active() == ("False", "ScalingPaused"), timeout=60, what="paused")
    pool.wait_replicas(0, timeout=30)
    pool.publish([60.0] * 5)
    held_until = time.monotonic() + 4
    while time.monotonic() < held_until:
        assert pool.replicas() == 0
        time.sleep(0.25)

    # The pin replaces the freeze: exactly 2 replicas, whatever the queue says.
    pool.patch({"metadata": {"annotations": {PAUSED: None, PAUSED_REPLICAS: "2"}}})
    pool.wait_replicas(2, timeout=5)
    held_until = time.monotonic() + 3
    while time.monotonic() < held_until:
        assert pool.replicas() == 2
        time.sleep(0.25)

    pool.patch({"metadata": {"annotations": {PAUSED_REPLICAS: None}}})
    pool.wait_replicas(4, timeout=5)  # 5 ready jobs, but maxReplicas is 4

    def limited() -> str | None:
        condition = pool.condition("ScalingLimited")
        return None if condition is None else str(condition["reason"])

    # The Deployment is scaled before the poll writes status: the reason follows at once.
    wait_for(lambda: limited() == "TooManyReplicas", timeout=5, what=f"limited (now {limited()})")

    pool.patch({"spec": {"autoscaling": {"maxReplicas": 5}}})
    pool.wait_replicas(5, timeout=5)  # a spec change counts at the next poll
