"""The chaos suite's provider: it records every execution it finishes, per process.

Worker processes load it with ``WORKER_PROVIDERS=tests.chaos.recorder:register``. Each
execution of a job (resource name = the suite's job name) sleeps ``body.seconds``, then
appends the name as one line to ``$CHAOS_RECORD_DIR/<pid>.log`` with a single ``write``, so
a SIGKILL loses at most the line of a job that had not finished.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from itl_controlplane_sdk import (
    ResourceListResponse,
    ResourceProviderRegistry,
    ResourceRequest,
    ResourceResponse,
)
from itl_controlplane_sdk.providers.base import ResourceProvider

NAMESPACE = "ITL.Chaos"
RESOURCE_TYPE = "Record"


class Recorder(ResourceProvider):
    def __init__(self, path: Path) -> None:
        super().__init__(NAMESPACE)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        await asyncio.sleep(float(request.body.get("seconds", 0)))
        os.write(self._fd, f"{request.resource_name}\n".encode())
        return ResourceResponse(id=request.resource_id, name=request.resource_name)

    async def get_resource(self, request: ResourceRequest) -> ResourceResponse:
        raise NotImplementedError

    async def list_resources(self, request: ResourceRequest) -> ResourceListResponse:
        raise NotImplementedError

    async def delete_resource(self, request: ResourceRequest) -> ResourceResponse:
        raise NotImplementedError


def register(registry: ResourceProviderRegistry) -> None:
    path = Path(os.environ["CHAOS_RECORD_DIR"]) / f"{os.getpid()}.log"
    registry.register_provider(NAMESPACE, RESOURCE_TYPE, Recorder(path))
