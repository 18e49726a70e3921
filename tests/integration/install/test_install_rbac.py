"""The chart's RBAC is enough for the operator, and nothing more.

The chart is installed with Helm on the real control plane; the operator then runs with a
TokenRequest token of the chart's ServiceAccount (never as admin) and must reconcile a pool.
``kubectl auth can-i`` as the same identity shows what it cannot do: list, watch or write
Secrets (it only reads the one a pool references), or touch resources it does not manage.
Both RBAC shapes are covered: cluster-wide (the default) and one Role per watched namespace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from itl_harness import stack
from itl_harness.operator_process import OperatorProcess
from localcluster import ApiError, Cluster, KubeClient, wait_until
from workerpool_operator import api

pytestmark = pytest.mark.integration

POOLS = f"workerpools.{api.GROUP}"
NEEDED = [
    ("get", POOLS),
    ("list", POOLS),
    ("watch", POOLS),
    ("patch", POOLS),
    ("patch", f"{POOLS}/status"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("watch", "deployments.apps"),
    ("create", "poddisruptionbudgets.policy"),
    ("get", "secrets"),
    ("create", "events"),
]
"""What reconciling a pool takes (each is in operator/workerpool_operator/rbac.py with why)."""

SECRET_VERBS_DENIED = ["list", "watch", "create", "update", "patch", "delete", "deletecollection"]
UNMANAGED = [
    ("get", "configmaps"),
    ("create", "configmaps"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("delete", "deployments.apps"),
    ("update", "deployments.apps"),
    ("create", "services"),
    ("delete", "services"),
    ("create", "statefulsets.apps"),
    ("create", "jobs.batch"),
    ("create", "serviceaccounts"),
    ("create", "serviceaccounts/token"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", POOLS),
    ("delete", POOLS),
]
"""Things the operator has no business doing in a pool namespace."""

CLUSTER_DENIED = [
    ("list", "secrets"),
    ("create", "namespaces"),
    ("delete", "namespaces"),
    ("get", "nodes"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    ("impersonate", "users"),
]


@pytest.fixture
def release(k8s_cluster: Cluster, operator_namespace: str) -> Iterator[stack.Release]:
    installed = stack.Release(k8s_cluster, stack.unique_release(), operator_namespace)
    yield installed
    with contextlib.suppress(Exception):
        installed.uninstall()


def _pool(name: str) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {
            "replicaCount": 2,
            "maxConcurrentJobs": 2,
            "jobTimeout": 60,
            "rabbitmq": {"secretRef": {"name": "rabbitmq"}},
        },
    }


def _condition(pool: dict[str, Any], type_: str) -> dict[str, Any] | None:
    conditions = (pool.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), None)


def _allowed(
    cluster: Cluster, kubeconfig: Path, checks: list[tuple[str, str]], ns: str | None
) -> list[str]:
    """The checks ``kubectl auth can-i`` answers yes to (in ``ns``, or all namespaces)."""
    return [f"{v} {r}" for v, r in checks if stack.can_i(cluster, kubeconfig, v, r, ns)]


def _exists(cluster: Cluster, path: str) -> Callable[[], bool]:
    return lambda: cluster.api.get_or_none(path) is not None


def assert_least_privilege(
    cluster: Cluster, kubeconfig: Path, pool_namespace: str, *, cluster_wide: bool
) -> None:
    missing = [
        f"{v} {r}" for v, r in NEEDED if not stack.can_i(cluster, kubeconfig, v, r, pool_namespace)
    ]
    assert not missing, f"the chart's ServiceAccount lacks: {missing}"
    # The autoscaler's own Deployment write; without it every scale waits for a reconcile.
    assert stack.can_i(
        cluster, kubeconfig, "patch", "deployments.apps", pool_namespace, subresource="scale"
    ), "the chart's ServiceAccount cannot patch deployments/scale"
    assert not stack.can_i(
        cluster, kubeconfig, "patch", "deployments.apps", pool_namespace, subresource="status"
    ), "the operator may patch deployments/status"
    secrets = [(verb, "secrets") for verb in SECRET_VERBS_DENIED]
    allowed = _allowed(cluster, kubeconfig, secrets, pool_namespace)
    assert not allowed, f"the operator may {allowed} Secrets; it must only get them"
    allowed = _allowed(cluster, kubeconfig, UNMANAGED, pool_namespace)
    assert not allowed, f"the operator may touch unmanaged resources: {allowed}"
    allowed = _allowed(cluster, kubeconfig, CLUSTER_DENIED, None)
    assert not allowed, f"the operator has cluster-wide rights it does not need: {allowed}"
    # The same through the API, not only kubectl's reading of the rules.
    client = KubeClient.from_kubeconfig(kubeconfig)
    with pytest.raises(ApiError) as denied:
        client.get(f"/api/v1/namespaces/{pool_namespace}/secrets")
    assert denied.value.status == 403
    if not cluster_wide:
        elsewhere = _allowed(cluster, kubeconfig, NEEDED, "default")
        assert not elsewhere, f"a namespaced install grants rights outside it: {elsewhere}"


def reconcile_as_service_account(
    cluster: Cluster, release: stack.Release, pool_namespace: str, log: Path
) -> None:
    """Run the operator with the chart's token; it must create the children and report Ready."""
    operator = OperatorProcess(release.operator_kubeconfig(), log, namespaces=pool_namespace)
    operator.start()
    try:
        base = f"/apis/{api.API_VERSION}/namespaces/{pool_namespace}/{api.PLURAL}"
        cluster.api.post(base, _pool("rbac-proof"))
        apps = f"/apis/apps/v1/namespaces/{pool_namespace}"
        deployment = wait_until(
            lambda: cluster.api.get_or_none(f"{apps}/deployments/rbac-proof"),
            timeout=90,
            what="the pool's Deployment, created with the chart's ServiceAccount",
        )
        assert deployment["spec"]["replicas"] == 2
        pdb = f"/apis/policy/v1/namespaces/{pool_namespace}/poddisruptionbudgets/rbac-proof"
        wait_until(_exists(cluster, pdb), timeout=60, what=pdb)

        def ready() -> dict[str, Any] | None:
            pool: dict[str, Any] = cluster.api.get(f"{base}/rbac-proof")
            condition = _condition(pool, "Ready")
            return pool if condition and condition["status"] == "True" else None

        pool = wait_until(ready, timeout=120, what="pool Ready=True")
        degraded = _condition(pool, "Degraded")
        assert degraded is not None and degraded["status"] == "False", degraded
        events = cluster.api.get(
            f"/api/v1/namespaces/{pool_namespace}/events",
            fieldSelector="involvedObject.name=rbac-proof",
        )["items"]
        assert any(e["reason"] == "Created" for e in events), [e["reason"] for e in events]
        text = log.read_text(errors="replace")
        assert "403" not in text and "Forbidden" not in text, operator.log_tail()
    except BaseException:
        print(f"operator log tail:\n{operator.log_tail()}")  # shown with the failure
        raise
    finally:
        operator.stop()


