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


IDLE_SETTLE_SECONDS = 0.1
"""How long a worker must stay idle before it sends its extra heartbeat.

A worker of a pool with jobs waiting takes its next one within a round trip of its last
ack; only a worker with nothing to take is still idle this much later."""


async def _until(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; whether it was set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()


async def _beat(worker: ProviderWorker, queue: JobQueue, settings: WorkerSettings) -> None:
    try:
        await queue.publish_heartbeat(heartbeat_of(worker, settings))
    except Exception as exc:  # the broker may be restarting; the next beat will tell
        log.debug("heartbeat not sent: %s", type(exc).__name__)


async def _send_heartbeats(
    worker: ProviderWorker,
    queue: JobQueue,
    settings: WorkerSettings,
    turned_idle: asyncio.Event,
) -> None:
    """A heartbeat every interval, and one more as soon as the worker turns idle.

    The autoscaler removes a worker only once a heartbeat says it is idle; waiting for the
    next regular one kept a finished worker (a replica paid for) up to an interval longer.
    The extra beat goes only when the worker is still idle ``IDLE_SETTLE_SECONDS`` after
    ``turned_idle`` was set, and at most once between two regular beats, so a pool whose
    workers empty at every short job sends at most twice its usual heartbeats, and a pool
    with jobs waiting (taken again at once) none extra.
    """
    loop = asyncio.get_running_loop()
    while True:
        await _beat(worker, queue, settings)
        due = loop.time() + settings.heartbeat_interval
        turned_idle.clear()
        if await _until(turned_idle, settings.heartbeat_interval):
            await asyncio.sleep(IDLE_SETTLE_SECONDS)
            if worker.in_flight == 0:
                await _beat(worker, queue, settings)
            await asyncio.sleep(max(0.0, due - loop.time()))


async def _start_when_broker_is_up(worker: ProviderWorker, stop: asyncio.Event) -> bool:
    backoff = 0.5
    while not stop.is_set():
        try:
            await worker.start()
            return True
        except BrokerUnavailableError as exc:
            log.warning("%s; retrying in %.1fs", exc, backoff)
            await _until(stop, backoff)
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
        turned_idle = asyncio.Event()
        await worker.start_consuming_jobs(on_idle=turned_idle.set)
        # What exists now (modules, pydantic schemas, the connection) lives as long as the
        # process: move it out of the collector's sight, so full collections only walk
        # what jobs allocate instead of pausing every in-flight job for tens of ms.
        gc.freeze()
        heartbeats = asyncio.create_task(_send_heartbeats(worker, queue, settings, turned_idle))
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
