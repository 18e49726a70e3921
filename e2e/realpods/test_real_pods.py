"""What the operator promises to real pods, checked on a real kubelet (kind tier only).

* the worker image runs as uid 10001 on a read-only root filesystem and answers /health;
* the restricted Pod Security profile admits the operator and worker pods (and is enforced:
  a privileged pod is refused in the same namespace);
* /metrics is scraped from inside the cluster, from another pod, through the worker's pod IP;
* scaling a pool down while a long job runs: the draining worker's readiness turns false
  while the job goes on; the job finishes inside terminationGracePeriodSeconds and nothing
  is lost;
* a worker killed by the kernel for exceeding its memory limit (OOMKilled): the broker hands
  its unacknowledged job to another worker, which completes it; nothing is lost;
* the operator pod deleted in the middle of a burst: its replacement takes over, every job
  completes, the pool scales back to zero, and no scaling step is made twice.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest

from e2e.realpods.conftest import for_pool
from itl_controlplane_sdk.workers import JobStatus
from itl_harness import stack
from itl_harness.story import PROVIDER, Story, pool_body
from localcluster import ApiError, Cluster, wait_until
from workerpool_operator import api

pytestmark = pytest.mark.e2e

JOB_TIMEOUT = 40


def fixed_pool(name: str, replicas: int) -> dict[str, Any]:
    """A pool of ``replicas`` workers, one job at a time each (no autoscaling)."""
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {
            "replicaCount": replicas,
            "maxConcurrentJobs": 1,
            "jobTimeout": JOB_TIMEOUT,
            "rabbitmq": {"secretRef": {"name": "rabbitmq", "key": "url"}},
            "providers": [PROVIDER],
        },
    }


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def one_ready_pod(story: Story) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        running = [
            p for p in story.pods() if ready(p) and not p["metadata"].get("deletionTimestamp")
        ]
        return running[0] if len(running) == 1 else None

    pod: dict[str, Any] = wait_until(found, timeout=180, what=f"one Ready pod of {story.pool_name}")
    return pod


def exec_python(cluster: Cluster, namespace: str, target: str, code: str) -> str:
    done = cluster.kubectl("-n", namespace, "exec", target, "--", "python", "-c", code, timeout=60)
    return done.stdout.strip()


def test_worker_image_restricted_read_only_health_and_metrics(installed: Story) -> None:
    story = for_pool(installed, "real-health")
    story.create_pool(fixed_pool(story.pool_name, 1))
    pod = one_ready_pod(story)
    name, namespace = pod["metadata"]["name"], story.pool_namespace
    cluster = story.cluster

    # The restricted profile is enforced here, and admitted the worker and the operator pods.
    ns_labels = cluster.api.get(f"/api/v1/namespaces/{namespace}")["metadata"]["labels"]
    assert ns_labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged-probe"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": pod["spec"]["containers"][0]["image"],
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    with pytest.raises(ApiError) as refused:
        cluster.api.post(f"/api/v1/namespaces/{namespace}/pods", privileged)
    assert refused.value.status == 403 and "PodSecurity" in str(refused.value)
    operator_ns = installed.operator_namespace
    op_labels = cluster.api.get(f"/api/v1/namespaces/{operator_ns}")["metadata"]["labels"]
    assert op_labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    operator_pods = cluster.api.get(f"/api/v1/namespaces/{operator_ns}/pods")["items"]
    assert operator_pods and all(ready(p) for p in operator_pods), operator_pods

    # Non-root on a read-only root filesystem, as the image and the pod spec promise.
    probe = (
        "import os, json\n"
        "try:\n    open('/opt/venv/written', 'w'); writable = True\n"
        "except OSError as exc:\n    writable = exc.errno\n"
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'root_fs': writable}))"
    )
    seen = json.loads(exec_python(cluster, namespace, name, probe))
    assert seen == {"uid": 10001, "gid": 10001, "root_fs": 30}, seen  # 30: EROFS

    # /health through the API server's pod proxy (the kubelet's probes use the same port).
    health = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/{name}:8001/proxy/health")
    assert health["status"] == "healthy" and health["worker_id"] == name, health

    # /metrics scraped from another pod (the operator's), through the worker's pod IP.
    pod_ip = pod["status"]["podIP"]
    scrape = (
        "import urllib.request\n"
        f"print(urllib.request.urlopen('http://{pod_ip}:8001/metrics', timeout=10).read().decode())"
    )
    metrics = exec_python(cluster, operator_ns, operator_pods[0]["metadata"]["name"], scrape)
    assert f'worker_running{{worker_id="{name}"}} 1' in metrics, metrics[:2000]
    story.delete_pool()


def test_scale_down_with_a_long_job_drains_inside_the_grace_period(installed: Story) -> None:
    story = for_pool(installed, "real-drain")
    story.create_pool(fixed_pool(story.pool_name, 1))
    pod = one_ready_pod(story)
    name = pod["metadata"]["name"]
    grace = pod["spec"]["terminationGracePeriodSeconds"]

    job_seconds = 20.0
    [job_id] = story.submit(1, job_seconds)
    # The worker's own /status (a fixed-size pool has no autoscaler filling status.queue).
    status_path = f"/api/v1/namespaces/{story.pool_namespace}/pods/{name}:8001/proxy/status"
    wait_until(
        lambda: story.cluster.api.get(status_path).get("in_flight") == 1,
        timeout=60,
        what="the long job in flight on the worker",
    )
    path = (
        f"/apis/{api.API_VERSION}/namespaces/{story.pool_namespace}/{api.PLURAL}/{story.pool_name}"
    )
    scaled_at = time.monotonic()
    story.cluster.api.patch(path, {"spec": {"replicaCount": 0}})

    # Draining: the pod still runs its job, but is no longer Ready.
    def draining() -> bool:
        found = {p["metadata"]["name"]: p for p in story.pods()}
        return name in found and not ready(found[name])

    wait_until(draining, timeout=30, what=f"{name} not Ready while its job runs")
    assert time.monotonic() - scaled_at < job_seconds, "drain observed only after the job"

    [result] = story.results([job_id], timeout=grace).values()
    assert result is not None and result.status == JobStatus.COMPLETED, result
    stack.wait_gone(
        story.cluster,
        f"/api/v1/namespaces/{story.pool_namespace}/pods/{name}",
        timeout=grace,
        what=f"{name} gone",
    )
    took = time.monotonic() - scaled_at
    assert took < grace, f"the pod took {took:.0f}s to stop, grace period {grace}s"
    assert story.purge_queue() == 0, "a job was left in the pool's queue"
    story.delete_pool()


def worker_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    found: dict[str, Any] = next((c for c in statuses if c["name"] == "worker"), {})
    return found


def test_oom_killed_worker_has_its_job_redelivered(installed: Story) -> None:
    story = for_pool(installed, "real-oom")
    body = fixed_pool(story.pool_name, 1)
    # Well above an idle worker (about 60 MiB resident), far below what the job asks for.
    body["spec"]["resources"] = {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "192Mi"},
    }
    story.create_pool(body)
    victim = one_ready_pod(story)["metadata"]["name"]
    pod_path = f"/api/v1/namespaces/{story.pool_namespace}/pods/{victim}"

    # The job holds 512 MiB, but only on the victim's host: whoever runs it elsewhere finishes.
    [job_id] = story.submit(1, 1.0, {"allocate_mib": 512, "allocate_on_host": victim})

    def oom_killed() -> dict[str, Any] | None:
        last = worker_status(story.cluster.api.get(pod_path)).get("lastState") or {}
        terminated: dict[str, Any] | None = last.get("terminated")
        return terminated if terminated and terminated.get("reason") == "OOMKilled" else None

    terminated = wait_until(oom_killed, timeout=120, what=f"{victim} OOMKilled by the kubelet")
    assert terminated["exitCode"] == 137, terminated  # SIGKILL from the kernel's OOM killer
    assert worker_status(story.cluster.api.get(pod_path))["restartCount"] >= 1

    # A second worker: the job the victim never acknowledged is redelivered to it (the victim
    # may take it again first after its restart, and be killed again).
    path = (
        f"/apis/{api.API_VERSION}/namespaces/{story.pool_namespace}/{api.PLURAL}/{story.pool_name}"
    )
    story.cluster.api.patch(path, {"spec": {"replicaCount": 2}})
    [result] = story.results([job_id], timeout=240).values()
    assert result is not None and result.status == JobStatus.COMPLETED, result
    assert result.result is not None
    host = result.result["properties"]["host"]
    assert host != victim and host.startswith(f"{story.pool_name}-"), host
    assert story.purge_queue() == 0, "a job was left in the pool's queue"
    story.delete_pool()


def test_operator_pod_deleted_mid_burst_converges_without_duplicate_scaling(
    installed: Story,
) -> None:
    story = for_pool(installed, "real-restart")
    story.create_pool(pool_body(story.pool_name, max_replicas=3))
    story.sample()
    job_ids = story.submit(24, 2.0)
    story.wait(lambda: (story.deployment_replicas() or 0) >= 1, timeout=90, what="scale-up started")

    cluster, namespace = story.cluster, installed.operator_namespace
    [old] = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    cluster.api.delete(f"/api/v1/namespaces/{namespace}/pods/{old['metadata']['name']}")

    def replacement_ready() -> bool:
        items = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
        return any(p["metadata"]["uid"] != old["metadata"]["uid"] and ready(p) for p in items)

    wait_until(replacement_ready, timeout=120, what="a new operator pod Ready")

    results = story.results(job_ids, timeout=240)
    missing = [job for job, result in results.items() if result is None]
    assert not missing, f"{len(missing)} jobs without a result"
    assert all(r is not None and r.status == JobStatus.COMPLETED for r in results.values())
    story.wait(lambda: story.deployment_replicas() == 0, timeout=180, what="scale-down to 0")

    assert story.max_replicas_seen() <= 3
    decisions = (story.pool().get("status") or {}).get("decisions") or []
    steps = [(d["from"], d["to"]) for d in decisions if d["from"] != d["to"]]
    repeated = [a for a, b in itertools.pairwise(steps) if a == b]
    assert not repeated, f"scaling steps made twice: {repeated} in {decisions}"
    story.stop_processes()
    story.delete_pool()
