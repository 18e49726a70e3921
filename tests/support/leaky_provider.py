"""A provider whose failures quote the broker URL, password included, as careless code does.

The structured-log tests run it in a worker process: the worker logs the failure, and the log
must not show the password (``itl_controlplane_sdk.logs`` scrubs it).
"""

from __future__ import annotations

import os

from itl_controlplane_sdk.errors import PermanentJobError
from itl_controlplane_sdk.models import ResourceRequest, ResourceResponse
from itl_controlplane_sdk.providers.examples import SimulatedWorkProvider
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry


class LeakyProvider(SimulatedWorkProvider):
    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        raise PermanentJobError(f"could not reach {os.environ['RABBITMQ_URL']}")


def register(registry: ResourceProviderRegistry) -> None:
    registry.register_provider("ITL.Leak", "Job", LeakyProvider())
