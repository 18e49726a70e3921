"""``/health``, ``/livez`` and ``/metrics``.

``/health`` is the readiness answer: 503 while an offloading API has no broker connection, so
Kubernetes routes clients to replicas that can take jobs. ``/livez`` stays 200 while the
process serves at all, so a broker outage does not restart every API pod.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from itl_controlplane_sdk.api.context import ApiContext, get_context
from itl_controlplane_sdk.api.metrics import CONTENT_TYPE

router = APIRouter(tags=["system"])

Context = Annotated[ApiContext, Depends(get_context)]


@router.get(
    "/health",
    summary="Readiness",
    responses={503: {"description": "Offloading and the broker is unreachable"}},
)
async def health(context: Context) -> JSONResponse:
    body: dict[str, Any] = {
        "status": "healthy",
        "offloading": context.broker is not None,
        "providers": context.providers.list_providers(),
    }
    if context.broker is not None:
        body["broker"] = "connected" if context.broker.is_up else "disconnected"
        if not context.broker.is_up:
            body["status"] = "unhealthy"
            return JSONResponse(body, status_code=503)
    return JSONResponse(body)


@router.get("/livez", summary="Liveness")
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(context: Context) -> Response:
    if context.broker is not None:
        context.metrics.broker_connected.set(1 if context.broker.is_up else 0)
    return Response(context.metrics.render(), media_type=CONTENT_TYPE)
