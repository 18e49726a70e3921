"""Reconcile against an in-memory API: create, idempotence, drift, failures and events."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.operator.wp_factories import pool_body
from tests.unit.operator.wp_fake_kube import FakeKube
from workerpool_operator.kube import KubeError, Unavailable
from workerpool_operator.metrics import OperatorMetrics
from workerpool_operator.reconcile import needs_reconcile, reconcile
from workerpool_operator.runtime import Runtime
from workerpool_operator.settings import OperatorSettings

IMAGE = "worker:test"
NS = "team-a"


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.secrets[(NS, "rabbitmq")] = {"url"}
    return fake


@pytest.fixture
def events() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def runtime(kube: FakeKube, events: list[tuple[str, str, str]]) -> Runtime:
    def post(body: Any, type_: str, reason: str, message: str) -> None:
        events.append((type_, reason, message))

    return Runtime(
        settings=OperatorSettings(default_worker_image=IMAGE, metrics_port=0, resync_seconds=0),
        kube=kube,
        metrics=OperatorMetrics(CollectorRegistry()),
        post_event=post,
    )


def _with_status(body: dict[str, Any], kube: FakeKube) -> dict[str, Any]:
    """The pool as the next event would show it (status written by the last reconcile)."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    return {**body, "status": kube.statuses.get(key, {})}


async def test_first_reconcile_creates_every_child_and_writes_status(kube: FakeKube) -> None:
    outcome = await reconcile(pool_body(), kube=kube, default_image=IMAGE)
    assert outcome.created == ("PodDisruptionBudget", "Deployment")
    assert outcome.failure is None
    assert kube.kinds() == ["Deployment", "PodDisruptionBudget"]
    status = kube.statuses[(NS, "workers")]
    assert status["desiredReplicas"] == 1
    assert {c["type"] for c in status["conditions"]} == {"Ready", "Progressing", "Degraded"}


async def test_second_reconcile_writes_nothing(kube: FakeKube) -> None:
    body = pool_body()
    await reconcile(body, kube=kube, default_image=IMAGE)
    applies, status_applies = len(kube.applies), kube.status_applies
    outcome = await reconcile(_with_status(body, kube), kube=kube, default_image=IMAGE)
    assert (outcome.created, outcome.updated) == ((), ())
    assert len(kube.applies) == applies
    assert kube.status_applies == status_applies


async def test_spec_change_updates_only_the_deployment(kube: FakeKube) -> None:
    await reconcile(pool_body(), kube=kube, default_image=IMAGE)
    changed = _with_status(pool_body(generation=2, image="worker:v2", maxConcurrentJobs=3), kube)
    outcome = await reconcile(changed, kube=kube, default_image=IMAGE)
    assert outcome.updated == ("Deployment",)
    container = kube.deployment(NS, "workers")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "worker:v2"


async def test_hand_edit_of_the_deployment_is_detected_as_drift(kube: FakeKube) -> None:
    body = pool_body()
    await reconcile(body, kube=kube, default_image=IMAGE)
    live = kube.deployment(NS, "workers")
    assert not needs_reconcile(body, live, default_image=IMAGE)
    live["spec"]["replicas"] = 5
    assert needs_reconcile(body, live, default_image=IMAGE)
    assert needs_reconcile(body, None, default_image=IMAGE)


async def test_missing_secret_degrades_without_touching_children(kube: FakeKube) -> None:
    kube.secrets.clear()
    outcome = await reconcile(pool_body(), kube=kube, default_image=IMAGE)
    assert outcome.failure is not None
    assert outcome.failure.reason == "SecretNotFound"
    assert "spec.rabbitmq.secretRef.name" in outcome.failure.message
    assert outcome.failure_is_new
    assert kube.applies == []
    degraded = next(
        c for c in kube.statuses[(NS, "workers")]["conditions"] if c["type"] == "Degraded"
    )
    assert (degraded["status"], degraded["reason"]) == ("True", "SecretNotFound")


async def test_missing_secret_key_is_its_own_reason(kube: FakeKube) -> None:
    kube.secrets[(NS, "rabbitmq")] = {"password"}
    outcome = await reconcile(pool_body(), kube=kube, default_image=IMAGE)
    assert outcome.failure is not None
    assert outcome.failure.reason == "SecretKeyNotFound"


async def test_apply_refused_by_the_server_is_apply_failed(kube: FakeKube) -> None:
    kube.fail_apply = KubeError(422, "Invalid", "spec.template: bad quantity")
    outcome = await reconcile(pool_body(), kube=kube, default_image=IMAGE)
    assert outcome.failure is not None
    assert outcome.failure.reason == "ApplyFailed"
    assert "bad quantity" in outcome.failure.message
    kube.fail_apply = Unavailable(503, "ServiceUnavailable", "etcd")
    outcome = await reconcile(pool_body(), kube=kube, default_image=IMAGE)
    assert outcome.failure is not None
    assert outcome.failure.reason == "APIUnavailable"


async def test_invalid_spec_is_a_permanent_failure(kube: FakeKube) -> None:
    body = pool_body(maxConcurrentJobs=0)
    outcome = await reconcile(body, kube=kube, default_image=IMAGE)
    assert outcome.failure is not None
    assert outcome.failure.permanent
    assert outcome.failure.reason == "InvalidSpec"
    assert "maxConcurrentJobs" in outcome.failure.message


