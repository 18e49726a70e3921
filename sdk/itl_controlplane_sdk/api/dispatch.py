"""Carrying out one resource operation: in this process, or as a job for the worker fleet.

In-process (``OFFLOADING_ENABLED=false``) the provider runs under ``JOB_TIMEOUT`` and the
answer is the resource (201 for PUT, 200 otherwise). Offloading, the operation is published
as a job with a deadline of now + ``JOB_TIMEOUT`` and the answer is 202 Accepted pointing at
``/operations/{job_id}``; with ``wait`` the API instead waits for the worker's result and
answers like the in-process mode, or 202 if the result did not come in time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from itl_controlplane_sdk import tracing
from itl_controlplane_sdk.api import failures
from itl_controlplane_sdk.api.access import caller_of, job_caller
from itl_controlplane_sdk.api.arm import drop_none
from itl_controlplane_sdk.api.context import ApiContext
from itl_controlplane_sdk.api.errors import ApiError
from itl_controlplane_sdk.errors import BrokerUnavailableError, JobSubmissionError
from itl_controlplane_sdk.models import ProvisioningState, ResourceRequest
from itl_controlplane_sdk.workers.envelope import Operation
from itl_controlplane_sdk.workers.offloading import OPERATION_PRIORITY
from itl_controlplane_sdk.workers.results import JobStatus

SUCCESS_STATUS = {"create": 201, "get": 200, "list": 200, "delete": 200, "action": 200}
WAIT_BY_DEFAULT = {"get", "list"}


def require_provider(context: ApiContext, request: ResourceRequest) -> None:
    namespace, resource_type = request.provider_namespace, request.resource_type
    if not context.providers.has_provider(namespace, resource_type):
        known = ", ".join(context.providers.list_providers()) or "none"
        raise ApiError(
            404,
            "NoRegisteredProviderFound",
            f"no resource provider is registered for {namespace}/{resource_type} "
            f"(registered: {known})",
            target=f"{namespace}/{resource_type}",
        )


async def _run_in_process(
    context: ApiContext, operation: Operation, request: ResourceRequest
) -> Any:
    registry = context.providers
    namespace, resource_type = request.provider_namespace, request.resource_type
    match operation:
        case "create":
            return await registry.create_or_update_resource(namespace, resource_type, request)
        case "get":
            return await registry.get_resource(namespace, resource_type, request)
        case "list":
            return await registry.list_resources(namespace, resource_type, request)
        case "delete":
            return await registry.delete_resource(namespace, resource_type, request)
        case "action":
            return await registry.execute_action(namespace, resource_type, request)


async def in_process(
    context: ApiContext, operation: Operation, request: ResourceRequest
) -> JSONResponse:
    settings = context.settings
    try:
        async with asyncio.timeout(settings.job_timeout):
            response = await _run_in_process(context, operation, request)
    except TimeoutError:
        raise ApiError(
            504,
            "OperationTimedOut",
            f"the operation did not finish within JOB_TIMEOUT={settings.job_timeout:g}s",
        ) from None
    except Exception as exc:
        raise failures.from_exception(exc, retry_after=settings.retry_after) from exc
    body: dict[str, Any] = response.model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=SUCCESS_STATUS[operation])


def operation_url(http: Request, job_id: str, api_version: str) -> str:
    return f"{http.url_for('get_operation', job_id=job_id)}?api-version={api_version}"


def accepted(
    context: ApiContext, http: Request, operation: Operation, request: ResourceRequest, job_id: str
) -> JSONResponse:
    location = operation_url(http, job_id, request.api_version)
    body: dict[str, Any] = {
        "id": request.resource_id,
        "name": request.resource_name,
        "type": f"{request.provider_namespace}/{request.resource_type}",
        "provisioning_state": ProvisioningState.ACCEPTED.value,
        "job_id": job_id,
        "status": JobStatus.PENDING.value,
        "operation": location,
    }
    if operation == "list":
        body = {"value": [], "job_id": job_id, "status": JobStatus.PENDING.value}
    return JSONResponse(
        body,
        status_code=202,
        headers={
            "Location": location,
            "Azure-AsyncOperation": location,
            "Retry-After": str(context.settings.poll_interval),
        },
    )


async def offloaded(
    context: ApiContext,
    http: Request,
    operation: Operation,
    request: ResourceRequest,
    *,
    wait: bool | None,
) -> JSONResponse:
    assert context.broker is not None
    settings = context.settings
    queue = context.broker.require()
    deadline = datetime.now(UTC) + timedelta(seconds=settings.job_timeout)
    try:
        job_id = await queue.submit_job(
            request.provider_namespace,
            request.resource_type,
            operation,
            request,
            priority=OPERATION_PRIORITY[operation],
            deadline=deadline,
            caller=job_caller(caller_of(http)),
        )
        tracing.annotate_current(**{"itl.job.id": job_id})
    except BrokerUnavailableError as exc:
        raise context.broker.unavailable(str(exc)) from None
    except JobSubmissionError as exc:
        raise context.broker.unavailable(str(exc)) from None
    http.state.job_id = job_id  # for the audit log
    context.metrics.jobs_submitted.labels(operation).inc()
    if not (wait if wait is not None else operation in WAIT_BY_DEFAULT):
        return accepted(context, http, operation, request, job_id)
    try:
        result = await queue.get_result(job_id, timeout=settings.job_timeout)
    except Exception:
        result = None  # the broker went away while waiting: the job is safe, poll for it
    if result is None:
        return accepted(context, http, operation, request, job_id)
    if result.status is not JobStatus.COMPLETED:
        raise failures.from_job_error(result.status, result.error, retry_after=settings.retry_after)
    body = drop_none(dict(result.result or {}))
    return JSONResponse(body, status_code=SUCCESS_STATUS[operation])


async def dispatch(
    context: ApiContext,
    http: Request,
    operation: Operation,
    request: ResourceRequest,
    *,
    wait: bool | None,
) -> JSONResponse:
    require_provider(context, request)
    if context.broker is None:
        return await in_process(context, operation, request)
    return await offloaded(context, http, operation, request, wait=wait)
