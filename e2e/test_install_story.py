"""The whole install story on a real cluster, as a user lives it.

helm install the chart from this repository -> the operator runs with the chart's
ServiceAccount -> kubectl apply a WorkerPool (autoscaled, 0..3 replicas) -> a burst of jobs
through the SDK's JobQueue -> the pool scales up -> every job completes -> the queue drains
-> the pool scales back to zero without stopping a busy worker -> deleting the pool removes
its children -> helm uninstall leaves nothing of the release behind (the CRD stays).

Runs on the local control plane (workloads as local processes) and, unchanged, on kind
(``e2e/kind.sh``); ``e2e/conftest.py`` says how the two differ.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.conftest import E2ESettings
from itl_controlplane_sdk.workers import JobStatus
from itl_harness import stack
from itl_harness.story import Story
from localcluster import Cluster, wait_until
from workerpool_operator import api

pytestmark = pytest.mark.e2e

JOBS = 24
JOB_SECONDS = 1.5
MAX_REPLICAS = 3


@pytest.fixture
def story(
    k8s_cluster: Cluster,
    helm_ready: None,
    rabbitmq_url: str,
    e2e_settings: E2ESettings,
    tmp_path: Path,
) -> Iterator[Story]:
    run = Story(
        cluster=k8s_cluster,
        rabbitmq_url=rabbitmq_url,
        pool_rabbitmq_url=e2e_settings.pool_rabbitmq_url,
        work_dir=tmp_path,
        local=e2e_settings.local,
        image_tag=e2e_settings.image_tag,
        pool_name="e2e-workers",
    )
    run.create_namespaces("e2e-")
    try:
        yield run
    finally:
        run.close()
        print(f"e2e logs: {tmp_path}")


def test_install_scale_drain_uninstall(story: Story, k8s_cluster: Cluster) -> None:
    # 1. Install: the chart's objects are admitted in a namespace enforcing restricted PSS.
    notes = story.install()
    assert "kubectl get workerpools" in notes, "NOTES.txt must tell the user what to do next"
    assert story.release is not None
    assert story.release.status()["info"]["status"] == "deployed"
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{api.CRD_NAME}"
    wait_until(
        lambda: any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (k8s_cluster.api.get(crd_path).get("status") or {}).get("conditions", [])
        ),
        timeout=60,
        what="the chart's CRD Established",
    )

    # 2. The operator runs with the chart's ServiceAccount (never admin).
    story.start_operator()

    # 3. A pool, created with kubectl apply; at zero replicas it is Ready (ScaledToZero).
    # Its first pod must be gone too: one still terminating would take jobs of the burst
    # before its SIGTERM arrives (it finishes them, but the check in step 7 counts it busy).
    story.create_pool()
    story.start_workers()
    story.sample()

    def ready_at_zero() -> bool:
        shot = story.snapshot()
        return (
            shot.replicas == 0
            and shot.ready_condition.startswith("Ready=True")
            and not story.pods()
            and (story.workers is None or not story.workers.running())
        )

    story.wait(ready_at_zero, timeout=90, what="the pool Ready at 0 replicas")

    # 4. A burst through the SDK: the autoscaler sees the queue and scales up.
    burst_at = time.monotonic()
    job_ids = story.submit(JOBS, JOB_SECONDS)
    story.wait(
        lambda: (story.deployment_replicas() or 0) >= 2,
        timeout=90,
        what=f"scale-up after a burst of {JOBS} jobs",
    )
    scale_up_seconds = stack.elapsed(burst_at)

    # 5. Every job completes (workers are the pool's pods).
    results = story.results(job_ids, timeout=240)
    missing = [job for job, result in results.items() if result is None]
    assert not missing, f"{len(missing)} jobs without a result; {story.log_tails()}"
    failed = {job: r.error for job, r in results.items() if r and r.status != JobStatus.COMPLETED}
    assert not failed, failed
    assert MAX_REPLICAS >= story.max_replicas_seen() >= 2

    # 6. Drained: nothing waiting, nothing running, as the pool's status reports it.
    def drained() -> bool:
        shot = story.snapshot()
        return shot.queue == 0 and shot.in_flight == 0

    story.wait(drained, timeout=60, what="queue and in-flight at 0 in the pool's status")

    # 7. Scale-down to zero after the cooldown, never stopping a busy worker.
    story.wait(lambda: story.deployment_replicas() == 0, timeout=120, what="scale-down to 0")
    if story.workers is not None:
        assert story.workers.busy_at_stop == {}, "a worker was stopped with jobs in flight"
        assert not story.workers.errors, story.workers.errors
    decisions = (story.pool().get("status") or {}).get("decisions") or []
    assert decisions, "the autoscaler's decisions must be visible in status"

    # 8. Deleting the pool removes its children; uninstalling leaves no release objects.
    story.delete_pool()
    story.stop_processes()
    story.release.uninstall()
    leftovers = story.release.leftovers([story.pool_namespace])
    assert leftovers == [], f"helm uninstall left {leftovers}"
    assert k8s_cluster.api.get_or_none(crd_path) is not None, "the CRD must survive uninstall"
    print(
        f"scale-up {scale_up_seconds}s after the burst; max replicas {story.max_replicas_seen()}; "
        f"{len(job_ids)} jobs completed"
    )
