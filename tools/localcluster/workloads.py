"""Deployment / ReplicaSet / Pod helpers for tests against a control plane with kwok.

Why in the harness package: the control-plane tests and the operator's integration tests both need
to create Deployments, read their pods and wait for kwok to report them Running/Ready, with the
same deadline-polling discipline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .cluster import Cluster

FAKE_IMAGE = "itl-fake-worker:1"  # kwok never pulls images; any reference will do


def running_and_ready(pod: dict[str, Any]) -> bool:
    """Phase Running and condition Ready=True, as kwok's pod-ready stage reports them."""
    status = pod.get("status", {})
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    return status.get("phase") == "Running" and ready


@dataclass
class Workloads:
    """Deployment/ReplicaSet/Pod helpers bound to one cluster and namespace."""

    cluster: Cluster
    namespace: str

    @staticmethod
    def running_and_ready(pod: dict[str, Any]) -> bool:
        return running_and_ready(pod)

    def create_deployment(self, name: str, replicas: int) -> dict[str, Any]:
        """Create a minimal Deployment whose pods are labelled ``app=<name>``."""
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "worker", "image": FAKE_IMAGE}]},
                },
            },
        }
        result: dict[str, Any] = self.cluster.api.post(
            f"/apis/apps/v1/namespaces/{self.namespace}/deployments", body
        )
        return result

    def all_pods(self, app: str) -> list[dict[str, Any]]:
        """Pods labelled ``app=<app>``, including terminating ones."""
        result: list[dict[str, Any]] = self.cluster.api.get(
            f"/api/v1/namespaces/{self.namespace}/pods", labelSelector=f"app={app}"
        )["items"]
        return result

    def pods(self, app: str) -> list[dict[str, Any]]:
        """Pods labelled ``app=<app>`` that are not being deleted."""
        return [p for p in self.all_pods(app) if not p["metadata"].get("deletionTimestamp")]

    def ready_pods(self, app: str, count: int) -> list[dict[str, Any]] | None:
        """Exactly *count* live pods, all Running and Ready (else None: a wait probe)."""
        live = self.pods(app)
        if len(live) == count and all(running_and_ready(p) for p in live):
            return live
        return None

    def replicasets(self, app: str) -> list[dict[str, Any]]:
        """ReplicaSets labelled ``app=<app>``."""
        result: list[dict[str, Any]] = self.cluster.api.get(
            f"/apis/apps/v1/namespaces/{self.namespace}/replicasets", labelSelector=f"app={app}"
        )["items"]
        return result

    def scale(self, name: str, replicas: int) -> None:
        """``kubectl scale`` (the scale subresource, as an autoscaler would use it)."""
        self.cluster.kubectl(
            "-n", self.namespace, "scale", f"deployment/{name}", f"--replicas={replicas}"
        )
