"""The install story as steps: install, run, create a pool, submit a burst, watch, clean up.

``e2e/test_install_story.py`` asserts on each step; ``itl_harness.demo_cluster`` prints them.
Both get the same behaviour from here, so the demo a newcomer runs is the scenario CI checks.

Where things run depends on ``local``:

* ``local=True`` (the local control plane): the operator is a local process authenticated
  with a TokenRequest token of the chart's ServiceAccount, and ``PodWorkers`` (the
  autoscaler's test helper) starts a local SDK worker for each Running pod of the pool with
  WORKER_ID = the pod name, stopping it with SIGTERM when the pod goes away;
* ``local=False`` (kind or another real cluster): the chart's Deployment is the operator and
  the pool's pods are the workers.

Jobs are submitted with the SDK's ``JobQueue.submit_job`` (``ITL.Demo/Job``, the example
provider that sleeps for ``seconds``) and collected with ``get_result``, as an API would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika

from itl_controlplane_sdk import ResourceRequest
from itl_controlplane_sdk.contract.topology import provider_binding
from itl_controlplane_sdk.workers import JobQueue, JobResult
from itl_harness import stack
from itl_harness.operator_process import OperatorProcess
from itl_harness.pod_workers import PodWorkers
from localcluster import Cluster, WaitTimeout, wait_until
from workerpool_operator import api, labels

PROVIDER = "ITL.Demo/Job"
POOL_PATH = "/apis/{group}/namespaces/{ns}/{plural}/{name}"


def pool_body(name: str, *, max_replicas: int = 3, cooldown: int = 10) -> dict[str, Any]:
    """An autoscaled pool tuned to react in seconds (the samples use production timings)."""
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {
            "maxConcurrentJobs": 2,
            "jobTimeout": 60,
            "rabbitmq": {"secretRef": {"name": "rabbitmq", "key": "url"}},
            "providers": [PROVIDER],
            "autoscaling": {
                "enabled": True,
                "minReplicas": 0,
                "maxReplicas": max_replicas,
                "targetJobsPerReplica": 4,
                "pollIntervalSeconds": 1,
                "cooldownSeconds": cooldown,
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": max_replicas, "periodSeconds": 1}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 5,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 5}],
                },
            },
        },
    }


def _request(index: int, seconds: float, body: Mapping[str, Any]) -> ResourceRequest:
    return ResourceRequest(
        subscription_id="sub-e2e",
        resource_group="rg-e2e",
        provider_namespace="ITL.Demo",
        resource_type="Job",
        resource_name=f"job-{index}",
        location="westeurope",
        body={"seconds": seconds, **body},
    )


@dataclass(frozen=True)
class Snapshot:
    """What ``kubectl get workerpools`` shows, plus the Deployment's replicas."""

    at: float
    desired: int | None
    ready: int | None
    queue: int | None
    in_flight: int | None
    replicas: int | None
    ready_condition: str

    def line(self) -> str:
        def show(value: int | None) -> str:
            return "-" if value is None else str(value)

        return (
            f"{self.at:6.1f}s  desired {show(self.desired):>2}  ready {show(self.ready):>2}  "
            f"queue {show(self.queue):>3}  in-flight {show(self.in_flight):>2}  "
            f"deployment {show(self.replicas):>2}  {self.ready_condition}"
        )


