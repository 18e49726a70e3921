"""Scale-reaction time: from a burst of jobs to the Deployment's replicas, at default polling.

The target is a reaction under 3 s at the default poll interval (``pollIntervalSeconds``,
read from the WorkerPool model) and a comparison with KEDA's documented defaults. This
script measures ours on the real control plane (``localcluster``) and the real RabbitMQ:

- it starts the operator with the autoscaler (the integration tests' launcher);
- it creates ``--trials`` WorkerPools at ``minReplicas: 0`` with every autoscaling field at
  its default, one per trial, so each trial starts from an idle pool whose poll phase is
  independent of the others;
- for each trial it waits a random time up to one poll interval (the burst lands anywhere
  in the poll cycle),
  publishes 16 jobs to the pool's queue and times until the Deployment asks for
  ceil(16 / 4) = 4 replicas.

KEDA's figure is computed from its documented defaults, not measured (no KEDA here). The
ScaledObject's ``pollingInterval`` (30 s) drives 0 -> 1, and the HPA's sync period
(15 s) drives 1 -> N. A burst landing at a uniformly random moment therefore waits
U(0, 30) s for the first replica and another U(0, 15) s for N.

Run: ``python bench/autoscaler_reaction.py`` (RabbitMQ on 127.0.0.1:5672; a control plane
from ``make cluster-up`` is reused, or one is started and stopped).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import yaml

from itl_harness import jobs
from itl_harness.operator_process import OperatorProcess
from itl_harness.stack import put_secret
from localcluster import Cluster, LocalCluster, discover, recorded_cluster
from workerpool_operator import crd
from workerpool_operator.api import Autoscaling

REPO = Path(__file__).resolve().parents[1]

DEFAULT_POLL_SECONDS = Autoscaling.model_fields["poll_interval_seconds"].default

URL = "amqp://guest:guest@127.0.0.1:5672/"


@contextlib.contextmanager
def control_plane() -> Iterator[Cluster]:
    """The ``make cluster-up`` cluster if one runs, else a temporary one."""
    binaries = discover()
    recorded = recorded_cluster(binaries=binaries)
    if recorded is not None:
        yield recorded
        return
    local = LocalCluster(Path(tempfile.mkdtemp(prefix="bench-autoscaler-")), binaries=binaries)
    try:
        yield local.start()
    finally:
        local.stop()


def install_crd(cluster: Cluster) -> None:
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds" / crd.CRD_FILE_NAME)
    )
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd.api.CRD_NAME}"
    )


@contextlib.contextmanager
def autoscaling_environment(
    prefix: str, log_dir: Path, url: str = URL
) -> Iterator[tuple[Cluster, str, OperatorProcess, list[str]]]:
    """A control plane with the CRD, a new ``{prefix}-*`` namespace holding the broker
    Secret (``url``), and the operator (autoscaler loaded) watching it.

    Yields the cluster, the namespace, the operator and a list the caller appends its pool
    queues to; on exit the operator stops and those queues and the namespace are deleted.
    """
    with control_plane() as cluster:
        install_crd(cluster)
        namespace = cluster.create_namespace(f"{prefix}-{uuid.uuid4().hex[:6]}")
        put_secret(cluster, namespace, url)
        operator = OperatorProcess(
            cluster.kubeconfig, log_dir / "operator.log", namespaces=f"{prefix}-*"
        )
        operator.start()
        queues: list[str] = []
        try:
            yield cluster, namespace, operator, queues
        finally:
            operator.stop()
            for queue in queues:
                with contextlib.suppress(Exception):
                    jobs.delete(url, queue)
            with contextlib.suppress(Exception):
                cluster.api.delete(f"/api/v1/namespaces/{namespace}")


def pool_manifest(name: str, provider: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "controlplane.itlusions.com/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": name},
            "spec": {
                "rabbitmq": {"secretRef": {"name": "rabbitmq"}},
                "maxConcurrentJobs": 4,
                "replicaCount": 0,
                "providers": [provider],
                "autoscaling": {"enabled": True},  # every other knob at its default
            },
        }
    )


def replicas(cluster: Cluster, namespace: str, name: str) -> int | None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    found = cluster.api.get_or_none(path)
    return None if found is None else int(found["spec"].get("replicas", 0))


def wait(probe, timeout: float, interval: float = 0.02) -> float:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if probe():
                return time.monotonic()
        time.sleep(interval)
    raise TimeoutError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with (
        tempfile.TemporaryDirectory() as tmp,
        autoscaling_environment("wpa-bench", Path(tmp)) as (cluster, namespace, _, queues),
    ):
        pools = []
        for index in range(args.trials):
            name, provider = f"pool-{index}", f"ITL.Bench{uuid.uuid4().hex[:8]}"
            queue = jobs.pool_queue(namespace, name)
            jobs.declare(URL, queue, provider)
            queues.append(queue)
            cluster.kubectl(
                "-n", namespace, "apply", "-f", "-", input=pool_manifest(name, provider)
            )
            pools.append((name, queue))
        for name, _ in pools:
            wait(lambda name=name: replicas(cluster, namespace, name) == 0, timeout=120)
        time.sleep(6)  # every pool has polled at least once: steady state

        reactions = []
        for name, queue in pools:
            time.sleep(rng.uniform(0, DEFAULT_POLL_SECONDS))
            started = time.monotonic()
            jobs.publish(URL, queue, [60.0] * 16)
            try:
                reached = wait(lambda name=name: replicas(cluster, namespace, name) == 4, 30)
            except TimeoutError:
                status = cluster.kubectl(
                    "-n", namespace, "get", "wp", name, "-o", "jsonpath={.status}"
                )
                print(f"{name}: no 4 replicas within 30 s; status: {status.stdout}")
                print(Path(tmp, "operator.log").read_text()[-3000:])
                raise
            reactions.append(reached - started)
            print(f"{name}: {reactions[-1]:.2f} s", flush=True)

    ordered = sorted(reactions)
    keda_first = 30 / 2
    keda_n = 30 / 2 + 15 / 2
    report = {
        "trials": len(reactions),
        "poll_interval_seconds": DEFAULT_POLL_SECONDS,
        "ours_seconds": {
            "mean": round(statistics.mean(reactions), 2),
            "p50": round(statistics.median(reactions), 2),
            "p90": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 2),
            "max": round(ordered[-1], 2),
        },
        "keda_documented_defaults_seconds": {
            "first_replica_mean": keda_first,
            "first_replica_worst": 30.0,
            "n_replicas_mean": keda_n,
            "n_replicas_worst": 45.0,
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
