"""Turning a provider failure into an HTTP status and ARM error code.

The same mapping serves both modes: in-process the API sees the provider's exception, with
offloading it sees the worker's error text (``"ResourceNotFoundError: resource ... not found"``),
so classification works on the exception type's name that starts the text. A failure is the
provider's answer, not the API's fault: it maps to a 4xx, except a timeout (504) and a
provider backend that is briefly down (503 with Retry-After), both listed in docs/api.md.
In-process, an exception that is neither a permanent job error nor bad input (ValueError,
TypeError) is a provider bug and answers 500.
"""

from __future__ import annotations

from itl_controlplane_sdk.api.errors import ApiError
from itl_controlplane_sdk.errors import (
    PermanentJobError,
    ResourceNotFoundError,
    UnsupportedActionError,
    is_retryable,
)
from itl_controlplane_sdk.workers.results import JobStatus


def from_job_error(status: JobStatus, error: str | None, *, retry_after: int) -> ApiError:
    """The error answer of a job that finished ``failed`` or ``cancelled``."""
    text = error or "no reason given"
    lowered = text.lower()
    if status is JobStatus.CANCELLED:
        return ApiError(409, "OperationCancelled", text)
    if "timed out" in lowered or "jobtimeouterror" in lowered:
        return ApiError(504, "OperationTimedOut", text)
    if text.startswith(f"{ResourceNotFoundError.__name__}:"):
        return ApiError(404, "ResourceNotFound", text)
    if text.startswith((f"{UnsupportedActionError.__name__}:", "NotImplementedError:")):
        return ApiError(400, "UnsupportedAction", text)
    if lowered.startswith("gave up after"):
        return ApiError(503, "ProviderUnavailable", text, headers={"Retry-After": str(retry_after)})
    return ApiError(400, "OperationFailed", text)


def from_exception(exc: Exception, *, retry_after: int) -> ApiError:
    """The error answer of a provider that raised in-process."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, LookupError | ResourceNotFoundError):
        return ApiError(404, "ResourceNotFound", text)
    if isinstance(exc, TimeoutError):
        return ApiError(504, "OperationTimedOut", text)
    if is_retryable(exc):
        return ApiError(503, "ProviderUnavailable", text, headers={"Retry-After": str(retry_after)})
    if isinstance(exc, PermanentJobError | NotImplementedError | ValueError | TypeError):
        return from_job_error(JobStatus.FAILED, text, retry_after=retry_after)
    return ApiError(500, "ProviderError", f"the provider failed unexpectedly ({text})")
