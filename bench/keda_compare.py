"""The WorkerPool autoscaler and KEDA, side by side, on the same cluster, broker and workers.

    python bench/keda_compare.py --profile defaults   # KEDA and HPA at their defaults
    python bench/keda_compare.py --profile fast       # KEDA's fastest honest settings
    python bench/keda_compare.py --scenarios none --reaction-trials 6   # first reactions only

One run starts, all local and real:

* a RabbitMQ node of its own with the management plugin (KEDA's MessageRate mode reads the
  HTTP API), on free ports, removed at the end; it never touches the shared broker;
* a full local control plane (``localcluster``); the ``fast`` profile runs the HPA
  controller with ``--horizontal-pod-autoscaler-sync-period=1s``, ``defaults`` with its
  15 s default;
* KEDA's operator and metrics API server (``localcluster.keda``, built by
  ``tools/keda/build.sh``) behind the aggregation layer;
* the WorkerPool operator with the autoscaler.

Each scenario gets a namespace holding one pool per autoscaler, all alike: the same pod
template (the operator's Deployment builder), ``maxConcurrentJobs: 4``, 0..4 replicas, a
real SDK worker process per Running kwok pod (``PodWorkers``, heartbeats at the SDK's 2 s
default) and a queue of its own that receives the same jobs at the same moment, published
through the job exchange with the side's routing key as producers send them (what an idle
WorkerPool's arrival queue sees; the warm-up's steady producer writes to the queues
directly):

* ``ours``: a WorkerPool with ``spec.autoscaling`` (defaults, except the scale-down window
  and cooldown in ``fast``, see below);
* ``keda-*``: a plain Deployment with a ScaledObject (rabbitmq trigger on its queue,
  target 4 jobs per replica, min 0, max 4):
  ``defaults``: ``keda`` (QueueLength over AMQP, every other field at its default);
  ``fast``: ``keda-queuelength`` (QueueLength over AMQP) and ``keda-messagerate``
  (MessageRate over HTTP, target = one replica's throughput), both ``pollingInterval: 1``.

Both sides get the same scale-down settings: the defaults (300 s window and cooldown) in
``defaults``; 30 s window and cooldown on both sides in ``fast``, to keep the run short.

Scenarios: ``burst`` (24 x 5 s jobs from idle); ``ramp`` (5 s jobs at a rate rising from 0
to 2.4/s over 120 s); ``long`` (16 jobs longer than the cooldown, from idle, then quiet);
``unacked`` (a warm pool of 4 takes 16 long jobs at once: all unacked, nothing ready).
``unacked`` warms every pool through its own autoscaler: 2 s jobs published 10 a second
for 12 s (more than 4 replicas carry: a backlog for the queue-length signals, a publish
rate for MessageRate, which sees nothing of a single burst into a fresh queue: RabbitMQ
reports a rate only from two stats samples), then the long jobs once the pool has 4 Ready
replicas, an empty queue and idle workers. Workers get their pod's
``terminationGracePeriodSeconds`` to drain after SIGTERM, as kubelet gives them.

Figures per pool: seconds from the first message to the first new Ready replica (and, to
break it down, to the first scale-up written to the Deployment and to the first job started,
the earliest result minus the job's duration), seconds to drain (last result),
replica-seconds (pods, sampled every 0.25 s over the same window for every pool), the
worker-seconds of stopped workers still finishing their jobs (terminating pods hold their
resources, ``status.replicas`` leaves them out),
scale-downs that stopped a worker with jobs in flight (the worker's own ``/status`` just
before its SIGTERM), redeliveries (the broker's ``redeliver`` counter of the queue) and
direction reversals of the Deployment's replicas. JSON on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itl_harness import jobs
from itl_harness.operator_process import REPO, OperatorProcess
from itl_harness.pod_workers import PodWorkers
from itl_harness.rabbitmq_node import Broker, own_broker
from itl_harness.stack import put_secret
from localcluster import MODE_FULL, LocalCluster, discover
from localcluster.keda import Keda
from workerpool_operator import crd
from workerpool_operator.api import parse_pool
from workerpool_operator.builders.deployment import build_deployment
from workerpool_operator.labels import LABEL_MANAGED_BY

MAX_CONCURRENT = 4
MAX_REPLICAS = 4
SAMPLE_SECONDS = 0.25


# -- pools -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    name: str
    hpa_sync: str | None
    keda_sides: tuple[str, ...]
    scale_down_seconds: int  # both sides: scale-down stabilization window and cooldown
    keda_polling: int | None  # None: KEDA's default (30 s)


PROFILES = {
    "defaults": Profile("defaults", None, ("keda",), 300, None),
    "fast": Profile("fast", "1s", ("keda-queuelength", "keda-messagerate"), 30, 1),
}


@dataclass
class Scenario:
    name: str
    job_seconds: float
    window: float  # seconds observed after the first message
    warm: bool = False  # bring each pool to MAX_REPLICAS first (by its own autoscaler)
    jobs: int = 16
    delay: float = 0.0  # published after this many seconds (a reaction trial's random offset)


def reaction_trials(trials: int, seed: int) -> list[Scenario]:
    """``react-N``: one replica's worth of 2 s jobs into idle pools, each trial at its own
    random moment within 10 s, so the bursts land at independent phases of every poller."""
    chance = random.Random(seed)
    return [
        Scenario(f"react-{n}", 2.0, 30.0, jobs=MAX_CONCURRENT, delay=chance.uniform(0, 10))
        for n in range(1, trials + 1)
    ]


def reaction_summary(trials: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per side: the reaction figures of every ``react-N`` trial, with mean and max."""
    summary: dict[str, Any] = {}
    kinds = {kind for sides in trials.values() for kind in sides}
    for kind in sorted(kinds):
        figures: dict[str, Any] = {}
        for key in ("first_scale_up_written_s", "first_new_ready_replica_s", "first_job_started_s"):
            values = [sides[kind][key] for sides in trials.values() if kind in sides]
            seen = [v for v in values if v is not None]
            figures[key] = {
                "values": values,
                "mean": round(statistics.fmean(seen), 2) if seen else None,
                "max": max(seen, default=None),
            }
        summary[kind] = figures
    return summary


