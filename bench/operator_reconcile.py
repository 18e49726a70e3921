"""Benchmark: ``kubectl apply`` of N WorkerPools -> N Deployments, and the operator's RSS.

    python bench/operator_reconcile.py [--pools 100] [--server-side]

Starts its own full local control plane (etcd, apiserver, controllers, scheduler, kwok) and
the operator as a process (``python -m workerpool_operator``), applies N pools in one
``kubectl apply``, and reports, as JSON on stdout:

* ``deployments_s``: from the apply to all N Deployments existing (target: < 60 s);
* ``ready_s``: until every pool reports Ready with its one (kwok) pod ready;
* ``rss_mib`` / ``peak_rss_mib``: the operator's resident memory after settling, and its
  high-water mark (target: < 150 MB);
* ``reconciles``: reconciles the operator counted (a measure of wasted work).

Measured, not asserted: the numbers go to ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

from itl_harness.operator_process import REPO, OperatorProcess, sample_metric
from localcluster import MODE_FULL, LocalCluster, discover, wait_until
from workerpool_operator import crd

NAMESPACE = "wpo-bench"


def _pools(count: int) -> str:
    docs = [
        {
            "apiVersion": "controlplane.itlusions.com/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": f"pool-{index:03d}", "namespace": NAMESPACE},
            "spec": {"replicaCount": 1, "rabbitmq": {"secretRef": {"name": "rabbitmq"}}},
        }
        for index in range(count)
    ]
    return yaml.safe_dump_all(docs)


def _peak_rss_kib(operator: OperatorProcess) -> int:
    assert operator.process is not None
    for line in Path(f"/proc/{operator.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(count: int, server_side: bool) -> dict[str, object]:
    run_dir = Path(tempfile.mkdtemp(prefix="wpo-bench-"))
    local = LocalCluster(run_dir / "cluster", mode=MODE_FULL, binaries=discover())
    cluster = local.start()
    operator = OperatorProcess(cluster.kubeconfig, run_dir / "operator.log", namespaces=NAMESPACE)
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / crd.CRD_FILE_NAME))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd.api.CRD_NAME}")
        cluster.create_namespace(NAMESPACE)
        cluster.kubectl(
            "-n", NAMESPACE, "create", "secret", "generic", "rabbitmq",
            "--from-literal=url=amqp://guest:guest@127.0.0.1:5672/",
        )  # fmt: skip
        operator.start()
        idle_rss = operator.rss_kib()
        cpu_before = operator.cpu_seconds()
        deployments = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
        pools = f"/apis/controlplane.itlusions.com/v1alpha1/namespaces/{NAMESPACE}/workerpools"

        started = time.monotonic()
        mode = ["--server-side"] if server_side else []
        cluster.kubectl("apply", *mode, "-f", "-", input=_pools(count), timeout=300)
        applied = time.monotonic() - started
        wait_until(
            lambda: len(cluster.api.get(deployments)["items"]) >= count,
            timeout=600,
            what=f"{count} Deployments",
        )
        deployments_s = time.monotonic() - started
        cpu_deployments = operator.cpu_seconds() - cpu_before

        def all_ready() -> bool:
            items = cluster.api.get(pools)["items"]
            return len(items) == count and all(
                (item.get("status") or {}).get("readyReplicas") == 1 for item in items
            )

        wait_until(all_ready, timeout=900, what=f"{count} pools Ready")
        ready_s = time.monotonic() - started
        cpu_ready = operator.cpu_seconds() - cpu_before
        time.sleep(10)  # settle: Deployment and pod events drain
        metrics = operator.metrics()
        return {
            "pools": count,
            "apply": "server-side" if server_side else "client-side",
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            "kubectl_apply_s": round(applied, 2),
            "deployments_s": round(deployments_s, 2),
            "deployments_after_apply_s": round(deployments_s - applied, 2),
            "ready_s": round(ready_s, 2),
            "operator_cpu_s_to_deployments": round(cpu_deployments, 2),
            "operator_cpu_s_to_ready": round(cpu_ready, 2),
            "idle_rss_mib": round(idle_rss / 1024, 1),
            "rss_mib": round(operator.rss_kib() / 1024, 1),
            "peak_rss_mib": round(_peak_rss_kib(operator) / 1024, 1),
            "reconciles": sample_metric(
                metrics, "workerpool_operator_reconciles_total", 'result="success"'
            ),
            "failed_reconciles": sample_metric(
                metrics, "workerpool_operator_reconciles_total", 'result="failure"'
            ),
        }
    finally:
        operator.stop()
        local.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument(
        "--server-side", action="store_true", help="kubectl apply --server-side (one request each)"
    )
    args = parser.parse_args()
    print(json.dumps(run(args.pools, args.server_side), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
