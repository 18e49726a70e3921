"""Status and cancellation of offloaded operations: ``/operations/{job_id}``.

Any replica answers for any job: the status comes from the results stream (terminal results
and ``processing`` markers), never from this process's memory of what it submitted. A job
with neither is ``pending``; once it has waited longer than ``JOB_TIMEOUT`` without starting,
the replica that notices records it as failed (timed out), through the same mechanism as a
cancel, so every replica and every worker agree on it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from itl_controlplane_sdk import tracing
from itl_controlplane_sdk.api import failures
from itl_controlplane_sdk.api.access import Authenticated, job_subscription
from itl_controlplane_sdk.api.context import ApiContext, get_context
from itl_controlplane_sdk.api.errors import (
    AUTH_RESPONSES,
    ERROR_RESPONSES,
    ApiError,
    ErrorDetail,
    ErrorResponse,
)
from itl_controlplane_sdk.errors import BrokerUnavailableError, JobSubmissionError
from itl_controlplane_sdk.workers.envelope import job_id_time
from itl_controlplane_sdk.workers.queue import JobQueue
from itl_controlplane_sdk.workers.results import JobResult, JobStatus

router = APIRouter(
    prefix="/operations", responses={**ERROR_RESPONSES, **AUTH_RESPONSES}, tags=["operations"]
)

CLOCK_SKEW_SECONDS = 60.0
SETTLE_SECONDS = 5.0
"""How long to wait for the winning terminal result after recording a cancel or expiry."""
LOOKUP_SECONDS = 2.0
"""Longest a status read without ``wait`` spends looking a job up in the results history."""

Context = Annotated[ApiContext, Depends(get_context)]
JobId = Annotated[str, Path(description="The job id from the 202 answer", max_length=64)]


class OperationStatus(BaseModel):
    id: str
    name: str
    status: Literal["pending", "processing", "completed", "failed", "cancelled"]
    start_time: datetime
    end_time: datetime | None = None
    result: dict[str, Any] | None = None
    error: ErrorDetail | None = None


def _status(
    job_id: str, submitted: float, result: JobResult | None, started: bool
) -> dict[str, Any]:
    status = OperationStatus(
        id=f"/operations/{job_id}",
        name=job_id,
        status="processing" if started else "pending",
        start_time=datetime.fromtimestamp(submitted, UTC),
    )
    if result is not None:
        status.status = result.status.value
        status.end_time = result.timestamp
        status.result = result.result
        if result.status is not JobStatus.COMPLETED:
            failure = failures.from_job_error(result.status, result.error, retry_after=0)
            status.error = ErrorDetail(code=failure.code, message=failure.message)
    return status.model_dump(mode="json", exclude_none=True)


def _known_job(
    context: ApiContext, http: Request, caller: Authenticated, job_id: str
) -> tuple[JobQueue, float]:
    """The queue and the submission time of a job id this API could have issued the caller.

    Another subscription's job answers exactly like an unknown id: 404, same text.
    """
    http.state.job_id = job_id
    tracing.annotate_current(**{"itl.job.id": job_id})
    if context.broker is None:
        raise ApiError(
            404,
            "OperationNotFound",
            "offloading is disabled (OFFLOADING_ENABLED=false): operations finish synchronously",
        )
    submitted = job_id_time(job_id)
    now = time.time()
    http.state.subscription = job_subscription(caller, job_id)
    if (
        http.state.subscription is None
        or submitted is None
        or submitted > now + CLOCK_SKEW_SECONDS
        or submitted < now - context.settings.result_retention
    ):
        raise ApiError(
            404,
            "OperationNotFound",
            f"no operation {job_id!r} in the caller's subscriptions: not a job id, or older "
            "than the result retention",
        )
    return context.broker.require(), submitted


async def _record(
    context: ApiContext, queue: JobQueue, job_id: str, status: JobStatus, reason: str
) -> JobResult | None:
    """Records a cancel or expiry, then returns whichever terminal result won."""
    try:
        await queue.cancel_job(job_id, reason, status=status)
        return await queue.get_result(job_id, timeout=SETTLE_SECONDS)
    except (BrokerUnavailableError, JobSubmissionError) as exc:
        assert context.broker is not None
        raise context.broker.unavailable(str(exc)) from None


async def _current(
    context: ApiContext, queue: JobQueue, job_id: str, submitted: float, *, wait: float
) -> tuple[JobResult | None, bool]:
    try:
        if wait > 0:
            result = await queue.get_result(job_id, timeout=wait)
        else:
            result = await queue.find_result(job_id, timeout=LOOKUP_SECONDS)
        started = result is None and await queue.get_job_progress(job_id) is not None
    except BrokerUnavailableError as exc:
        assert context.broker is not None
        raise context.broker.unavailable(str(exc)) from None
    timeout = context.settings.job_timeout
    if result is None and not started and time.time() > submitted + timeout:
        reason = f"timed out: no worker started the job within JOB_TIMEOUT={timeout:g}s"
        result = await _record(context, queue, job_id, JobStatus.FAILED, reason)
    return result, started


@router.get(
    "/{job_id}",
    name="get_operation",
    response_model=OperationStatus,
    response_model_exclude_none=True,
    summary="Status (and result) of an offloaded operation",
)
async def get_operation(
    context: Context,
    http: Request,
    caller: Authenticated,
    job_id: JobId,
    wait: Annotated[
        bool, Query(description="Wait up to JOB_TIMEOUT for the operation to finish")
    ] = False,
    api_version: Annotated[str | None, Query(alias="api-version")] = None,
) -> dict[str, Any]:
    queue, submitted = _known_job(context, http, caller, job_id)
    timeout = context.settings.job_timeout if wait else 0.0
    result, started = await _current(context, queue, job_id, submitted, wait=timeout)
    return _status(job_id, submitted, result, started)


@router.post(
    "/{job_id}/cancel",
    response_model=OperationStatus,
    response_model_exclude_none=True,
    responses={409: {"model": ErrorResponse, "description": "The job already started or ended"}},
    summary="Cancel an operation that has not started",
)
async def cancel_operation(
    context: Context,
    http: Request,
    caller: Authenticated,
    job_id: JobId,
    api_version: Annotated[str | None, Query(alias="api-version")] = None,
) -> dict[str, Any]:
    queue, submitted = _known_job(context, http, caller, job_id)
    result, started = await _current(context, queue, job_id, submitted, wait=0.0)
    if result is not None:
        raise ApiError(
            409, "OperationNotCancellable", f"operation {job_id} already {result.status.value}"
        )
    if started:
        raise ApiError(409, "OperationNotCancellable", f"operation {job_id} is running on a worker")
    result = await _record(context, queue, job_id, JobStatus.CANCELLED, "cancelled by request")
    return _status(job_id, submitted, result, False)
