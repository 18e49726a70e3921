"""The offloading registries: the API side of the job system."""

from __future__ import annotations

import pytest

from itl_controlplane_sdk import ProvisioningState
from itl_controlplane_sdk.workers import (
    JobFailedError,
    JobQueue,
    OffloadingProviderRegistry,
    SyncOffloadingProviderRegistry,
)
from tests.integration.sdk.conftest import StartWorker
from tests.support.requests import demo_request

pytestmark = pytest.mark.integration


async def test_offloaded_create_answers_pending_then_the_result_arrives(
    producer: JobQueue, start_worker: StartWorker
) -> None:
    await start_worker()
    registry = OffloadingProviderRegistry(producer)

    pending = await registry.create_or_update_resource("ITL.Demo", "Job", demo_request("rg-a"))

    assert pending.status == "pending"
    assert pending.job_id
    assert pending.provisioning_state is ProvisioningState.ACCEPTED
    assert pending.id is not None and pending.id.endswith("/ITL.Demo/Job/rg-a")
    result = await registry.get_job_result(pending.job_id, timeout=10)
    assert result is not None
    assert result["status"] == "completed"
    assert result["result"]["name"] == "rg-a"


@pytest.mark.parametrize(
    ("method", "operation"),
    [("get_resource", "get"), ("delete_resource", "delete"), ("execute_action", "action")],
)
async def test_every_operation_is_offloaded(
    producer: JobQueue, start_worker: StartWorker, method: str, operation: str
) -> None:
    await start_worker()
    registry = OffloadingProviderRegistry(producer)

    pending = await getattr(registry, method)("ITL.Demo", "Job", demo_request(operation))

    assert pending.job_id is not None
    result = await registry.get_job_result(pending.job_id, timeout=10)
    assert result is not None and result["status"] == "completed"


async def test_offloaded_list_carries_the_job_id(
    producer: JobQueue, start_worker: StartWorker
) -> None:
    await start_worker()
    registry = OffloadingProviderRegistry(producer)

    pending = await registry.list_resources("ITL.Demo", "Job", demo_request())

    assert pending.status == "pending" and pending.job_id is not None
    result = await registry.get_job_result(pending.job_id, timeout=10)
    assert result is not None and len(result["result"]["value"]) == 1


async def test_get_job_result_without_waiting_returns_none_for_unfinished_jobs(
    producer: JobQueue,
) -> None:
    registry = OffloadingProviderRegistry(producer)
    pending = await registry.create_or_update_resource("ITL.Demo", "Job", demo_request())

    assert pending.job_id is not None
    assert await registry.get_job_result(pending.job_id, timeout=0) is None
    stats = await registry.get_queue_stats()
    assert stats["queues"][producer.queue_name]["message_count"] == 1


async def test_sync_registry_returns_the_completed_resource(
    producer: JobQueue, start_worker: StartWorker
) -> None:
    await start_worker()
    registry = SyncOffloadingProviderRegistry(producer, default_timeout=10)

    response = await registry.create_or_update_resource_sync(
        "ITL.Demo", "Job", demo_request("rg-s")
    )

    assert response.status == "completed"
    assert response.name == "rg-s"
    assert response.provisioning_state is ProvisioningState.SUCCEEDED


async def test_sync_registry_timeout_default_and_per_call(
    producer: JobQueue, start_worker: StartWorker
) -> None:
    await start_worker()
    registry = SyncOffloadingProviderRegistry(producer, default_timeout=0.5)

    with pytest.raises(TimeoutError, match=r"did not finish within 0\.5s"):
        await registry.create_or_update_resource_sync("ITL.Demo", "Job", demo_request(seconds=2))
    response = await registry.create_or_update_resource_sync(
        "ITL.Demo", "Job", demo_request("slow", seconds=1), timeout=10
    )
    assert response.status == "completed"


async def test_sync_registry_raises_when_the_job_fails(
    producer: JobQueue, start_worker: StartWorker, clean_dlq: None
) -> None:
    await start_worker()
    registry = SyncOffloadingProviderRegistry(producer, default_timeout=10)

    with pytest.raises(JobFailedError, match="simulated permanent failure"):
        await registry.create_or_update_resource_sync(
            "ITL.Demo", "Job", demo_request(fail="permanent")
        )