def scenarios(profile: Profile) -> list[Scenario]:
    long_job = profile.scale_down_seconds + 30.0
    settle = profile.scale_down_seconds + 60.0
    return [
        Scenario("burst", 5.0, 60.0 + settle, jobs=24),
        Scenario("ramp", 5.0, 150.0 + settle),
        Scenario("long", long_job, long_job + settle),
        Scenario("unacked", long_job, long_job + settle, warm=True),
    ]


class BenchWorkers(PodWorkers):
    """``PodWorkers`` with the SDK's default 2 s heartbeat (the tests use 0.5 s)."""

    def _env(self) -> dict[str, str]:
        return {**super()._env(), "HEARTBEAT_INTERVAL": "2"}


@dataclass
class Side:
    """One pool under one autoscaler, in one scenario."""

    kind: str  # "ours" or a keda-* side
    namespace: str
    provider: str
    workers: PodWorkers | None = None
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    """(monotonic time, spec.replicas, status.replicas, status.readyReplicas)"""
    draining: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time, workers still finishing their jobs after SIGTERM)"""
    job_ids: list[str] = field(default_factory=list)
    t0: float | None = None  # monotonic time of its first message
    t0_wall: float | None = None
    failure: str | None = None  # why the scenario never started for this pool
    stopped_before: frozenset[str] = frozenset()  # workers stopped while warming up

    def busy_stops(self) -> dict[str, int]:
        """Workers stopped with jobs in flight since the first message of the scenario."""
        assert self.workers is not None
        busy = self.workers.busy_at_stop.items()
        return {name: n for name, n in busy if name not in self.stopped_before}

    @property
    def name(self) -> str:
        return self.kind

    @property
    def queue(self) -> str:
        return jobs.pool_queue(self.namespace, self.name)


def pool_body(side: Side, profile: Profile) -> dict[str, Any]:
    autoscaling: dict[str, Any] = {
        "enabled": side.kind == "ours",
        "minReplicas": 0,
        "maxReplicas": MAX_REPLICAS,
    }
    if profile.scale_down_seconds != 300:
        autoscaling["cooldownSeconds"] = profile.scale_down_seconds
        autoscaling["scaleDown"] = {"stabilizationWindowSeconds": profile.scale_down_seconds}
    return {
        "apiVersion": "controlplane.itlusions.com/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": side.name, "namespace": side.namespace},
        "spec": {
            "rabbitmq": {"secretRef": {"name": "rabbitmq"}},
            "maxConcurrentJobs": MAX_CONCURRENT,
            "jobTimeout": 900,
            "replicaCount": 0,  # warm pools too: KEDA sets a never-active target to 0
            "providers": [side.provider],
            "autoscaling": autoscaling,
        },
    }


def keda_deployment(side: Side, profile: Profile) -> dict[str, Any]:
    """The Deployment the operator would build for this pool, owned by nobody (KEDA scales
    it), and labelled so the WorkerPool operator does not see it as its own."""
    body = pool_body(side, profile)
    body["metadata"]["uid"] = str(uuid.uuid4())
    deployment = build_deployment(parse_pool(body), default_image="itl-controlplane-worker:bench")
    deployment["metadata"].pop("ownerReferences", None)
    deployment["metadata"]["labels"][LABEL_MANAGED_BY] = "keda-bench"
    deployment["spec"]["template"]["metadata"]["labels"][LABEL_MANAGED_BY] = "keda-bench"
    return deployment


def scaled_object(side: Side, profile: Profile, scenario: Scenario) -> dict[str, Any]:
    metadata: dict[str, Any] = {"queueName": side.queue}
    auth = "rabbitmq-amqp"
    if side.kind == "keda-messagerate":
        # Target per replica: what one replica finishes per second.
        rate = MAX_CONCURRENT / scenario.job_seconds
        metadata.update({"mode": "MessageRate", "value": f"{rate:.3f}", "vhostName": "/"})
        auth = "rabbitmq-http"
    else:
        metadata.update({"mode": "QueueLength", "value": str(MAX_CONCURRENT)})
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": side.name},
        "minReplicaCount": 0,
        "maxReplicaCount": MAX_REPLICAS,
        "triggers": [
            {"type": "rabbitmq", "metadata": metadata, "authenticationRef": {"name": auth}}
        ],
    }
    if profile.keda_polling is not None:
        spec["pollingInterval"] = profile.keda_polling
    if profile.scale_down_seconds != 300:
        spec["cooldownPeriod"] = profile.scale_down_seconds
        spec["advanced"] = {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": profile.scale_down_seconds}
                }
            }
        }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": side.name, "namespace": side.namespace},
        "spec": spec,
    }


def trigger_auths(namespace: str, broker: Broker) -> list[dict[str, Any]]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "rabbitmq-keda", "namespace": namespace},
        "stringData": {"amqp": broker.amqp_url, "http": broker.http_url},
    }
    auths = [
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": f"rabbitmq-{key}", "namespace": namespace},
            "spec": {
                "secretTargetRef": [{"parameter": "host", "name": "rabbitmq-keda", "key": key}]
            },
        }
        for key in ("amqp", "http")
    ]
    return [secret, *auths]


# -- observation -----------------------------------------------------------------------


class Sampler(threading.Thread):
    """Samples every bench Deployment's replicas with one list request per tick."""

    def __init__(self, local: LocalCluster, sides: list[Side]) -> None:
        super().__init__(daemon=True, name="sampler")
        assert local.cluster is not None
        self.api = local.cluster.api
        self.by_key = {(s.namespace, s.name): s for s in sides}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            now = time.monotonic()
            with contextlib.suppress(Exception):
                items = self.api.get("/apis/apps/v1/deployments")["items"]
                for item in items:
                    side = self.by_key.get(
                        (item["metadata"]["namespace"], item["metadata"]["name"])
                    )
                    if side is None:
                        continue
                    status = item.get("status") or {}
                    side.samples.append(
                        (
                            now,
                            int(item["spec"].get("replicas", 0)),
                            int(status.get("replicas", 0)),
                            int(status.get("readyReplicas", 0)),
                        )
                    )
                for side in self.by_key.values():
                    if side.workers is not None:
                        side.draining.append((now, side.workers.draining()))
            self.stop_event.wait(SAMPLE_SECONDS)


