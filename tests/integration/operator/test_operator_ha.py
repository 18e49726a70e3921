"""Operator high availability: two operator processes sharing a Kopf peering object, as the
chart's HA mode runs them (``replicaCount: 2``, ``peering.enabled``, distinct priorities).

The active one is SIGKILLed in the middle of a burst: it leaves no clean goodbye, so its
peering keep-alive has to run out before the standby resumes. While no operator is active a
pool is created, another is changed, and jobs keep arriving. The standby must take over
within the peering lifetime, finish every reconcile the dead one never did, and never apply
again a scaling decision the dead one already applied.
"""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from itl_harness import jobs
from itl_harness.operator_process import REPO, OperatorProcess
from itl_harness.stack import put_secret
from localcluster import ApiError, Cluster, wait_until

# Two operators, a takeover and the work left over: 2-4 minutes at a load average of 60.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PEERING = "workerpool-operator"
LIFETIME = 30
"""Peering lifetime (seconds) of both replicas: how long a takeover may wait. Not shorter: on a
saturated API server a keep-alive can arrive 10-20 s late, and with a 10 s lifetime the
standby took that for a death and ran alongside the live replica (docs/operations.md)."""

WP = "/apis/controlplane.itlusions.com/v1alpha1/namespaces/{ns}/workerpools/{name}"
DEPLOY = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"


@pytest.fixture
def ha_namespace(k8s_cluster: Cluster, workerpool_crd: Path, rabbitmq_url: str) -> Iterator[str]:
    """A namespace with the broker Secret and the KopfPeering both replicas share."""
    peering_crds = REPO / "manifests" / "kopf-peering"
    k8s_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(peering_crds))
    k8s_cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev"
    )
    name = k8s_cluster.create_namespace(f"wph-{uuid.uuid4().hex[:8]}")
    put_secret(k8s_cluster, name, rabbitmq_url)
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    k8s_cluster.kubectl("-n", name, "apply", "-f", "-", input=yaml.safe_dump(peering))
    yield name
    with contextlib.suppress(ApiError):
        k8s_cluster.api.delete(f"/api/v1/namespaces/{name}")


def replica(cluster: Cluster, namespace: str, log: Path, priority: int) -> OperatorProcess:
    return OperatorProcess(
        cluster.kubeconfig,
        log,
        namespaces=namespace,
        env={
            "WORKERPOOL_OPERATOR_PEERING_NAME": PEERING,
            "WORKERPOOL_OPERATOR_PRIORITY": str(priority),
            "WORKERPOOL_OPERATOR_PEERING_LIFETIME": str(LIFETIME),
        },
    )


def resumed_at(log: bytes) -> float:
    """When (epoch seconds) the first "Resuming operations" line in ``log`` was written."""
    for line in log.decode(errors="replace").splitlines():
        if "Resuming operations" in line:
            stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()  # the operator logs local time, as time.time() counts
    raise AssertionError("no resume in the log")


