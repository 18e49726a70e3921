"""What every route needs, built once per app: settings, providers, broker, metrics, tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from fastapi import Request

from itl_controlplane_sdk.api.auth import TokenVerifier
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
    verifier: TokenVerifier | None = None
    """None under ``AUTH_MODE=none``: every caller is anonymous and may do everything."""


async def get_context(request: Request) -> ApiContext:
    """Async on purpose: FastAPI runs sync dependencies in a thread pool, a hop per request."""
    return cast(ApiContext, request.app.state.context)
