"""The worker's HTTP endpoints: /health, /livez, /status and /metrics.

``/health`` answers 200 only while the worker is running, connected to the broker and not
draining, so Kubernetes stops routing to (and the operator stops counting on) a pod that is
shutting down. ``/livez`` stays 200 while the process works at all: use it for the liveness
probe when a broker outage should not restart every pod.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from itl_controlplane_sdk.workers.metrics import CONTENT_TYPE
from itl_controlplane_sdk.workers.provider_worker import ProviderWorker
from itl_controlplane_sdk.workers.queue import JobQueue


def build_app(worker: ProviderWorker, job_queue: JobQueue) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        stuck = job_queue.stuck
        if worker.is_running and not worker.draining and job_queue.is_connected and not stuck:
            return JSONResponse({"status": "healthy", "worker_id": worker.worker_id})
        reason = (
            "draining"
            if worker.draining
            else "not running"
            if not worker.is_running
            else "broker disconnected"
            if not job_queue.is_connected
            else f"{stuck} job deliveries held with no job running (slots lost)"
        )
        return JSONResponse({"status": "unhealthy", "reason": reason}, status_code=503)

    async def livez(_: Request) -> JSONResponse:
        return JSONResponse({"status": "alive", "worker_id": worker.worker_id})

    async def status(_: Request) -> JSONResponse:
        return JSONResponse(worker.get_status())

    async def metrics(_: Request) -> Response:
        return Response(worker.metrics.render(worker), media_type=CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/livez", livez),
            Route("/status", status),
            Route("/metrics", metrics),
        ]
    )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal capture: the worker owns SIGTERM and drains on it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HealthServer:
    """uvicorn serving ``build_app`` inside the worker's event loop."""

    def __init__(self, worker: ProviderWorker, job_queue: JobQueue, host: str, port: int) -> None:
        config = uvicorn.Config(
            build_app(worker, job_queue),
            host=host,
            port=port,
            log_level="warning",
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the bind error
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        sockets = self._server.servers[0].sockets if self._server.servers else []
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
