"""The worker process: settings in, providers loaded, jobs consumed until SIGTERM drains it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from itl_controlplane_sdk.contract.settings import WorkerSettings
from itl_controlplane_sdk.errors import BrokerUnavailableError
from itl_controlplane_sdk.providers.loading import load_providers
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry
from itl_controlplane_sdk.redaction import redact_url
from itl_controlplane_sdk.workers.health import HealthServer
from itl_controlplane_sdk.workers.heartbeats import Heartbeat
from itl_controlplane_sdk.workers.provider_worker import ProviderWorker
from itl_controlplane_sdk.workers.queue import JobQueue

log = logging.getLogger(__name__)

MAX_CONNECT_BACKOFF = 10.0


def heartbeat_of(
    worker: ProviderWorker, settings: WorkerSettings, *, stopped: bool = False
) -> Heartbeat:
    queue = worker.job_queue
    return Heartbeat(
        worker_id=worker.worker_id,
        pool=settings.pool_name,
        queue=settings.job_queue,
        in_flight=worker.in_flight,
        unacked=queue.unacked,
        stuck=queue.stuck,
        capacity=worker.max_concurrent_jobs,
        draining=worker.draining,
        stopped=stopped,
        jobs_processed=worker.jobs_processed,
        jobs_failed=worker.jobs_failed,
        interval=settings.heartbeat_interval,
    )


async def _send_heartbeats(
    worker: ProviderWorker, queue: JobQueue, settings: WorkerSettings
) -> None:
    while True:
        try:
            await queue.publish_heartbeat(heartbeat_of(worker, settings))
        except Exception as exc:  # the broker may be restarting; the next beat will tell
            log.debug("heartbeat not sent: %s", type(exc).__name__)
        await asyncio.sleep(settings.heartbeat_interval)


async def _start_when_broker_is_up(worker: ProviderWorker, stop: asyncio.Event) -> bool:
    backoff = 0.5
    while not stop.is_set():
        try:
            await worker.start()
            return True
        except BrokerUnavailableError as exc:
            log.warning("%s; retrying in %.1fs", exc, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, MAX_CONNECT_BACKOFF)
    return False


async def run_worker(settings: WorkerSettings, stop: asyncio.Event | None = None) -> int:
    """Runs one worker until ``stop`` is set or SIGTERM/SIGINT arrives; returns an exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    registry = ResourceProviderRegistry()
    sources = load_providers(registry, settings.providers)
    url = settings.rabbitmq_url.get_secret_value()
    queue = JobQueue(
        url,
        queue_name=settings.job_queue,
        bindings=settings.job_bindings,
        result_retention=settings.result_retention,
        tls=settings.broker_tls,
        queue_type=settings.queue_type,
        results_protocol=settings.results_protocol,
        results_stream_port=settings.results_stream_port,
    )
    worker = ProviderWorker(
        settings.worker_id,
        registry,
        queue,
        max_concurrent_jobs=settings.max_concurrent_jobs,
        job_timeout=settings.job_timeout,
        max_attempts=settings.max_attempts,
        retry_base_delay=settings.retry_base_delay,
        drain_timeout=settings.effective_drain_timeout,
        pool_name=settings.pool_name,
        max_job_bytes=settings.max_job_bytes,
    )
    log.info(
        "worker %s: pool=%s queue=%s broker=%s providers=%s (from %s)",
        worker.worker_id,
        settings.pool_name,
        settings.job_queue,
        redact_url(url),
        ", ".join(registry.list_providers()) or "none",
        ", ".join(sources) or "nothing",
    )
    health = HealthServer(worker, queue, settings.health_check_host, settings.health_check_port)
    await health.start()
    log.info("health endpoints on %s:%d", settings.health_check_host, health.port)
    heartbeats: asyncio.Task[None] | None = None
    try:
        if not await _start_when_broker_is_up(worker, stop):
            return 0
        await worker.start_consuming_jobs()
        # What exists now (modules, pydantic schemas, the connection) lives as long as the
        # process: move it out of the collector's sight, so full collections only walk
        # what jobs allocate instead of pausing every in-flight job for tens of ms.
        gc.freeze()
        heartbeats = asyncio.create_task(_send_heartbeats(worker, queue, settings))
        log.info(
            "consuming %s with up to %d concurrent jobs",
            settings.job_queue,
            settings.max_concurrent_jobs,
        )
        await stop.wait()
        log.info(
            "draining: finishing %d in-flight job(s) within %.0fs",
            worker.in_flight,
            worker.drain_timeout,
        )
        worker.draining = True
        try:
            await queue.publish_heartbeat(heartbeat_of(worker, settings))
        except Exception:
            log.debug("draining heartbeat not sent")
        await worker.stop()
        try:
            await queue.publish_heartbeat(heartbeat_of(worker, settings, stopped=True))
        except Exception:
            log.debug("final heartbeat not sent")
        return 0
    finally:
        if heartbeats is not None:
            heartbeats.cancel()
        await queue.disconnect()
        await health.stop()
        log.info("worker %s exited", worker.worker_id)
