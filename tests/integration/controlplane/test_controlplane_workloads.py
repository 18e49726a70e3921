"""Controllers really run: Deployment -> ReplicaSet -> Pods on the kwok node, scaling, GC, and the
pod-deletion-cost annotation the operator's drain-aware scale-down relies on.
"""

from __future__ import annotations

import pytest

from localcluster import wait_until
from localcluster.workloads import Workloads

pytestmark = pytest.mark.integration

TIMEOUT = 90.0
COST = "controller.kubernetes.io/pod-deletion-cost"


def test_deployment_gets_replicaset_and_ready_pods_then_scales_and_is_collected(
    workloads: Workloads,
) -> None:
    workloads.create_deployment("web", replicas=2)

    rs = wait_until(lambda: workloads.replicasets("web"), timeout=TIMEOUT, what="a ReplicaSet")
    assert len(rs) == 1
    assert rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"

    ready = wait_until(
        lambda: workloads.ready_pods("web", 2), timeout=TIMEOUT, what="2 Running+Ready pods"
    )
    for pod in ready:
        assert pod["spec"]["nodeName"], "pod was not scheduled"
        assert pod["status"].get("podIP"), "kwok assigns pod IPs"
        assert pod["metadata"]["ownerReferences"][0]["name"] == rs[0]["metadata"]["name"]

    workloads.scale("web", 0)
    wait_until(
        lambda: not workloads.all_pods("web"),
        timeout=TIMEOUT,
        what="all pods deleted after scale 0",
    )

    workloads.cluster.kubectl("-n", workloads.namespace, "delete", "deployment", "web")
    wait_until(
        lambda: not workloads.replicasets("web"),
        timeout=TIMEOUT,
        what="the ReplicaSet garbage-collected after the Deployment was deleted",
    )


def test_pod_deletion_cost_decides_which_pod_goes_on_scale_down(workloads: Workloads) -> None:
    workloads.create_deployment("costly", replicas=3)
    pods = wait_until(
        lambda: workloads.ready_pods("costly", 3), timeout=TIMEOUT, what="3 Ready pods"
    )
    # Three distinct costs: a lucky default ordering matches only 1 time in 6.
    names = sorted(p["metadata"]["name"] for p in pods)
    costs = dict(zip(names, (10, -5, 20), strict=True))
    for name, cost in costs.items():
        workloads.cluster.api.patch(
            f"/api/v1/namespaces/{workloads.namespace}/pods/{name}",
            {"metadata": {"annotations": {COST: str(cost)}}},
        )

    expected_survivors: list[set[str]] = [set(names) - {names[1]}, {names[2]}]
    for replicas, survivors in zip((2, 1), expected_survivors, strict=True):
        workloads.scale("costly", replicas)
        live = wait_until(
            lambda r=replicas: workloads.ready_pods("costly", r),  # type: ignore[misc]
            timeout=TIMEOUT,
            what=f"{replicas} pods left",
        )
        assert {p["metadata"]["name"] for p in live} == survivors, (
            f"scale to {replicas} removed the wrong pod; costs were {costs}"
        )