def peers(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """The keep-alive records in the peering object, by replica identity."""
    path = f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings/{PEERING}"
    return dict(cluster.api.get(path).get("status") or {})


class Pools:
    """The test's pools: autoscaled ones, each on its own queue, and fixed-size ones."""

    def __init__(self, cluster: Cluster, namespace: str, url: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.url = url
        self.queues: dict[str, str] = {}

    def autoscaled(self, name: str) -> None:
        provider = f"ITL.HaTest{uuid.uuid4().hex[:8]}"
        self.queues[name] = jobs.pool_queue(self.namespace, name)
        jobs.declare(self.url, self.queues[name], provider)
        self._apply(
            name,
            {
                "maxConcurrentJobs": 5,
                "replicaCount": 0,
                "providers": [provider],
                "autoscaling": {
                    "enabled": True,
                    "minReplicas": 0,
                    "maxReplicas": 3,
                    "pollIntervalSeconds": 1,
                },
            },
        )

    def fixed(self, name: str, replicas: int) -> None:
        self._apply(name, {"replicaCount": replicas})

    def _apply(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "controlplane.itlusions.com/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": name},
            "spec": {"rabbitmq": {"secretRef": {"name": "rabbitmq"}}, **spec},
        }
        self.cluster.kubectl("-n", self.namespace, "apply", "-f", "-", input=yaml.safe_dump(body))

    def burst(self, name: str, count: int) -> None:
        jobs.publish(self.url, self.queues[name], [60.0] * count)

    def replicas(self, name: str) -> int | None:
        found = self.cluster.api.get_or_none(DEPLOY.format(ns=self.namespace, name=name))
        return None if found is None else int(found["spec"].get("replicas", 0))

    def wait_replicas(self, name: str, expected: int, timeout: float) -> None:
        wait_until(
            lambda: self.replicas(name) == expected,
            timeout=timeout,
            what=f"pool {name} at {expected} replicas (now {self.replicas(name)})",
        )

    def decisions(self, name: str) -> list[tuple[int, int]]:
        body = self.cluster.api.get(WP.format(ns=self.namespace, name=name))
        log = (body.get("status") or {}).get("decisions") or []
        return [(int(entry["from"]), int(entry["to"])) for entry in log]

    def scale_events(self, name: str) -> list[str]:
        items = self.cluster.api.get(
            f"/api/v1/namespaces/{self.namespace}/events",
            fieldSelector=f"involvedObject.name={name},involvedObject.kind=WorkerPool",
        )["items"]
        return [
            str(item["message"]).split(":", 1)[0]
            for item in items
            if item["reason"] in {"ScaledUp", "ScaledDown"}
            for _ in range(int(item.get("count") or 1))
        ]


def test_the_standby_takes_over_after_a_sigkill_of_the_active_operator(
    k8s_cluster: Cluster, ha_namespace: str, rabbitmq_url: str, tmp_path: Path
) -> None:
    active = replica(k8s_cluster, ha_namespace, tmp_path / "active.log", priority=200)
    standby = replica(k8s_cluster, ha_namespace, tmp_path / "standby.log", priority=100)
    pools = Pools(k8s_cluster, ha_namespace, rabbitmq_url)
    try:
        active.start()
        active.wait_for_log("Resuming operations", timeout=60)
        standby.start()
        # Kopf starts every replica paused and says nothing while it stays so: the standby is
        # in place once its keep-alive sits next to the active one's in the peering object.
        wait_until(
            lambda: len(peers(k8s_cluster, ha_namespace)) == 2,
            timeout=60,
            what="both replicas in the peering object",
        )
        assert "Resuming operations" not in standby.log_path.read_text(errors="replace")

        # The burst: the active replica scales the first pools, then dies with a pool mid-way.
        for name in ("burst-a", "burst-b", "burst-c", "burst-d"):
            pools.autoscaled(name)
        pools.fixed("fixed", 1)
        pools.burst("burst-a", 15)
        pools.burst("burst-b", 15)
        pools.wait_replicas("burst-a", 3, timeout=60)
        pools.wait_replicas("burst-b", 3, timeout=60)
        pools.wait_replicas("fixed", 1, timeout=60)
        pools.burst("burst-c", 15)
        assert active.process is not None
        active.process.send_signal(signal.SIGKILL)
        active.process.wait(10)
        killed, killed_wall = time.monotonic(), time.time()
        before_kill = standby.log_size()

        # Nobody is active: work arrives that only the standby can do.
        pools.burst("burst-d", 10)
        pools.fixed("fixed", 2)
        pools.fixed("late", 1)

        standby.wait_for_log("Resuming operations", timeout=LIFETIME + 60, since=before_kill)
        takeover = resumed_at(standby.log_path.read_bytes()[before_kill:]) - killed_wall
        pools.wait_replicas("late", 1, timeout=60)
        pools.wait_replicas("fixed", 2, timeout=60)
        pools.wait_replicas("burst-c", 3, timeout=60)
        pools.wait_replicas("burst-d", 2, timeout=60)
        done = time.monotonic() - killed
        print(f"takeover {takeover:.1f}s after SIGKILL, pending work done after {done:.1f}s")

        standby_log = standby.log_path.read_bytes()
        assert b"Resuming operations" not in standby_log[:before_kill], (
            "the standby ran while the active replica was alive"
        )
        assert takeover <= LIFETIME + 30, f"standby resumed {takeover:.1f}s after the SIGKILL"
        for name in ("burst-a", "burst-b", "burst-c", "burst-d"):
            decisions = pools.decisions(name)
            changes = [step for step in decisions if step[0] != step[1]]
            assert len(changes) == len(set(changes)), f"{name} scaled twice: {decisions}"
            events = pools.scale_events(name)
            assert len(events) == len(set(events)), f"{name} scaled twice: {events}"
            assert changes, f"{name} has no decision in its log"
            chain = [step[0] for step in changes[1:]] == [step[1] for step in changes[:-1]]
            assert chain, f"{name}: a decision did not start where the last one ended: {decisions}"
        assert pools.replicas("burst-a") == 3 and pools.replicas("burst-b") == 3
    finally:
        active.stop()
        standby.stop()
        for queue in pools.queues.values():
            with contextlib.suppress(Exception):
                jobs.delete(rabbitmq_url, queue)
