"""Exceptions of the job system.

Providers raise ``RetryableJobError`` for failures worth another attempt (a backend that is
briefly down) and ``PermanentJobError`` for failures that will repeat (bad input). Other
exceptions are classified by type: connection and OS-level errors are retryable, everything
else is permanent, so a bug fails fast instead of burning retries.
"""

from __future__ import annotations


class JobError(Exception):
    """Base of the job system's exceptions."""


class RetryableJobError(JobError):
    """The job may succeed if tried again later."""


class PermanentJobError(JobError):
    """The job will fail the same way on every attempt."""


class ResourceNotFoundError(PermanentJobError):
    """The resource an operation names does not exist (the API answers 404)."""


class JobTimeoutError(PermanentJobError):
    """The job ran longer than the worker's job timeout."""


class JobSubmissionError(JobError):
    """The broker did not accept a job (no queue would take it, or it nacked the publish)."""


class BrokerUnavailableError(JobError, ConnectionError):
    """The broker cannot be reached; nothing was published."""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryableJobError):
        return True
    if isinstance(exc, PermanentJobError):
        return False
    return isinstance(exc, ConnectionError | TimeoutError)
