"""ProviderWorker: runs resource-provider operations taken from a JobQueue."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from itl_controlplane_sdk.contract.settings import DEFAULT_MAX_JOB_BYTES
from itl_controlplane_sdk.errors import JobTimeoutError, RetryableJobError, is_retryable
from itl_controlplane_sdk.models import ResourceRequest
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry
from itl_controlplane_sdk.workers.base import WorkerRole
from itl_controlplane_sdk.workers.caller import running_for
from itl_controlplane_sdk.workers.envelope import JobCaller
from itl_controlplane_sdk.workers.metrics import WorkerMetrics
from itl_controlplane_sdk.workers.queue import JobQueue
from itl_controlplane_sdk.workers.results import JobResult, JobStatus

log = logging.getLogger(__name__)


class ProviderWorker(WorkerRole):
    """Consumes jobs, calls the registered provider, publishes the outcome.

    At most ``max_concurrent_jobs`` jobs run at once (it is also the AMQP prefetch, so the
    broker never hands this worker more than it can start). Each job runs under
    ``job_timeout``. Retryable failures are retried up to ``max_attempts`` with exponential
    backoff from ``retry_base_delay``; then the job fails and is dead-lettered.
    """

    def __init__(
        self,
        worker_id: str,
        provider_registry: ResourceProviderRegistry,
        job_queue: JobQueue,
        *,
        max_concurrent_jobs: int = 10,
        job_timeout: float = 300.0,
        max_attempts: int = 3,
        retry_base_delay: float = 1.0,
        drain_timeout: float | None = None,
        pool_name: str = "default",
        metrics: WorkerMetrics | None = None,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
    ) -> None:
        super().__init__(worker_id, worker_type="provider")
        self.provider_registry = provider_registry
        self.job_queue = job_queue
        self.max_concurrent_jobs = max_concurrent_jobs
        self.job_timeout = job_timeout
        self.max_attempts = max_attempts
        self.retry_base_delay = retry_base_delay
        self.drain_timeout = job_timeout if drain_timeout is None else drain_timeout
        self.pool_name = pool_name
        self.metrics = metrics or WorkerMetrics(worker_id, pool_name)
        self.max_job_bytes = max_job_bytes
        self.metrics.capacity.set(max_concurrent_jobs)
        self.metrics.in_flight.set_function(lambda: self.in_flight)
        self._running = 0
        self.draining = False
        self.jobs_requeued_on_stop = 0

    async def _start_impl(self) -> None:
        await self.job_queue.connect()

    async def _stop_impl(self) -> None:
        self.draining = True
        self.metrics.draining.set(1)
        self.jobs_requeued_on_stop = await self.job_queue.stop_consuming(self.drain_timeout)
        if self.jobs_requeued_on_stop:
            log.warning(
                "drain timeout of %.0fs reached; %d job(s) requeued for other workers",
                self.drain_timeout,
                self.jobs_requeued_on_stop,
            )

    async def start_consuming_jobs(self, *, on_idle: Callable[[], None] | None = None) -> None:
        """Starts taking jobs from the queue (returns once the consumer is registered).

        Starts the worker first if it is not running, as upstream callers expect.
        ``on_idle`` is called each time the worker's last job in flight is settled.
        """
        await self.start()
        await self.job_queue.consume_jobs(
            self._handle_job,
            prefetch=self.max_concurrent_jobs,
            max_attempts=self.max_attempts,
            retry_base_delay=self.retry_base_delay,
            max_job_bytes=self.max_job_bytes,
            on_idle=on_idle,
        )

    @property
    def in_flight(self) -> int:
        """Concurrency slots held: every job delivery from arrival to settlement.

        The autoscaler reads this (through heartbeats) as the worker's load, so it counts a
        job being decoded, retried or recorded as much as one inside its provider.
        """
        return max(self._running, self.job_queue.in_flight)

    def get_status(self) -> dict[str, Any]:
        status = super().get_status()
        status.update(
            in_flight=self.in_flight,
            unacked=self.job_queue.unacked,
            stuck=self.job_queue.stuck,
            capacity=self.max_concurrent_jobs,
            draining=self.draining,
            pool=self.pool_name,
        )
        return status

    async def _process_job_impl(
        self,
        job_id: str,
        provider_namespace: str,
        resource_type: str,
        operation: str,
        request: ResourceRequest,
    ) -> dict[str, Any]:
        registry = self.provider_registry
        response: Any
        match operation:
            case "create":
                response = await registry.create_or_update_resource(
                    provider_namespace, resource_type, request
                )
            case "get":
                response = await registry.get_resource(provider_namespace, resource_type, request)
            case "list":
                response = await registry.list_resources(provider_namespace, resource_type, request)
            case "delete":
                response = await registry.delete_resource(
                    provider_namespace, resource_type, request
                )
            case "action":
                response = await registry.execute_action(provider_namespace, resource_type, request)
            case _:
                raise ValueError(f"unknown operation {operation!r}")
        dumped: dict[str, Any] = response.model_dump(mode="json")
        return dumped

    async def _run_with_timeout(self, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        request = ResourceRequest.model_validate(payload["request"])
        caller = payload.get("caller")
        deadline = asyncio.timeout(self.job_timeout)
        try:
            with running_for(JobCaller.model_validate(caller) if caller else None):
                async with deadline:
                    return await self._process_job_impl(
                        job_id,
                        payload["provider_namespace"],
                        payload["resource_type"],
                        payload["operation"],
                        request,
                    )
        except TimeoutError:
            if deadline.expired():
                raise JobTimeoutError(
                    f"job {job_id} exceeded the job timeout of {self.job_timeout:g}s"
                ) from None
            raise

    async def _handle_job(self, job_id: str, payload: dict[str, Any]) -> JobResult:
        """The JobQueue callback: runs one attempt and classifies its failure."""
        attempt = int(payload.get("attempt", 1))
        operation = str(payload.get("operation"))
        started = time.monotonic()
        self._running += 1
        try:
            result = await self._run_with_timeout(job_id, payload)
        except Exception as exc:
            elapsed = time.monotonic() - started
            if is_retryable(exc) and attempt < self.max_attempts:
                self.metrics.retries.inc()
                self.metrics.observe_job(operation, "retry", elapsed)
                raise RetryableJobError(f"{type(exc).__name__}: {exc}") from exc
            self.jobs_failed += 1
            self.metrics.observe_job(operation, JobStatus.FAILED.value, elapsed)
            suffix = f" (after {attempt} attempts)" if is_retryable(exc) and attempt > 1 else ""
            log.warning("job %s failed%s: %s", job_id, suffix, exc)
            return JobResult(job_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}{suffix}")
        finally:
            self._running -= 1
        self.jobs_processed += 1
        self.metrics.observe_job(operation, JobStatus.COMPLETED.value, time.monotonic() - started)
        return JobResult(job_id, JobStatus.COMPLETED, result=result)