@dataclass
class Story:
    """One run of the story in ``cluster``; ``close`` undoes whatever was started."""

    cluster: Cluster
    rabbitmq_url: str
    """The broker this process publishes to."""
    pool_rabbitmq_url: str
    """The broker URL as the workers see it (the pool Secret's value)."""
    work_dir: Path
    local: bool = True
    image_tag: str | None = None
    pool_name: str = "demo-workers"
    release_name: str | None = None
    """Helm release name; None: a unique one (tests), the demo uses a fixed one."""
    operator_namespace: str = ""
    pool_namespace: str = ""
    release: stack.Release | None = None
    operator: OperatorProcess | None = None
    workers: PodWorkers | None = None
    started: float = field(default_factory=time.monotonic)
    history: list[Snapshot] = field(default_factory=list)
    _sampler: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    # -- set-up ------------------------------------------------------------------------

    def create_namespaces(self, prefix: str = "e2e-") -> None:
        self.operator_namespace = stack.create_namespace(self.cluster, f"{prefix}op-")
        self.pool_namespace = stack.create_namespace(self.cluster, f"{prefix}pool-")

    def install(self, extra_values: dict[str, Any] | None = None) -> str:
        """Helm-install the chart, watching only the pool namespace; return Helm's notes."""
        values: dict[str, Any] = {"watchNamespaces": [self.pool_namespace], **(extra_values or {})}
        if self.image_tag:
            values.setdefault("image", {})["tag"] = self.image_tag
            values.setdefault("workerImage", {})["tag"] = self.image_tag
        if not self.local:
            values.setdefault("image", {}).setdefault("pullPolicy", "IfNotPresent")
        name = self.release_name or stack.unique_release()
        self.release = stack.Release(self.cluster, name, self.operator_namespace)
        return self.release.install(values)

    def start_operator(self) -> None:
        """Local: the operator process with the chart's token. Cluster: wait for its rollout."""
        assert self.release is not None
        if not self.local:
            self.release.wait_rollout()
            return
        self.operator = OperatorProcess(
            self.release.operator_kubeconfig(),
            self.work_dir / "operator.log",
            namespaces=self.pool_namespace,
        )
        self.operator.start()

    @property
    def queue_name(self) -> str:
        """The pool's dedicated queue (pools with ``providers`` get one)."""
        return f"provider.jobs.{self.pool_namespace}.{self.pool_name}"

    def create_pool(self, body: dict[str, Any] | None = None) -> None:
        """The broker Secret and the WorkerPool, applied as a user would (kubectl apply)."""
        stack.put_secret(self.cluster, self.pool_namespace, self.pool_rabbitmq_url)
        document = json.dumps(body or pool_body(self.pool_name))
        self.cluster.kubectl("-n", self.pool_namespace, "apply", "-f", "-", input=document)

    def start_workers(self) -> None:
        """Local only: a worker process per Running pod, as kubelet would run containers."""
        if not self.local:
            return
        self.workers = PodWorkers(
            self.cluster,
            self.pool_namespace,
            self.pool_name,
            rabbitmq_url=self.pool_rabbitmq_url,
            log_dir=self.work_dir,
        ).__enter__()

    # -- jobs --------------------------------------------------------------------------

    def _job_queue(self) -> JobQueue:
        # Declaring the pool's queue with its binding (as its workers will) before the first
        # publish keeps a burst submitted to a pool at zero replicas in the pool's queue.
        return JobQueue(
            self.rabbitmq_url, queue_name=self.queue_name, bindings=(provider_binding(PROVIDER),)
        )

    def submit(
        self, count: int, seconds: float, body: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Submit ``count`` jobs that each run ``seconds``; return their ids.

        ``body`` adds to each request's body (``ITL.Demo/Job`` options such as
        ``allocate_mib``, see ``itl_controlplane_sdk.providers.examples``).
        """

        async def run() -> list[str]:
            queue = self._job_queue()
            await queue.connect()
            try:
                return [
                    await queue.submit_job(
                        "ITL.Demo", "Job", "create", _request(i, seconds, body or {}), priority=5
                    )
                    for i in range(count)
                ]
            finally:
                await queue.disconnect()

        return asyncio.run(run())

    def results(self, job_ids: list[str], timeout: float) -> dict[str, JobResult | None]:
        """Each job's final result (None when none came within ``timeout``)."""

        async def run() -> dict[str, JobResult | None]:
            queue = self._job_queue()
            await queue.connect()
            try:
                found = await asyncio.gather(*(queue.get_result(i, timeout) for i in job_ids))
            finally:
                await queue.disconnect()
            return dict(zip(job_ids, found, strict=True))

        return asyncio.run(run())

    # -- observation -------------------------------------------------------------------

    def pool(self) -> dict[str, Any]:
        path = POOL_PATH.format(
            group=api.API_VERSION, ns=self.pool_namespace, plural=api.PLURAL, name=self.pool_name
        )
        result: dict[str, Any] = self.cluster.api.get(path)
        return result

    def deployment_replicas(self) -> int | None:
        path = f"/apis/apps/v1/namespaces/{self.pool_namespace}/deployments/{self.pool_name}"
        deployment = self.cluster.api.get_or_none(path)
        return None if deployment is None else int(deployment["spec"].get("replicas", 0))

    def pods(self) -> list[dict[str, Any]]:
        """The pool's pods, terminating ones included."""
        selector = ",".join(f"{k}={v}" for k, v in labels.selector_labels(self.pool_name).items())
        found: list[dict[str, Any]] = self.cluster.api.get(
            f"/api/v1/namespaces/{self.pool_namespace}/pods", labelSelector=selector
        )["items"]
        return found

    def snapshot(self) -> Snapshot:
        status = self.pool().get("status") or {}
        queue = status.get("queue") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        return Snapshot(
            at=time.monotonic() - self.started,
            desired=status.get("desiredReplicas"),
            ready=status.get("readyReplicas"),
            queue=queue.get("ready"),
            in_flight=queue.get("inFlight"),
            replicas=self.deployment_replicas(),
            ready_condition=f"Ready={ready['status']}/{ready['reason']}" if ready else "",
        )

    def sample(
        self, interval: float = 0.5, on_change: Callable[[Snapshot], None] | None = None
    ) -> None:
        """Record snapshots in the background (and report changes) until ``close``."""

        def loop() -> None:
            previous = None
            while not self._stop.is_set():
                with contextlib.suppress(Exception):
                    shot = self.snapshot()
                    self.history.append(shot)
                    key = (shot.desired, shot.ready, shot.queue, shot.in_flight, shot.replicas)
                    if on_change is not None and key != previous:
                        on_change(shot)
                    previous = key
                self._stop.wait(interval)

        self._sampler = threading.Thread(target=loop, name="story sampler", daemon=True)
        self._sampler.start()

    def wait(self, probe: Callable[[], object], *, timeout: float, what: str) -> None:
        """``wait_until`` whose failure message ends with the operator's log, read then."""
        try:
            wait_until(probe, timeout=timeout, what=what)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{self.log_tails()}") from None

    def max_replicas_seen(self) -> int:
        return max((s.replicas or 0 for s in self.history), default=0)

    def log_tails(self) -> str:
        """Operator log tail, for assertion messages."""
        if self.operator is not None:
            return f"operator log ({self.operator.log_path}):\n{self.operator.log_tail()}"
        return "operator runs in the cluster: kubectl logs deployment/<release>"

    # -- tear-down ---------------------------------------------------------------------

    def delete_pool(self, *, timeout: float = 120) -> None:
        """Delete the pool; garbage collection removes its children (ownerReferences)."""
        path = POOL_PATH.format(
            group=api.API_VERSION, ns=self.pool_namespace, plural=api.PLURAL, name=self.pool_name
        )
        self.cluster.api.delete(path)
        for child in (
            f"/apis/apps/v1/namespaces/{self.pool_namespace}/deployments/{self.pool_name}",
            f"/apis/policy/v1/namespaces/{self.pool_namespace}/poddisruptionbudgets/"
            f"{self.pool_name}",
        ):
            stack.wait_gone(self.cluster, child, timeout=timeout, what=f"{child} collected")

    def purge_queue(self) -> int:
        """Drop jobs left in the pool's queue by an earlier run; return how many."""

        async def run() -> int:
            connection = await aio_pika.connect(self.rabbitmq_url)
            async with connection:
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(self.queue_name, passive=True)
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    return 0
                result = await queue.purge()
                return int(result.message_count or 0)

        return asyncio.run(run())

    def delete_queue(self) -> None:
        """Remove the pool's queue from the shared broker (it is durable and bound)."""

        async def run() -> None:
            connection = await aio_pika.connect(self.rabbitmq_url)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(self.queue_name)

        with contextlib.suppress(Exception):
            asyncio.run(run())

    def stop_processes(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(5)
        if self.workers is not None:
            self.workers.close()
            self.workers = None
        if self.operator is not None:
            self.operator.stop()
            self.operator = None

    def close(self, *, keep_namespaces: bool = False) -> None:
        """Best-effort clean-up of everything this story started or created."""
        self.stop_processes()
        if self.release is not None:
            with contextlib.suppress(Exception):
                self.release.uninstall()
        self.delete_queue()
        if not keep_namespaces:
            for namespace in (self.pool_namespace, self.operator_namespace):
                if namespace:
                    with contextlib.suppress(Exception):
                        stack.delete_namespace(self.cluster, namespace)
