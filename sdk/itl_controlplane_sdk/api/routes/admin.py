"""Dead-letter queue administration, behind a bearer token (``ADMIN_TOKEN``).

Without ``ADMIN_TOKEN`` the endpoints answer 403: an operator must opt in. The token is
compared in constant time so response timing does not leak how much of a guess was right.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from itl_controlplane_sdk.api.auth import Caller
from itl_controlplane_sdk.api.context import ApiContext, get_context
from itl_controlplane_sdk.api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from itl_controlplane_sdk.errors import BrokerUnavailableError, JobSubmissionError

bearer = HTTPBearer(auto_error=False, description="ADMIN_TOKEN")

Context = Annotated[ApiContext, Depends(get_context)]


ADMIN = Caller(subject="admin-token", issuer=None)
"""Who the audit log names for requests with a valid ADMIN_TOKEN."""


async def require_admin(
    request: Request,
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiContext:
    token = context.settings.admin_token
    if token is None:
        raise ApiError(403, "AdminDisabled", "admin endpoints are disabled (ADMIN_TOKEN unset)")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise ApiError(
            401,
            "Unauthorized",
            "a valid admin bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.caller = ADMIN
    if context.broker is None:
        raise ApiError(
            404, "OffloadingDisabled", "there is no job queue (OFFLOADING_ENABLED=false)"
        )
    return context


Admin = Annotated[ApiContext, Depends(require_admin)]

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses={
        **ERROR_RESPONSES,
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token"},
        403: {"model": ErrorResponse, "description": "ADMIN_TOKEN is not configured"},
        409: {"model": ErrorResponse, "description": "A dead letter could not be redriven"},
    },
)


class DeadLetters(BaseModel):
    value: list[dict[str, Any]]
    count: int


class Redriven(BaseModel):
    redriven: int


Limit = Annotated[int, Query(ge=1, le=10_000, description="At most this many messages")]


@router.get("/dlq", response_model=DeadLetters, summary="List dead-lettered jobs")
async def list_dead_letters(context: Admin, limit: Limit = 100) -> DeadLetters:
    assert context.broker is not None
    queue = context.broker.require()
    try:
        messages = await queue.get_dlq_messages(limit)
    except (BrokerUnavailableError, ConnectionError) as exc:
        raise context.broker.unavailable(str(exc)) from None
    return DeadLetters(value=messages, count=len(messages))


@router.post("/dlq/redrive", response_model=Redriven, summary="Move dead-lettered jobs back")
async def redrive_dead_letters(context: Admin, limit: Limit | None = None) -> Redriven:
    assert context.broker is not None
    queue = context.broker.require()
    try:
        moved = await queue.redrive_dlq(limit)
    except JobSubmissionError as exc:
        raise ApiError(409, "RedriveFailed", f"redrive stopped: {exc}") from None
    except (BrokerUnavailableError, ConnectionError) as exc:
        raise context.broker.unavailable(str(exc)) from None
    return Redriven(redriven=moved)
