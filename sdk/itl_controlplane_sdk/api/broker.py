"""The offloading API's link to RabbitMQ: connect in the background, answer 503 until up.

The API must start and serve ``/health`` (503) while the broker is down, so connecting is a
background task with capped backoff rather than a startup step that would crash the process.
Once connected, the JobQueue's robust connection reconnects by itself after a broker restart;
``require`` turns "not connected right now" into the ARM 503 with Retry-After, before
anything is published, so no request is ever half-submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from itl_controlplane_sdk.api.errors import ApiError, broker_unavailable
from itl_controlplane_sdk.errors import BrokerUnavailableError
from itl_controlplane_sdk.redaction import redact_url
from itl_controlplane_sdk.workers.queue import JobQueue

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 10.0


class BrokerLink:
    def __init__(self, queue: JobQueue, *, retry_after: int) -> None:
        self.queue = queue
        self.retry_after = retry_after
        self._task: asyncio.Task[None] | None = None

    @property
    def is_up(self) -> bool:
        return self.queue.is_connected

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_until_up(), name="broker-connect")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.queue.disconnect()

    async def _connect_until_up(self) -> None:
        backoff = 0.25
        while True:
            try:
                await self.queue.connect()
                break
            except BrokerUnavailableError as exc:
                log.warning("%s; retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        log.info("connected to the job broker at %s", redact_url(self.queue.rabbitmq_url))
        # Start tailing the results stream now, not on the first poll, so the first status
        # answer already knows results published since shortly before this replica started.
        with contextlib.suppress(Exception):
            await self.queue.get_job_progress("")

    def require(self) -> JobQueue:
        """The connected JobQueue, or the 503 to answer instead."""
        if not self.is_up:
            raise self.unavailable("not connected")
        return self.queue

    def unavailable(self, why: str) -> ApiError:
        return broker_unavailable(self.retry_after, why)
