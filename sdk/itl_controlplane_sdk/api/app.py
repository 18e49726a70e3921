"""``create_app``: the FastAPI application of the ITL ControlPlane API.

Dependencies are passed in, with defaults built from ``ApiSettings``: tests hand in their own
provider registry or JobQueue; production builds both from the environment. Nothing is read
from the environment at import time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from itl_controlplane_sdk import tracing
from itl_controlplane_sdk.api.audit import AuditLog
from itl_controlplane_sdk.api.auth import TokenVerifier
from itl_controlplane_sdk.api.broker import BrokerLink
from itl_controlplane_sdk.api.context import ApiContext
from itl_controlplane_sdk.api.errors import install_handlers
from itl_controlplane_sdk.api.limits import BodySizeLimit
from itl_controlplane_sdk.api.metrics import ApiMetrics, RequestMetrics
from itl_controlplane_sdk.api.routes import admin, operations, resources, system
from itl_controlplane_sdk.api.settings import ApiSettings
from itl_controlplane_sdk.providers.loading import load_providers
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry
from itl_controlplane_sdk.workers.queue import JobQueue

log = logging.getLogger(__name__)

DESCRIPTION = """\
ARM-style resource API of the ITL ControlPlane. With `OFFLOADING_ENABLED=true` operations
become jobs for the worker fleet: `202 Accepted` with `Location`/`Azure-AsyncOperation`
headers pointing at `/operations/{job_id}`, or `?wait=true` to wait up to `JOB_TIMEOUT`.
Errors have the ARM shape `{"error": {"code", "message"}}`. Every ARM and operations route
needs an OpenID Connect bearer token (`AUTH_MODE=oidc`) granting the subscription. See
docs/api.md and docs/security.md.
"""


def default_queue(settings: ApiSettings) -> JobQueue:
    return JobQueue(
        settings.rabbitmq_url.get_secret_value(),
        queue_name=settings.job_queue,
        bindings=settings.job_bindings,
        declare_topology=settings.declare_topology,
        result_retention=settings.result_retention,
        tls=settings.broker_tls,
        queue_type=settings.queue_type,
        results_protocol=settings.results_protocol,
        results_stream_port=settings.results_stream_port,
    )


def create_app(
    settings: ApiSettings | None = None,
    *,
    providers: ResourceProviderRegistry | None = None,
    job_queue: JobQueue | None = None,  # None: built from settings when offloading
) -> FastAPI:
    settings = settings or ApiSettings()
    if providers is None:
        providers = ResourceProviderRegistry()
        load_providers(providers, settings.providers)
    broker = None
    if settings.offloading_enabled:
        broker = BrokerLink(job_queue or default_queue(settings), retry_after=settings.retry_after)
    verifier = None
    if settings.auth_mode == "oidc":
        verifier = TokenVerifier(settings)
    else:
        log.warning(
            "AUTH_MODE=none: AUTHENTICATION IS OFF. Anyone who reaches this port can create, "
            "change and delete resources in every subscription and read every operation. "
            "Use this for local development only; set AUTH_MODE=oidc with AUTH_ISSUER and "
            "AUTH_AUDIENCE anywhere else."
        )
    context = ApiContext(
        settings=settings,
        providers=providers,
        metrics=ApiMetrics(),
        broker=broker,
        verifier=verifier,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if broker is not None:
            await broker.start()
        try:
            yield
        finally:
            if broker is not None:
                await broker.stop()

    app = FastAPI(
        title="ITL ControlPlane API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.context = context
    install_handlers(app)
    for module in (resources, operations, admin, system):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=context.metrics, router=app.router)
    tracing.instrument_fastapi(app)
    app.add_middleware(AuditLog)  # outermost: refusals by any layer are recorded too
    return app