async def test_runtime_posts_one_warning_per_failure_and_one_recovery(
    runtime: Runtime, kube: FakeKube, events: list[tuple[str, str, str]]
) -> None:
    kube.secrets.clear()
    body = pool_body()
    await runtime.reconcile(body)
    await runtime.reconcile(_with_status(body, kube))
    await runtime.reconcile(_with_status(body, kube))
    assert [e[:2] for e in events] == [("Warning", "SecretNotFound")]
    kube.secrets[(NS, "rabbitmq")] = {"url"}
    await runtime.reconcile(_with_status(body, kube))
    assert [e[1] for e in events] == ["SecretNotFound", "Created", "Recovered"]


async def test_runtime_repairs_a_deleted_deployment(
    runtime: Runtime, kube: FakeKube, events: list[tuple[str, str, str]]
) -> None:
    body = pool_body()
    runtime.track(None, body)
    await runtime.reconcile(body)
    deployment = kube.objects.pop(("apps/v1", "Deployment", NS, "workers"))
    runtime.track("MODIFIED", _with_status(body, kube))
    await runtime.on_deployment("DELETED", deployment)
    assert ("apps/v1", "Deployment", NS, "workers") in kube.objects
    assert events[-1][1] == "DriftRepaired"


async def test_runtime_refreshes_status_from_deployment_events(
    runtime: Runtime, kube: FakeKube
) -> None:
    body = pool_body(replicaCount=2)
    runtime.track(None, body)
    await runtime.reconcile(body)
    runtime.track("MODIFIED", _with_status(body, kube))
    live = kube.deployment(NS, "workers")
    live["metadata"]["generation"] = 1
    live["status"] = {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
    }
    applies = len(kube.applies)
    await runtime.on_deployment("MODIFIED", live)
    assert len(kube.applies) == applies  # no drift: status only
    status = kube.statuses[(NS, "workers")]
    assert status["readyReplicas"] == 2
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


async def test_runtime_ignores_deployments_of_unknown_or_deleted_pools(
    runtime: Runtime, kube: FakeKube
) -> None:
    deployment = {"metadata": {"namespace": NS, "name": "x", "labels": {}}}
    await runtime.on_deployment("MODIFIED", deployment)
    body = pool_body()
    runtime.track(None, body)
    runtime.track("DELETED", body)
    assert len(runtime.pools) == 0
    await runtime.on_deployment("DELETED", kube_deployment_for("workers"))
    assert kube.applies == []


def kube_deployment_for(pool_name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NS,
            "name": pool_name,
            "labels": {"controlplane.itlusions.com/workerpool": pool_name},
        }
    }


async def test_stale_pool_events_do_not_bring_back_a_cleared_failure(
    runtime: Runtime, kube: FakeKube
) -> None:
    kube.secrets.clear()
    body = pool_body()
    runtime.track(None, body)
    await runtime.reconcile(body)
    failed = _with_status(body, kube)
    kube.secrets[(NS, "rabbitmq")] = {"url"}
    await runtime.reconcile(failed)
    # A watch event from before the recovery arrives late, then the Deployment changes.
    runtime.track(
        "MODIFIED", {**failed, "metadata": {**failed["metadata"], "resourceVersion": "2"}}
    )
    live = kube.deployment(NS, "workers")
    live["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}
    await runtime.on_deployment("MODIFIED", live)
    degraded = next(
        c for c in kube.statuses[(NS, "workers")]["conditions"] if c["type"] == "Degraded"
    )
    assert degraded["status"] == "False"


async def test_replica_only_changes_post_a_scaled_event_unless_autoscaled(
    runtime: Runtime, kube: FakeKube, events: list[tuple[str, str, str]]
) -> None:
    body = pool_body(replicaCount=1)
    runtime.track(None, body)
    await runtime.reconcile(body)
    scaled = _with_status(pool_body(replicaCount=3, generation=2), kube)
    outcome = await runtime.reconcile(scaled)
    assert outcome.scaled == (1, 3)
    assert events[-1][1:] == ("Scaled", "Scaled 'workers' from 1 to 3")
    autoscaled = _with_status(
        pool_body(replicaCount=4, generation=3, autoscaling={"enabled": True}), kube
    )
    count = len(events)
    outcome = await runtime.reconcile(autoscaled)
    assert outcome.scaled == (3, 4)
    assert len(events) == count, "the autoscaler posts its own scale events"


async def test_a_reconcile_never_applies_an_older_version_than_the_cache_holds(
    runtime: Runtime, kube: FakeKube
) -> None:
    older = pool_body(replicaCount=1)
    runtime.track(None, older)
    await runtime.reconcile(older)
    # The autoscaler lowered the replicas; the watch has delivered that version, while a
    # reconcile of the older one (queued behind the pool's lock) runs only now.
    newer = pool_body(replicaCount=0, generation=2)
    newer["metadata"]["resourceVersion"] = "7"
    runtime.track("MODIFIED", newer)
    await runtime.reconcile(older)
    assert kube.deployment(NS, "workers")["spec"]["replicas"] == 0