def test_cluster_wide_install(
    k8s_cluster: Cluster, release: stack.Release, pool_namespace: str, tmp_path: Path
) -> None:
    release.install({})
    kinds = {d.split("/")[0] for d in release.leftovers([pool_namespace])}
    assert {"ClusterRole", "ClusterRoleBinding", "Deployment", "ServiceAccount"} <= kinds
    assert not {"Role", "RoleBinding"} & kinds
    kubeconfig = release.operator_kubeconfig()
    assert_least_privilege(k8s_cluster, kubeconfig, pool_namespace, cluster_wide=True)
    reconcile_as_service_account(k8s_cluster, release, pool_namespace, tmp_path / "op.log")


def test_namespaced_install(
    k8s_cluster: Cluster, release: stack.Release, pool_namespace: str, tmp_path: Path
) -> None:
    release.install({"watchNamespaces": [pool_namespace]})
    kinds = {d.split("/")[0] for d in release.leftovers([pool_namespace])}
    assert {"Role", "RoleBinding"} <= kinds
    assert not {"ClusterRole", "ClusterRoleBinding"} & kinds, "namespaced install went cluster-wide"
    kubeconfig = release.operator_kubeconfig()
    assert_least_privilege(k8s_cluster, kubeconfig, pool_namespace, cluster_wide=False)
    reconcile_as_service_account(k8s_cluster, release, pool_namespace, tmp_path / "op.log")


def test_uninstall_leaves_no_release_objects(
    k8s_cluster: Cluster, release: stack.Release, pool_namespace: str
) -> None:
    release.install({"watchNamespaces": [pool_namespace]})
    assert release.leftovers([pool_namespace])
    release.uninstall()
    assert release.leftovers([pool_namespace]) == []
    crd = k8s_cluster.api.get_or_none(
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{api.CRD_NAME}"
    )
    assert crd is not None, "helm uninstall must keep the CRD (and so every WorkerPool)"


def test_peering_install(
    k8s_cluster: Cluster, release: stack.Release, pool_namespace: str, tmp_path: Path
) -> None:
    """HA values: the chart creates the peering object and grants Kopf's peering rules."""
    peering_crds = stack.REPO / "manifests" / "kopf-peering"
    k8s_cluster.kubectl("apply", "--server-side", "-f", str(peering_crds))
    k8s_cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/kopfpeerings.kopf.dev", "crd/clusterkopfpeerings.kopf.dev",
    )  # fmt: skip
    release.install(
        {"watchNamespaces": [pool_namespace], "replicaCount": 2, "peering": {"enabled": True}}
    )
    peering = k8s_cluster.api.get_or_none(
        f"/apis/kopf.dev/v1/namespaces/{pool_namespace}/kopfpeerings/workerpool-operator"
    )
    assert peering is not None, "the chart must create the KopfPeering the replicas share"
    kubeconfig = release.operator_kubeconfig()
    assert stack.can_i(k8s_cluster, kubeconfig, "patch", "kopfpeerings.kopf.dev", pool_namespace)
    operator = OperatorProcess(
        kubeconfig,
        tmp_path / "op.log",
        namespaces=pool_namespace,
        env={"WORKERPOOL_OPERATOR_PEERING_NAME": "workerpool-operator",
             "WORKERPOOL_OPERATOR_PRIORITY": "100"},
    )  # fmt: skip
    operator.start()
    try:
        base = f"/apis/{api.API_VERSION}/namespaces/{pool_namespace}/{api.PLURAL}"
        k8s_cluster.api.post(base, _pool("peered"))
        wait_until(
            _exists(k8s_cluster, f"/apis/apps/v1/namespaces/{pool_namespace}/deployments/peered"),
            timeout=90,
            what="the Deployment from a peered operator (see the operator log)",
        )
        text = (tmp_path / "op.log").read_text(errors="replace")
        assert "403" not in text and "Forbidden" not in text, operator.log_tail()
    except BaseException:
        print(f"operator log tail:\n{operator.log_tail()}")  # shown with the failure
        raise
    finally:
        operator.stop()