def _first_rise(side: Side, column: int) -> float | None:
    """Seconds from the first message to the first sample whose ``column`` (of
    ``Side.samples``) is above its value at the first message; None if none is."""
    assert side.t0 is not None
    before = [s for s in side.samples if s[0] <= side.t0]
    base = before[-1][column] if before else 0
    for sample in side.samples:
        if sample[0] > side.t0 and sample[column] > base:
            return round(sample[0] - side.t0, 2)
    return None


def first_new_ready(side: Side) -> float | None:
    """Seconds from the first message to one more Ready replica."""
    return _first_rise(side, 3)  # status.readyReplicas


def first_scale_up(side: Side) -> float | None:
    """Seconds from the first message to the first higher ``spec.replicas``: noticing,
    deciding and writing; what follows up to Ready is the control plane and kwok."""
    return _first_rise(side, 1)  # spec.replicas


def replica_seconds(side: Side, window: float) -> float:
    assert side.t0 is not None
    end = side.t0 + window
    points = [s for s in side.samples if side.t0 <= s[0] <= end]
    total = 0.0
    for (t, _, pods, _), (t_next, *_) in itertools.pairwise(points):
        total += pods * (t_next - t)
    return round(total, 1)


def draining_seconds(side: Side, window: float) -> float:
    """Worker-seconds spent by stopped workers finishing their jobs: a terminating pod
    keeps its resources until then, which ``status.replicas`` no longer counts."""
    assert side.t0 is not None
    end = side.t0 + window
    points = [s for s in side.draining if side.t0 <= s[0] <= end]
    total = 0.0
    for (t, count), (t_next, _) in itertools.pairwise(points):
        total += count * (t_next - t)
    return round(total, 1)


