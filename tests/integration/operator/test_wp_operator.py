"""The operator on the real control plane: what docs/workerpool.md promises, observed end to end.

Every test runs in a namespace enforcing the ``restricted`` Pod Security Standard; pods only
exist there if PSS admitted them. Waits poll with deadlines; nothing sleeps and hopes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from itl_harness.operator_process import REPO, OperatorProcess, sample_metric
from itl_harness.stack import LOCAL_BROKER_URL, put_secret, wait_gone
from localcluster import Cluster, wait_until
from localcluster.workloads import running_and_ready

pytestmark = pytest.mark.integration

TIMEOUT = 90.0
SAMPLE = REPO / "manifests" / "samples" / "workerpool.yaml"
SAMPLE_NAME = "provider-workers"
WP = "/apis/controlplane.itlusions.com/v1alpha1/namespaces/{ns}/workerpools/{name}"
DEPLOY = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"
SERVICE = "/api/v1/namespaces/{ns}/services/{name}"
PDB = "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}"


# -- helpers -------------------------------------------------------------------------------


def _get(cluster: Cluster, template: str, ns: str, name: str) -> Any:
    return cluster.api.get_or_none(template.format(ns=ns, name=name))


def _apply(cluster: Cluster, ns: str, manifest: dict[str, Any] | str, check: bool = True) -> Any:
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
    return cluster.kubectl("-n", ns, "apply", "-f", "-", input=text, check=check)


def _pool(name: str, **spec: Any) -> dict[str, Any]:
    full: dict[str, Any] = {"rabbitmq": {"secretRef": {"name": "rabbitmq"}}}
    full.update(spec)
    return {
        "apiVersion": "controlplane.itlusions.com/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": full,
    }


def _condition(pool: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for condition in ((pool or {}).get("status") or {}).get("conditions") or []:
        if condition["type"] == type_:
            return dict(condition)
    return None


def _pods(cluster: Cluster, ns: str, pool: str) -> list[dict[str, Any]]:
    selector = f"controlplane.itlusions.com/workerpool={pool}"
    items = cluster.api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _ready_pool(cluster: Cluster, ns: str, name: str, replicas: int) -> dict[str, Any]:
    """Wait until the pool reports ``replicas`` ready workers and Ready=True."""

    def probe() -> dict[str, Any] | None:
        pool = _get(cluster, WP, ns, name)
        ready = _condition(pool, "Ready")
        status = (pool or {}).get("status") or {}
        if (
            ready
            and ready["status"] == "True"
            and status.get("readyReplicas") == replicas
            and status.get("observedGeneration") == pool["metadata"]["generation"]
        ):
            return dict(pool)
        return None

    return wait_until(probe, timeout=TIMEOUT, what=f"WorkerPool {name} Ready with {replicas}")


def _events(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    items = cluster.api.get(
        f"/api/v1/namespaces/{ns}/events",
        fieldSelector=f"involvedObject.kind=WorkerPool,involvedObject.name={name}",
    )["items"]
    return list(items)


def _env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {var["name"]: var for var in container["env"]}


# -- the sample, children, columns, PSS ----------------------------------------------------


def test_sample_pool_gets_its_children_and_ready_pods_under_restricted_pss(
    k8s_cluster: Cluster, wp_namespace: str
) -> None:
    ns = wp_namespace
    started = time.monotonic()
    k8s_cluster.kubectl("-n", ns, "apply", "-f", str(SAMPLE))

    deployment = wait_until(
        lambda: _get(k8s_cluster, DEPLOY, ns, SAMPLE_NAME), timeout=TIMEOUT, what="Deployment"
    )
    created_after = time.monotonic() - started
    pool = _get(k8s_cluster, WP, ns, SAMPLE_NAME)
    owner = {
        "apiVersion": "controlplane.itlusions.com/v1alpha1",
        "kind": "WorkerPool",
        "name": SAMPLE_NAME,
        "uid": pool["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert deployment["metadata"]["ownerReferences"] == [owner]
    assert deployment["spec"]["replicas"] == 2
    env = _env(deployment)
    assert env["WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["RABBITMQ_URL"]["valueFrom"]["secretKeyRef"] == {"name": "rabbitmq", "key": "url"}
    assert env["MAX_CONCURRENT_JOBS"]["value"] == "4"
    assert env["JOB_TIMEOUT"]["value"] == "300"
    assert env["WORKER_POOL"]["value"] == f"{ns}/{SAMPLE_NAME}"  # heartbeats keep namespaces apart
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["terminationGracePeriodSeconds"] == 330
    assert pod_spec["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/health"
    assert pod_spec["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"
    managers = {m["manager"] for m in deployment["metadata"]["managedFields"]}
    assert "workerpool-operator" in managers

    pdb = wait_until(lambda: _get(k8s_cluster, PDB, ns, SAMPLE_NAME), timeout=TIMEOUT, what=PDB)
    assert pdb["metadata"]["ownerReferences"] == [owner]
    # No Service: workers take no traffic; a PodMonitor scrapes the pods themselves.
    assert _get(k8s_cluster, SERVICE, ns, SAMPLE_NAME) is None

    pool = _ready_pool(k8s_cluster, ns, SAMPLE_NAME, 2)
    pods = _pods(k8s_cluster, ns, SAMPLE_NAME)
    assert len(pods) == 2 and all(running_and_ready(p) for p in pods)
    assert all(p["metadata"]["labels"]["team"] == "platform" for p in pods)
    assert pool["status"]["selector"] == (
        f"app.kubernetes.io/name=itl-worker,controlplane.itlusions.com/workerpool={SAMPLE_NAME}"
    )
    created = [e for e in _events(k8s_cluster, ns, SAMPLE_NAME) if e["reason"] == "Created"]
    assert created, "a Created event on the pool"

    table = k8s_cluster.kubectl("-n", ns, "get", "wp").stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "DESIRED",
        "READY",
        "QUEUE",
        "IN-FLIGHT",
        "MIN",
        "MAX",
        "AGE",
    ]
    assert table[1].split()[:3] == [SAMPLE_NAME, "2", "2"]
    wide = k8s_cluster.kubectl("-n", ns, "get", "workerpools", "-o", "wide").stdout
    assert "AllReplicasReady" in wide
    print(f"pool -> Deployment in {created_after:.2f}s")


def test_pods_violating_restricted_pss_would_be_rejected(
    k8s_cluster: Cluster, wp_namespace: str
) -> None:
    """The namespace really enforces restricted: a privileged pod is refused there."""
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]
        },
    }
    result = _apply(k8s_cluster, wp_namespace, bad, check=False)
    assert result.returncode != 0
    assert "restricted" in result.stderr


# -- updates, scale ------------------------------------------------------------------------


def test_spec_update_rolls_out_new_pods(k8s_cluster: Cluster, wp_namespace: str) -> None:
    ns, name = wp_namespace, "rolling"
    _apply(k8s_cluster, ns, _pool(name, replicaCount=2, image="worker:v1"))
    _ready_pool(k8s_cluster, ns, name, 2)
    old_pods = {p["metadata"]["name"] for p in _pods(k8s_cluster, ns, name)}

    k8s_cluster.kubectl(
        "-n", ns, "patch", "wp", name, "--type=merge",
        "-p", json.dumps({"spec": {"image": "worker:v2", "maxConcurrentJobs": 3}}),
    )  # fmt: skip

    def rolled() -> dict[str, Any] | None:
        deployment = _get(k8s_cluster, DEPLOY, ns, name)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        if (
            container["image"] == "worker:v2"
            and _env(deployment)["MAX_CONCURRENT_JOBS"]["value"] == "3"
        ):
            return dict(deployment)
        return None

    wait_until(rolled, timeout=TIMEOUT, what="the Deployment template updated")
    pool = _ready_pool(k8s_cluster, ns, name, 2)
    new_pods = _pods(k8s_cluster, ns, name)
    assert {p["metadata"]["name"] for p in new_pods}.isdisjoint(old_pods), "pods were replaced"
    assert all(p["spec"]["containers"][0]["image"] == "worker:v2" for p in new_pods)
    assert pool["status"]["observedGeneration"] == 2
    assert any(e["reason"] == "Updated" for e in _events(k8s_cluster, ns, name))


def test_kubectl_scale_drives_replicas_when_autoscaling_is_off(
    k8s_cluster: Cluster, wp_namespace: str
) -> None:
    ns, name = wp_namespace, "scalable"
    _apply(k8s_cluster, ns, _pool(name, replicaCount=1))
    _ready_pool(k8s_cluster, ns, name, 1)
    k8s_cluster.kubectl("-n", ns, "scale", f"wp/{name}", "--replicas=3")
    pool = _ready_pool(k8s_cluster, ns, name, 3)
    assert pool["spec"]["replicaCount"] == 3
    assert _get(k8s_cluster, DEPLOY, ns, name)["spec"]["replicas"] == 3
    scale = k8s_cluster.api.get(WP.format(ns=ns, name=name) + "/scale")
    assert scale["status"]["replicas"] == 3
    assert scale["status"]["selector"].endswith(f"workerpool={name}")
    scaled = [e for e in _events(k8s_cluster, ns, name) if e["reason"] == "Scaled"]
    assert [e["message"] for e in scaled] == [f"Scaled {name!r} from 1 to 3"]


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample", sorted((REPO / "manifests" / "samples").glob("*.yaml")), ids=lambda p: p.name
)
def test_samples_are_accepted_by_the_api_server(
    k8s_cluster: Cluster, workerpool_crd: Path, sample: Path
) -> None:
    k8s_cluster.kubectl("-n", "default", "apply", "--dry-run=server", "-f", str(sample))


INVALID = [
    (
        {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        "spec.autoscaling",
        "minReplicas must be less than or equal to maxReplicas",
    ),
    ({"maxConcurrentJobs": 0}, "spec.maxConcurrentJobs", "should be greater than or equal to 1"),
    ({"jobTimeout": 100000}, "spec.jobTimeout", "less than or equal to 86400"),
    ({"replicaCount": -1}, "spec.replicaCount", "greater than or equal to 0"),
    ({"env": [{"name": "RABBITMQ_URL", "value": "x"}]}, "spec.env", "operator manages"),
    ({"logLevel": "TRACE"}, "spec.logLevel", "Unsupported value"),
    ({"providers": ["ITL.X"], "queue": "provider.jobs"}, "spec", "needs its own queue"),
    ({"autoscaling": {"tolerance": 2}}, "spec.autoscaling.tolerance", "less than or equal to 1"),
]


@pytest.mark.parametrize(("spec", "field", "message"), INVALID, ids=[i[1] for i in INVALID])
def test_invalid_pools_are_rejected_naming_the_field(
    k8s_cluster: Cluster, workerpool_crd: Path, spec: dict[str, Any], field: str, message: str
) -> None:
    result = _apply(k8s_cluster, "default", _pool("invalid", **spec), check=False)
    assert result.returncode != 0, result.stdout
    assert field in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def test_pool_without_broker_reference_is_rejected(
    k8s_cluster: Cluster, workerpool_crd: Path
) -> None:
    body = _pool("nobroker")
    del body["spec"]["rabbitmq"]
    result = _apply(k8s_cluster, "default", body, check=False)
    assert result.returncode != 0
    assert "spec.rabbitmq: Required value" in result.stderr


# -- drift, failures, deletion -------------------------------------------------------------


def test_hand_edits_and_deletion_of_the_deployment_are_undone(
    k8s_cluster: Cluster, wp_namespace: str, operator: OperatorProcess
) -> None:
    ns, name = wp_namespace, "drifty"
    _apply(k8s_cluster, ns, _pool(name, replicaCount=2))
    _ready_pool(k8s_cluster, ns, name, 2)
    timings: dict[str, float] = {}

    started = time.monotonic()
    k8s_cluster.kubectl("-n", ns, "scale", f"deployment/{name}", "--replicas=5")
    wait_until(
        lambda: _get(k8s_cluster, DEPLOY, ns, name)["spec"]["replicas"] == 2,
        timeout=30,
        what="replicas restored to 2",
    )
    timings["scale"] = time.monotonic() - started

    started = time.monotonic()
    k8s_cluster.kubectl("-n", ns, "set", "env", f"deployment/{name}", "MAX_CONCURRENT_JOBS=99")
    wait_until(
        lambda: _env(_get(k8s_cluster, DEPLOY, ns, name))["MAX_CONCURRENT_JOBS"]["value"] == "10",
        timeout=30,
        what="env restored",
    )
    timings["env"] = time.monotonic() - started

    uid = _get(k8s_cluster, DEPLOY, ns, name)["metadata"]["uid"]
    started = time.monotonic()
    k8s_cluster.kubectl("-n", ns, "delete", "deployment", name, "--wait=false")
    wait_until(
        lambda: (
            (_get(k8s_cluster, DEPLOY, ns, name) or {}).get("metadata", {}).get("uid")
            not in (None, uid)
        ),
        timeout=30,
        what="the Deployment recreated",
    )
    timings["delete"] = time.monotonic() - started
    _ready_pool(k8s_cluster, ns, name, 2)
    assert any(e["reason"] == "DriftRepaired" for e in _events(k8s_cluster, ns, name))
    assert (
        sample_metric(
            operator.metrics(), "workerpool_operator_drift_repairs_total", 'kind="Deployment"'
        )
        >= 3
    )
    print("drift repaired in " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    assert max(timings.values()) < 10


def test_missing_secret_degrades_once_and_recovers(k8s_cluster: Cluster, wp_namespace: str) -> None:
    ns, name = wp_namespace, "nosecret"
    _apply(k8s_cluster, ns, _pool(name, rabbitmq={"secretRef": {"name": "later"}}))

    def degraded() -> dict[str, Any] | None:
        condition = _condition(_get(k8s_cluster, WP, ns, name), "Degraded")
        return condition if condition and condition["status"] == "True" else None

    condition = wait_until(degraded, timeout=TIMEOUT, what="Degraded=True")
    assert condition["reason"] == "SecretNotFound"
    assert "spec.rabbitmq.secretRef.name" in condition["message"]
    assert _get(k8s_cluster, DEPLOY, ns, name) is None
    # Retries back off (5 s, 10 s, ...) and post no further events for the same reason.
    time.sleep(12)
    warnings = [e for e in _events(k8s_cluster, ns, name) if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["SecretNotFound"]
    assert warnings[0].get("count", 1) == 1

    put_secret(k8s_cluster, ns, LOCAL_BROKER_URL, name="later")
    pool = _ready_pool(k8s_cluster, ns, name, 1)
    recovered = _condition(pool, "Degraded")
    assert recovered is not None
    assert (recovered["status"], recovered["reason"]) == ("False", "AsExpected")
    assert any(e["reason"] == "Recovered" for e in _events(k8s_cluster, ns, name))


def test_deleting_the_pool_deletes_its_children(k8s_cluster: Cluster, wp_namespace: str) -> None:
    ns, name = wp_namespace, "doomed"
    _apply(k8s_cluster, ns, _pool(name))
    _ready_pool(k8s_cluster, ns, name, 1)
    pool = _get(k8s_cluster, WP, ns, name)
    assert not pool["metadata"].get("finalizers"), "no finalizer: deletion never blocks"
    k8s_cluster.kubectl("-n", ns, "delete", "wp", name)
    for template in (DEPLOY, PDB):
        wait_gone(k8s_cluster, template.format(ns=ns, name=name), timeout=TIMEOUT, what=template)
    wait_until(lambda: not _pods(k8s_cluster, ns, name), timeout=TIMEOUT, what="pods gone")


# -- restarts ------------------------------------------------------------------------------


def test_operator_restart_neither_duplicates_nor_flaps(
    k8s_cluster: Cluster, wp_namespace: str, operator: OperatorProcess
) -> None:
    ns, name = wp_namespace, "steady"
    _apply(k8s_cluster, ns, _pool(name, replicaCount=2))
    before = _ready_pool(k8s_cluster, ns, name, 2)
    deployment = _get(k8s_cluster, DEPLOY, ns, name)
    replicasets = k8s_cluster.api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"]
    events_before = len(_events(k8s_cluster, ns, name))

    mark = operator.log_size()
    operator.restart()
    operator.wait_for_log("WorkerPool operator started", timeout=60, since=mark)
    # Give the resumed handlers and the Deployment watch time to run over the pool.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        pool = _get(k8s_cluster, WP, ns, name)
        ready = _condition(pool, "Ready")
        assert ready is not None and ready["status"] == "True", "Ready flapped on restart"
        time.sleep(0.5)

    after = _get(k8s_cluster, WP, ns, name)
    assert (
        _get(k8s_cluster, DEPLOY, ns, name)["metadata"]["generation"]
        == (deployment["metadata"]["generation"])
    )
    assert _get(k8s_cluster, DEPLOY, ns, name)["metadata"]["uid"] == deployment["metadata"]["uid"]
    now_rs = k8s_cluster.api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"]
    assert len(now_rs) == len(replicasets)
    assert len(_pods(k8s_cluster, ns, name)) == 2
    for type_ in ("Ready", "Progressing", "Degraded"):
        assert (
            _condition(after, type_)["lastTransitionTime"]
            == (  # type: ignore[index]
                _condition(before, type_)["lastTransitionTime"]  # type: ignore[index]
            )
        )
    assert len(_events(k8s_cluster, ns, name)) == events_before, "no new events"


def test_metrics_endpoint_reports_reconciles_and_pools(
    k8s_cluster: Cluster, wp_namespace: str, operator: OperatorProcess
) -> None:
    _apply(k8s_cluster, wp_namespace, _pool("measured"))
    _ready_pool(k8s_cluster, wp_namespace, "measured", 1)
    text = operator.metrics()
    assert sample_metric(text, "workerpool_operator_reconciles_total", 'result="success"') >= 1
    assert sample_metric(text, "workerpool_operator_pools") >= 1
    assert "workerpool_operator_reconcile_duration_seconds_bucket" in text
