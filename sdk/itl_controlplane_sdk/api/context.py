"""What every route needs, built once per app: settings, provider catalogue, broker, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from fastapi import Request

from itl_controlplane_sdk.api.broker import BrokerLink
from itl_controlplane_sdk.api.metrics import ApiMetrics
from itl_controlplane_sdk.api.settings import ApiSettings
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry


@dataclass
class ApiContext:
    settings: ApiSettings
    providers: ResourceProviderRegistry
    """Runs operations in-process mode; the catalogue of known types in offloading mode."""
    metrics: ApiMetrics
    broker: BrokerLink | None
    """None when offloading is disabled."""


async def get_context(request: Request) -> ApiContext:
    """Async on purpose: FastAPI runs sync dependencies in a thread pool, a hop per request."""
    return cast(ApiContext, request.app.state.context)
