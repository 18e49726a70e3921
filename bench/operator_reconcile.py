"""Benchmark: N WorkerPools across M namespaces -> N Deployments and N x R pods, and the cost.

    python bench/operator_reconcile.py [--pools 100] [--namespaces 1] [--replicas 1]
                                       [--server-side]

Starts its own full local control plane (etcd, apiserver, controllers, scheduler, kwok) and
the operator as a process (``python -m workerpool_operator``, cluster-wide), applies N pools
(``replicaCount: R``) spread round-robin over M namespaces in one ``kubectl apply`` (or with
``--parallel N`` threads of POSTs), and
reports, as JSON on stdout:

* ``deployments_s``: from the apply to all N Deployments existing (target: < 60 s);
* ``ready_s``: until every pool reports Ready with its R (kwok) pods ready (the 1000-pool
  target: < 60 s);
* ``rss_mib`` / ``peak_rss_mib``: the operator's resident memory after settling, and its
  high-water mark (target: < 300 MB at 1000 pools);
* ``operator_cpu_s_*``: the operator's user + system CPU to each milestone;
* ``reconciles``: reconciles the operator counted (a measure of wasted work);
* ``operator_requests``: the operator's own API requests, by verb and resource, from the
  apiserver's audit log (the operator authenticates as a user of its own; the audit policy
  records that user only), and ``requests_per_reconcile``;
* ``cpu_by_phase``: per phase (``create``: the POSTs; ``deployments``: to the last Deployment;
  ``ready``: to the last Ready pool), the CPU seconds and share of the machine of etcd, the
  apiserver, the controller-manager, the scheduler, kwok, the operator and the bench itself,
  the machine's busy share and ``other`` (every other process: the neighbours' load);
* ``pods_ready_per_s``: pods Ready per second over the ``ready`` phase, and the best 30 s;
* ``throttles``: what the control plane's components waited in (client rate limiters, work
  queues, the apiserver's priority and fairness queues) and their request latencies;
* ``--timeline FILE`` writes the per-second CPU split and the pods Ready over time as JSON.

At scale the control plane, not the operator, limits pod creation: kube-controller-manager's
and kube-scheduler's client QPS default to 20 and 50, so 10 000 pods take minutes. The bench
raises both (``--control-plane-qps``, recorded in the report), adds one kwok node with room
for every pod (the harness's node takes 110), and passes any other flag to a component with
``--component-arg COMPONENT=FLAG`` (recorded too). Measured, not asserted: the numbers go to
``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _cpu import CpuSampler
from _throttles import POD_WRITES, pod_writes, read_throttles

from itl_harness.operator_process import REPO, OperatorProcess, sample_metric
from itl_harness.stack import LOCAL_BROKER_URL, put_secret
from localcluster import (
    MODE_FULL,
    Cluster,
    LocalCluster,
    WaitTimeout,
    components,
    discover,
    kubeconfig,
    wait_until,
)
from workerpool_operator import crd

NAMESPACE_PREFIX = "wpo-bench"
OPERATOR_USER = "workerpool-operator-bench"
POOLS_PATH = "/apis/controlplane.itlusions.com/v1alpha1/workerpools"
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "users": [OPERATOR_USER]}, {"level": "None"}],
}


COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def _namespaces(count: int) -> list[str]:
    return [f"{NAMESPACE_PREFIX}-{index:02d}" for index in range(count)]


def _pools(count: int, namespaces: list[str], replicas: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "controlplane.itlusions.com/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {
                "name": f"pool-{index:04d}",
                "namespace": namespaces[index % len(namespaces)],
            },
            "spec": {"replicaCount": replicas, "rabbitmq": {"secretRef": {"name": "rabbitmq"}}},
        }
        for index in range(count)
    ]


def _create(cluster: Cluster, pools: list[dict[str, Any]], threads: int) -> None:
    """POST every pool from ``threads`` threads (what a burst of GitOps syncs does)."""

    def post(pool: dict[str, Any]) -> None:
        namespace = pool["metadata"]["namespace"]
        cluster.api.post(
            f"/apis/controlplane.itlusions.com/v1alpha1/namespaces/{namespace}/workerpools", pool
        )

    with concurrent.futures.ThreadPoolExecutor(threads) as executor:
        list(executor.map(post, pools))


def _big_node(pods: int) -> dict[str, Any]:
    """A kwok node with room for ``pods`` pods (the harness's own node holds 110)."""
    node: dict[str, Any] = components.fake_node("kwok-node-bench")
    capacity = {"cpu": "4000", "memory": "64Ti", "pods": str(pods)}
    node["status"] = {"allocatable": capacity, "capacity": capacity}
    return node


def _peak_rss_kib(operator: OperatorProcess) -> int:
    assert operator.process is not None
    for line in Path(f"/proc/{operator.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _operator_kubeconfig(local: LocalCluster, run_dir: Path) -> Path:
    """A kubeconfig for a user of the operator's own (admin rights), so the audit log can
    tell its requests from kubectl's and the controllers'."""
    assert local.layout is not None
    assert local.cluster is not None
    the_pki = local.layout.pki
    crt, key = the_pki.client_cert("bench-operator", OPERATOR_USER, ("system:masters",))
    return kubeconfig.write(
        run_dir / "operator.kubeconfig",
        kubeconfig.build(
            name="bench-operator",
            server=local.cluster.server,
            ca_data=kubeconfig.ca_data_of(the_pki.ca_crt),
            user=kubeconfig.cert_user(crt, key),
        ),
    )


def _audited_requests(audit_log: Path, since: int) -> dict[str, int]:
    """The operator's requests after byte ``since`` of the audit log, by
    ``verb resource[/subresource]`` (one per audit ID: a watch logs when it starts and ends)."""
    seen: dict[str, str] = {}
    with audit_log.open("rb") as log:
        log.seek(since)
        text = log.read().decode()
    for line in text.splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", event.get("requestURI", "?").split("?")[0])
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        seen[event["auditID"]] = f"{event['verb']} {resource}"
    return dict(collections.Counter(seen.values()).most_common())


class _Progress:
    """A line on stderr at most every 30 s, so a run stopped before the end (a saturated
    machine) still shows how far it got and what the operator cost until then."""

    def __init__(self, operator: OperatorProcess, started: float, cpu_before: float) -> None:
        self._operator, self._started, self._cpu_before = operator, started, cpu_before
        self._last = 0.0

    def report(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last < 30:
            return
        self._last = now
        cpu = self._operator.cpu_seconds() - self._cpu_before
        rss = self._operator.rss_kib() / 1024
        print(
            f"[{now - self._started:7.1f} s] {what}; operator CPU {cpu:.1f} s, RSS {rss:.0f} "
            f"MiB, load {os.getloadavg()[0]:.1f}",
            file=sys.stderr,
            flush=True,
        )


def _kwok_configuration(pod_parallelism: int) -> dict[str, Any]:
    """kwok's own settings (a second ``--config`` next to the stages): how many pods it moves
    through their stages at once (its default, 4, is one status patch in flight per worker).
    kwok applies no defaults to a configuration read from a file, so the other options carry
    kwok's documented defaults here (without them it refuses to start)."""
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "podPlayStageParallelism": pod_parallelism,
            "nodePlayStageParallelism": 4,
            "nodeLeaseParallelism": 4,
            "podsOnNodeSyncParallelism": 1,
            "enablePodsOnNodeSyncListPager": True,
            "enablePodsOnNodeSyncStreamWatch": False,
            "enableDebuggingHandlers": True,
            "enableContentionProfiling": False,
            "enableProfilingHandler": True,
        },
    }


POD_PROGRESS_EVERY = 15.0
"""Seconds between two reads of the apiserver's request counters (3 MB of metrics at 1000
pools: often enough for rates, rarely enough not to load the apiserver)."""


def _write_rates(after: list[dict[str, float]]) -> dict[str, float]:
    """Pods created, bound and started per second from the first reading to the last, and
    the best reading-to-reading rate of each."""
    if len(after) < 2:
        return {}
    first, last = after[0], after[-1]
    rates: dict[str, float] = {}
    for key in POD_WRITES:
        rates[key] = round((last[key] - first[key]) / (last["t"] - first["t"]), 1)
        rates[f"{key}_best"] = round(
            max((b[key] - a[key]) / (b["t"] - a["t"]) for a, b in itertools.pairwise(after)), 1
        )
    return rates


def _ready_rates(points: list[tuple[float, int]], window: float = 30.0) -> dict[str, float]:
    """Pods Ready per second from ``(seconds, pods ready)`` points: over all of them, and the
    best ``window`` seconds."""
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return {}
    (first_t, first_n), (last_t, last_n) = points[0], points[-1]
    best = 0.0
    for index, (t, n) in enumerate(points):
        later = [(u, m) for u, m in points[index + 1 :] if u - t >= window]
        if later:
            u, m = later[0]
            best = max(best, (m - n) / (u - t))
    return {
        "overall": round((last_n - first_n) / (last_t - first_t), 1),
        "best_30s": round(best, 1),
    }


def run(
    count: int,
    namespace_count: int,
    replicas: int,
    server_side: bool,
    parallel: int,
    qps: int,
    component_args: dict[str, list[str]],
    timeline: Path | None,
    kwok_pod_parallelism: int,
    deadline: float,
) -> dict[str, object]:
    run_dir = Path(tempfile.mkdtemp(prefix="wpo-bench-"))
    component_args = {name: list(flags) for name, flags in component_args.items()}
    if kwok_pod_parallelism:
        kwok_config = run_dir / "kwok-configuration.yaml"
        kwok_config.write_text(yaml.safe_dump(_kwok_configuration(kwok_pod_parallelism)))
        component_args.setdefault("kwok", []).append(f"--config={kwok_config}")
    policy = run_dir / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    audit_log = run_dir / "audit.log"
    client = [f"--kube-api-qps={qps}", f"--kube-api-burst={2 * qps}"]
    extra_args = {
        "kube-apiserver": [f"--audit-policy-file={policy}", f"--audit-log-path={audit_log}"],
        "kube-controller-manager": client,
        "kube-scheduler": client,
    }
    for component, flags in component_args.items():
        extra_args[component] = [*extra_args.get(component, []), *flags]
    local = LocalCluster(
        run_dir / "cluster", mode=MODE_FULL, binaries=discover(), extra_args=extra_args
    )
    cluster = local.start()
    assert local.layout is not None
    layout = local.layout
    namespaces = _namespaces(namespace_count)
    operator = OperatorProcess(
        _operator_kubeconfig(local, run_dir), run_dir / "operator.log", namespaces=""
    )
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / crd.CRD_FILE_NAME))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd.api.CRD_NAME}")
        cluster.api.post("/api/v1/nodes", _big_node(count * replicas + 100))
        for namespace in namespaces:
            cluster.create_namespace(namespace)
            put_secret(cluster, namespace, LOCAL_BROKER_URL)
        operator.start()
        time.sleep(5)  # the watches are up; their initial lists are not counted below
        idle_rss = operator.rss_kib()
        cpu_before = operator.cpu_seconds()
        audit_from = audit_log.stat().st_size if audit_log.exists() else 0  # from the apply on
        assert operator.process is not None
        sampler = CpuSampler(
            {**cluster.pids, "operator": operator.process.pid, "bench": os.getpid()}
        )
        pools = _pools(count, namespaces, replicas)
        load_at_start = os.getloadavg()[0]

        sampler.start()
        started = time.monotonic()
        if parallel:
            _create(cluster, pools, parallel)
        else:
            mode = ["--server-side"] if server_side else []
            text = yaml.safe_dump_all(pools)
            cluster.kubectl("apply", *mode, "-f", "-", input=text, timeout=3600)
        applied = time.monotonic() - started
        sampler.mark("create")
        progress = _Progress(operator, started, cpu_before)

        def all_deployments() -> bool:
            found = len(cluster.api.get("/apis/apps/v1/deployments")["items"])
            progress.report(f"{found}/{count} Deployments")
            return found >= count

        wait_until(all_deployments, timeout=1800, what=f"{count} Deployments")
        deployments_s = time.monotonic() - started
        cpu_deployments = operator.cpu_seconds() - cpu_before
        sampler.mark("deployments")
        pods_ready: list[tuple[float, int]] = []
        pools_ready: list[int] = []
        pod_progress = [
            {
                "t": round(deployments_s, 1),
                **pod_writes(cluster.api.raw_text("/metrics")),
            }
        ]

        def all_ready() -> bool:
            now = round(time.monotonic() - started, 1)
            if now - pod_progress[-1]["t"] >= POD_PROGRESS_EVERY:
                pod_progress.append({"t": now, **pod_writes(cluster.api.raw_text("/metrics"))})
            items = cluster.api.get(POOLS_PATH)["items"]
            statuses = [item.get("status") or {} for item in items]
            ready = sum(status.get("readyReplicas") == replicas for status in statuses)
            pods = sum(int(status.get("readyReplicas") or 0) for status in statuses)
            pods_ready.append((now, pods))
            pools_ready.append(ready)
            progress.report(
                f"{ready}/{count} pools Ready, {pods} pods Ready, pods created/bound/started "
                + "/".join(f"{pod_progress[-1][key]:.0f}" for key in POD_WRITES)
            )
            return len(items) == count and ready == count

        ready_s: float | None = None
        try:
            wait_until(
                all_ready,
                timeout=max(1.0, deadline - (time.monotonic() - started)),
                what=f"{count} pools Ready",
                max_interval=1.0,
            )
            ready_s = time.monotonic() - started
        except WaitTimeout:  # reported as not reached, with the pods' progress until then
            pass
        pod_progress.append(
            {
                "t": round(time.monotonic() - started, 1),
                **pod_writes(cluster.api.raw_text("/metrics")),
            }
        )
        cpu_ready = operator.cpu_seconds() - cpu_before
        sampler.mark("ready")
        sampler.stop()
        throttles = read_throttles(
            lambda: cluster.api.raw_text("/metrics"), layout.kcm_port, layout.scheduler_port
        )
        peak_during = _peak_rss_kib(operator)
        if timeline is not None:
            timeline.write_text(
                json.dumps(
                    {
                        "cpu": sampler.timeline(),
                        "pods_ready": pods_ready,
                        "pod_writes": pod_progress,
                    },
                    indent=1,
                )
            )
        time.sleep(10)  # settle: Deployment and pod events drain
        metrics = operator.metrics()
        reconciles = sample_metric(
            metrics, "workerpool_operator_reconciles_total", 'result="success"'
        )
        requests = _audited_requests(audit_log, audit_from)
        total_requests = sum(requests.values())
        return {
            "pools": count,
            "namespaces": namespace_count,
            "replicas_per_pool": replicas,
            "pods": count * replicas,
            "create": f"{parallel} threads POSTing"
            if parallel
            else "kubectl apply " + ("--server-side" if server_side else "(client-side)"),
            "control_plane_client_qps": qps,
            "component_args": component_args,
            "kwok_pod_parallelism": kwok_pod_parallelism or "default (4)",
            "load_average_1m_at_start": round(load_at_start, 2),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            "create_s": round(applied, 2),
            "deployments_s": round(deployments_s, 2),
            "deployments_after_create_s": round(deployments_s - applied, 2),
            "ready_s": round(ready_s, 2) if ready_s is not None else f"not within {deadline} s",
            "pools_ready_at_end": pools_ready[-1] if pools_ready else 0,
            "operator_cpu_s_to_deployments": round(cpu_deployments, 2),
            "operator_cpu_s_to_ready": round(cpu_ready, 2),
            "idle_rss_mib": round(idle_rss / 1024, 1),
            "rss_mib": round(operator.rss_kib() / 1024, 1),
            "peak_rss_mib_to_ready": round(peak_during / 1024, 1),
            "peak_rss_mib": round(_peak_rss_kib(operator) / 1024, 1),
            "reconciles": reconciles,
            "failed_reconciles": sample_metric(
                metrics, "workerpool_operator_reconciles_total", 'result="failure"'
            ),
            "operator_requests": total_requests,
            "requests_per_reconcile": round(total_requests / reconciles, 2) if reconciles else None,
            "operator_requests_by_kind": requests,
            "pods_ready_per_s": _ready_rates([p for p in pods_ready if p[0] >= deployments_s]),
            "pod_writes_per_s": _write_rates(pod_progress),
            "cpu_by_phase": sampler.phases(),
            "throttles": throttles,
        }
    finally:
        operator.stop()
        local.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--namespaces", type=int, default=1, help="spread pools over this many")
    parser.add_argument("--replicas", type=int, default=1, help="replicaCount of every pool")
    parser.add_argument(
        "--server-side", action="store_true", help="kubectl apply --server-side (one request each)"
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=0,
        metavar="N",
        help="create the pools with N threads of POSTs instead of one kubectl apply",
    )
    parser.add_argument(
        "--control-plane-qps",
        type=int,
        default=200,
        help="client QPS of kube-controller-manager and kube-scheduler (burst: twice this)",
    )
    parser.add_argument(
        "--component-arg",
        action="append",
        default=[],
        metavar="COMPONENT=FLAG",
        help="one more flag for a component of the bench's control plane, for example "
        "kube-controller-manager=--concurrent-replicaset-syncs=50 (repeatable)",
    )
    parser.add_argument(
        "--timeline", type=Path, help="write the per-second CPU split and pods Ready here (JSON)"
    )
    parser.add_argument(
        "--kwok-pod-parallelism",
        type=int,
        default=0,
        metavar="N",
        help="kwok's podPlayStageParallelism (pods moved through their stages at once; "
        "kwok's default is 4)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=3600,
        metavar="SECONDS",
        help="stop waiting for Ready pools this long after the first POST and report how far "
        "the run got (the bench lock should not be held for hours)",
    )
    args = parser.parse_args()
    component_args: dict[str, list[str]] = {}
    for item in args.component_arg:
        component, separator, flag = item.partition("=")
        if not separator or component not in COMPONENTS or not flag.startswith("--"):
            parser.error(
                f"--component-arg {item!r}: expected COMPONENT=--flag[=value] with COMPONENT "
                f"one of {', '.join(COMPONENTS)}"
            )
        component_args.setdefault(component, []).append(flag)
    report = run(
        args.pools,
        args.namespaces,
        args.replicas,
        args.server_side,
        args.parallel,
        args.control_plane_qps,
        component_args,
        args.timeline,
        args.kwok_pod_parallelism,
        args.deadline,
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