def reversals(side: Side) -> tuple[int, list[int]]:
    assert side.t0 is not None
    values: list[int] = []
    for t, spec, _, _ in side.samples:
        if t >= side.t0 - 1 and (not values or values[-1] != spec):
            values.append(spec)
    directions = [1 if b > a else -1 for a, b in itertools.pairwise(values)]
    flips = sum(1 for a, b in itertools.pairwise(directions) if a != b)
    return flips, values


# -- the run ---------------------------------------------------------------------------


def publish_ramp(broker: Broker, sides: list[Side], seconds: float) -> None:
    """5 s jobs at a rate rising linearly from 0 to 2.4/s over ``seconds``, to every side."""
    peak = 2.4
    start = time.monotonic()
    published = 0.0
    for side in sides:
        side.t0, side.t0_wall = None, None
    while (elapsed := time.monotonic() - start) < seconds:
        due = peak * elapsed * elapsed / (2 * seconds)  # jobs published by now: integral of rate
        if due - published >= 1:
            now, wall = time.monotonic(), time.time()
            for side in sides:
                if side.t0 is None:
                    side.t0, side.t0_wall = now, wall
                side.job_ids += jobs.publish(
                    broker.amqp_url, side.queue, [5.0], provider=side.provider
                )
            published += 1
        time.sleep(0.05)


