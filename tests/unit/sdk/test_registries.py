"""Provider and worker registries, provider loading, WorkerRole template, metrics format."""

from __future__ import annotations

from typing import Any

import pytest

from itl_controlplane_sdk import ResourceProviderRegistry, ResourceRequest
from itl_controlplane_sdk.providers.examples import InMemoryResourceGroupProvider
from itl_controlplane_sdk.providers.loading import load_providers
from itl_controlplane_sdk.workers import WorkerRegistry, WorkerRole
from itl_controlplane_sdk.workers.metrics import WorkerMetrics


class EchoWorker(WorkerRole):
    def __init__(self, worker_id: str, worker_type: str = "generic") -> None:
        super().__init__(worker_id, worker_type)
        self.events: list[str] = []

    async def _start_impl(self) -> None:
        self.events.append("start")

    async def _stop_impl(self) -> None:
        self.events.append("stop")

    async def _process_job_impl(
        self,
        job_id: str,
        provider_namespace: str,
        resource_type: str,
        operation: str,
        request: ResourceRequest,
    ) -> dict[str, Any]:
        if operation == "explode":
            raise RuntimeError("boom")
        return {"echo": request.resource_name}


def request() -> ResourceRequest:
    return ResourceRequest(
        subscription_id="s",
        resource_group="rg",
        resource_type="ResourceGroup",
        resource_name="n",
        location="l",
    )


async def test_provider_registry_dispatches_and_names_missing_providers() -> None:
    registry = ResourceProviderRegistry()
    registry.register_provider("ITL.Core", "ResourceGroup", InMemoryResourceGroupProvider())

    created = await registry.create_or_update_resource("ITL.Core", "ResourceGroup", request())
    fetched = await registry.get_resource("ITL.Core", "ResourceGroup", request())

    assert fetched == created
    assert registry.list_providers() == ["ITL.Core/ResourceGroup"]
    with pytest.raises(ValueError, match=r"^No provider found for ITL.Core/Missing$"):
        await registry.get_resource("ITL.Core", "Missing", request())


async def test_worker_role_counts_jobs_and_returns_reference_shaped_dicts() -> None:
    worker = EchoWorker("w1")
    await worker.start()

    ok = await worker.process_job("1", "ITL.Core", "ResourceGroup", "create", request())
    failed = await worker.process_job("2", "ITL.Core", "ResourceGroup", "explode", request())

    assert ok["status"] == "completed" and ok["result"] == {"echo": "n"}
    assert set(ok) == {"job_id", "status", "result", "timestamp"}
    assert failed["status"] == "failed" and "boom" in failed["error"]
    status = worker.get_status()
    assert (status["jobs_processed"], status["jobs_failed"], status["is_running"]) == (1, 1, True)
    assert set(status) == {
        "worker_id",
        "worker_type",
        "is_running",
        "jobs_processed",
        "jobs_failed",
        "uptime_seconds",
        "started_at",
    }
    await worker.stop()
    await worker.stop()
    assert worker.events == ["start", "stop"]


async def test_worker_registry_manages_workers() -> None:
    registry = WorkerRegistry()
    a, b = EchoWorker("a", "provider"), EchoWorker("b")
    registry.register_worker(a)
    registry.register_worker(b)
    with pytest.raises(ValueError, match="Worker with ID a is already registered"):
        registry.register_worker(EchoWorker("a"))

    await registry.start_all_workers()
    await a.process_job("1", "n", "t", "create", request())
    assert registry.get_workers_by_type("provider") == [a]
    assert await registry.stop_worker("b") is True
    assert await registry.stop_worker("zzz") is False
    assert registry.get_active_workers() == [a]

    status = registry.get_registry_status()
    assert status["total_workers"] == 2
    assert status["active_workers"] == 1
    assert status["total_jobs_processed"] == 1
    assert set(status) == {
        "created_at",
        "total_workers",
        "active_workers",
        "total_jobs_processed",
        "total_jobs_failed",
        "workers",
    }
    assert registry.get_worker_status("missing") is None
    assert registry.unregister_worker("a") is True
    assert registry.unregister_worker("a") is False
    assert registry.list_workers() == ["b"]
    await registry.stop_all_workers()


def test_providers_load_from_factories_and_entry_points() -> None:
    explicit = ResourceProviderRegistry()
    load_providers(explicit, ["itl_controlplane_sdk.providers.examples:register_example_providers"])
    from_entry_points = ResourceProviderRegistry()
    sources = load_providers(from_entry_points)

    assert "ITL.Demo/Job" in explicit.list_providers()
    assert from_entry_points.list_providers() == explicit.list_providers()
    assert sources


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "must look like"),
        ("itl_controlplane_sdk.providers.examples:nothing_here", "has no nothing_here"),
    ],
)
def test_bad_provider_factories_are_named(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_providers(ResourceProviderRegistry(), [spec])


async def test_metrics_keep_the_reference_names() -> None:
    worker = EchoWorker('pod"1')
    await worker.start()
    text = WorkerMetrics(worker.worker_id).render(worker).decode()

    assert "# TYPE worker_jobs_processed counter" in text
    assert 'worker_jobs_processed{worker_id="pod\\"1"} 0' in text
    assert 'worker_running{worker_id="pod\\"1"} 1' in text
    assert "worker_jobs_processed_total" not in text


async def test_job_durations_are_counted_per_operation_and_outcome() -> None:
    worker = EchoWorker("pod-1")
    await worker.start()
    metrics = WorkerMetrics(worker.worker_id, "team/pool")
    for operation, status in [("create", "completed")] * 3 + [("delete", "failed")]:
        metrics.observe_job(operation, status, 0.02)
    text = metrics.render(worker).decode()

    def count(operation: str, status: str) -> str:
        labels = f'operation="{operation}",pool="team/pool",status="{status}",worker_id="pod-1"'
        return f"worker_job_duration_seconds_count{{{labels}}}"

    assert f"{count('create', 'completed')} 3.0" in text
    assert f"{count('delete', 'failed')} 1.0" in text
