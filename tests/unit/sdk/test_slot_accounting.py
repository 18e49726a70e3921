"""A worker whose slot accounting disagrees with the broker's says so everywhere it reports.

No known code path leaves a delivery held without a job (the consumer settles every failure),
so the disagreement is produced by a test double of the queue: it is the one failure here
that cannot be made real.
"""

from __future__ import annotations

from starlette.testclient import TestClient

from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry
from itl_controlplane_sdk.workers import JobQueue, ProviderWorker, WorkerSettings
from itl_controlplane_sdk.workers.health import build_app
from itl_controlplane_sdk.workers.runtime import heartbeat_of


class QueueWithLostSlots(JobQueue):
    """Two deliveries held unacked with no job running for them."""

    @property
    def is_connected(self) -> bool:
        return True

    @property
    def in_flight(self) -> int:
        return 3

    @property
    def unacked(self) -> int:
        return 5

    @property
    def stuck(self) -> int:
        return 2


def running_worker(queue: JobQueue) -> ProviderWorker:
    worker = ProviderWorker("w-1", ResourceProviderRegistry(), queue, max_concurrent_jobs=4)
    worker.is_running = True
    return worker


def test_lost_slots_show_on_health_status_heartbeat_and_metrics() -> None:
    queue = QueueWithLostSlots()
    worker = running_worker(queue)
    client = TestClient(build_app(worker, queue))

    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["reason"] == "2 job deliveries held with no job running (slots lost)"
    status = client.get("/status").json()
    assert (status["in_flight"], status["unacked"], status["stuck"]) == (3, 5, 2)
    beat = heartbeat_of(worker, WorkerSettings())
    assert (beat.in_flight, beat.unacked, beat.stuck) == (3, 5, 2)
    assert (
        'worker_jobs_in_flight{pool="default",worker_id="w-1"} 3.0' in client.get("/metrics").text
    )


def test_a_healthy_worker_reports_nothing_held() -> None:
    queue = JobQueue()
    worker = running_worker(queue)
    status = TestClient(build_app(worker, queue)).get("/status").json()
    assert (status["in_flight"], status["unacked"], status["stuck"]) == (0, 0, 0)
