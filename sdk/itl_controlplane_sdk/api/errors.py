"""Errors in the Azure Resource Manager shape, and the handlers that produce them.

Every error response, including ones FastAPI or Starlette would render themselves (422
validation, 404 route, 405 method), has the body ``{"error": {"code", "message"}}`` so ARM
clients parse one shape. Codes follow ARM's where one exists (``MissingApiVersionParameter``,
``InvalidRequestContent``, ``ResourceNotFound``); the rest are ours and listed in docs/api.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    target: str | None = None


class ErrorResponse(BaseModel):
    """The ARM error envelope (documented on every route in the OpenAPI document)."""

    error: ErrorDetail


class ApiError(Exception):
    """An error answer: raise it anywhere in a route; the handler renders the ARM shape."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.target = target
        self.headers = dict(headers or {})


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    target: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(code=code, message=message, target=target)
    return JSONResponse(
        {"error": detail.model_dump(exclude_none=True)},
        status_code=status_code,
        headers=dict(headers or {}),
    )


def broker_unavailable(retry_after: int, why: str) -> ApiError:
    return ApiError(
        503,
        "ServiceUnavailable",
        f"the job broker is unreachable, nothing was submitted; retry later ({why})",
        headers={"Retry-After": str(retry_after)},
    )


def describe_validation_errors(errors: Sequence[Any]) -> tuple[str, str | None]:
    """One message naming every invalid field, and the first field as the ARM ``target``."""
    parts: list[str] = []
    first: str | None = None
    for err in errors:
        if err.get("type") == "json_invalid":
            first = first or "body"
            parts.append(f"body: not valid JSON ({err.get('ctx', {}).get('error', 'invalid')})")
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or "body"
        first = first or field
        parts.append(f"{field}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is invalid", first


def _validation_code(errors: Sequence[Any]) -> str:
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if loc[:2] == ("query", "api-version"):
            return (
                "MissingApiVersionParameter"
                if err.get("type") == "missing"
                else "InvalidApiVersionParameter"
            )
    return "InvalidRequestContent"


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status_code, exc.code, exc.message, target=exc.target, headers=exc.headers
    )


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    message, target = describe_validation_errors(errors)
    code = _validation_code(errors)
    if code == "MissingApiVersionParameter":
        message = "the api-version query parameter is required (e.g. ?api-version=2023-01-01)"
    return error_response(400, code, message, target=target)


_HTTP_CODES = {
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
}


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "BadRequest" if exc.status_code < 500 else "Error")
    return error_response(
        exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
    )


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "InternalServerError", "an unexpected error occurred")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request (the message names the field)"},
    404: {"model": ErrorResponse, "description": "Unknown provider, resource or operation"},
    413: {"model": ErrorResponse, "description": "Request body larger than API_MAX_BODY_BYTES"},
    503: {
        "model": ErrorResponse,
        "description": "Broker unreachable; nothing was submitted. Honour Retry-After.",
    },
}

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorResponse,
        "description": "No bearer token, or one that is expired, forged or for another "
        "audience or issuer; WWW-Authenticate says which",
    },
    403: {"model": ErrorResponse, "description": "The token does not grant the subscription"},
}