def run_scenario(
    scenario: Scenario, sides: list[Side], broker: Broker, local: LocalCluster
) -> None:
    count = scenario.jobs
    time.sleep(scenario.delay)
    if scenario.warm:
        stop = threading.Event()
        producers = [
            threading.Thread(
                target=jobs.produce,
                args=(broker.amqp_url, side.queue),
                kwargs={"seconds": 2.0, "every": 0.1, "stop": stop},
                daemon=True,
            )
            for side in sides
        ]
        for producer in producers:
            producer.start()
        time.sleep(12)
        stop.set()
        for producer in producers:
            producer.join()
        pending = list(sides)
        deadline = time.monotonic() + 300
        while pending and time.monotonic() < deadline:
            for side in list(pending):
                assert side.workers is not None
                warm = (
                    side.samples
                    and side.samples[-1][3] >= MAX_REPLICAS
                    and len(side.workers.running()) >= MAX_REPLICAS
                    and broker.queue(side.queue).get("messages", 1) == 0
                    and not any(side.workers.in_flight().values())
                )
                if warm:
                    side.t0, side.t0_wall = time.monotonic(), time.time()
                    side.stopped_before = frozenset(side.workers.stopped)
                    side.job_ids = jobs.publish(
                        broker.amqp_url,
                        side.queue,
                        [scenario.job_seconds] * count,
                        provider=side.provider,
                    )
                    pending.remove(side)
            time.sleep(0.2)
        for side in pending:
            side.failure = f"never reached {MAX_REPLICAS} warm replicas within 300 s"
    elif scenario.name == "ramp":
        publish_ramp(broker, sides, 120.0)
    else:
        now, wall = time.monotonic(), time.time()
        for side in sides:
            side.t0, side.t0_wall = now, wall
            side.job_ids = jobs.publish(
                broker.amqp_url, side.queue, [scenario.job_seconds] * count, provider=side.provider
            )


def report_side(side: Side, scenario: Scenario, broker: Broker) -> dict[str, Any]:
    assert side.workers is not None
    if side.t0_wall is None:
        return {"not_run": side.failure or "no job published"}
    results = jobs.results(
        broker.amqp_url, side.queue, side.provider, side.job_ids, timeout=30, lookback=3600
    )
    done = [r for r in results.values() if r is not None]
    last = max((r.timestamp.timestamp() for r in done), default=None)
    first = min((r.timestamp.timestamp() for r in done), default=None)
    flips, values = reversals(side)
    stats = broker.queue(side.queue).get("message_stats") or {}
    return {
        "jobs": len(side.job_ids),
        "jobs_done": len(done),
        "first_scale_up_written_s": first_scale_up(side),
        "first_new_ready_replica_s": first_new_ready(side),
        "first_job_started_s": (
            round(first - scenario.job_seconds - side.t0_wall, 1) if first is not None else None
        ),
        "drain_s": round(last - side.t0_wall, 1) if last is not None else None,
        "replica_seconds": replica_seconds(side, scenario.window),
        "draining_worker_seconds": draining_seconds(side, scenario.window),
        "window_s": scenario.window,
        "busy_pods_terminated": len(side.busy_stops()),
        "jobs_in_flight_at_termination": sum(side.busy_stops().values()),
        "redelivered": int(stats.get("redeliver", 0)),
        "direction_reversals": flips,
        "replica_path": values,
        "worker_errors": side.workers.errors[:3],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    parser.add_argument(
        "--scenarios", default="burst,ramp,long,unacked", help="comma-separated subset"
    )
    parser.add_argument(
        "--reaction-trials",
        type=int,
        default=0,
        help="add this many react-N scenarios (first reaction from idle, random moments)",
    )
    parser.add_argument("--seed", type=int, default=17, help="seed of the trials' moments")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    wanted = set(args.scenarios.split(","))
    chosen = [s for s in scenarios(profile) if s.name in wanted]
    chosen += reaction_trials(args.reaction_trials, args.seed)
    run_dir = Path(tempfile.mkdtemp(prefix=f"keda-bench-{profile.name}-"))
    extra = {}
    if profile.hpa_sync:
        extra["kube-controller-manager"] = [
            f"--horizontal-pod-autoscaler-sync-period={profile.hpa_sync}"
        ]
    print(f"run dir {run_dir}", file=sys.stderr, flush=True)
    report: dict[str, Any] = {
        "profile": profile.name,
        "hpa_sync_period": profile.hpa_sync or "15s (default)",
        "keda_polling_interval_s": profile.keda_polling or 30,
        "scale_down_window_and_cooldown_s": profile.scale_down_seconds,
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scenarios": {},
    }
    with own_broker() as broker:
        local = LocalCluster(
            run_dir / "cluster", mode=MODE_FULL, binaries=discover(), extra_args=extra
        )
        cluster = local.start()
        keda = Keda(local)
        operator = OperatorProcess(cluster.kubeconfig, run_dir / "operator.log", namespaces="kc-*")
        all_sides: list[Side] = []
        sampler: Sampler | None = None
        try:
            keda.start()
            cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / crd.CRD_FILE_NAME))
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd.api.CRD_NAME}")
            operator.start()
            by_scenario: dict[str, list[Side]] = {}
            for scenario in chosen:
                namespace = cluster.create_namespace(f"kc-{scenario.name}")
                put_secret(cluster, namespace, broker.amqp_url)
                docs: list[dict[str, Any]] = trigger_auths(namespace, broker)
                sides = []
                for kind in ("ours", *profile.keda_sides):
                    side = Side(kind, namespace, f"ITL.KedaBench{uuid.uuid4().hex[:8]}")
                    jobs.declare(broker.amqp_url, side.queue, side.provider)
                    if kind == "ours":
                        docs.append(pool_body(side, profile))
                    else:
                        docs.append(keda_deployment(side, profile))
                        docs.append(scaled_object(side, profile, scenario))
                    side.workers = BenchWorkers(
                        cluster, namespace, side.name, rabbitmq_url=broker.amqp_url,
                        log_dir=run_dir / "workers" / namespace, interval=0.5,
                    )  # fmt: skip
                    (run_dir / "workers" / namespace).mkdir(parents=True, exist_ok=True)
                    sides.append(side)
                cluster.kubectl(
                    "apply", "--server-side", "-f", "-",
                    input="\n---\n".join(json.dumps(d) for d in docs),
                )  # fmt: skip
                by_scenario[scenario.name] = sides
                all_sides += sides
            sampler = Sampler(local, all_sides)
            sampler.start()
            for side in all_sides:
                assert side.workers is not None
                side.workers.__enter__()
            time.sleep(10)  # every autoscaler has seen its idle pool
            threads = [
                threading.Thread(
                    target=run_scenario, args=(s, by_scenario[s.name], broker, local), daemon=True
                )
                for s in chosen
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            longest = max(
                (side.t0 or time.monotonic()) + s.window
                for s in chosen
                for side in by_scenario[s.name]
            )
            while time.monotonic() < longest:
                time.sleep(1)
            for scenario in chosen:
                report["scenarios"][scenario.name] = {
                    side.kind: report_side(side, scenario, broker)
                    for side in by_scenario[scenario.name]
                }
            trials = {k: v for k, v in report["scenarios"].items() if k.startswith("react-")}
            if trials:
                report["reaction_trials"] = reaction_summary(trials)
        finally:
            if sampler is not None:
                sampler.stop_event.set()
            for side in all_sides:
                if side.workers is not None:
                    side.workers.close()
            operator.stop()
            keda.stop()
            local.stop(remove=not args.keep)
    report["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
