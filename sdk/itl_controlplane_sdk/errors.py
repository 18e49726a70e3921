"""The SDK's exceptions, in one tree.

::

    JobError
    ├── RetryableJobError          worth another attempt (a backend briefly down)
    ├── PermanentJobError          fails the same way on every attempt
    │   ├── ResourceNotFoundError      the named resource does not exist (API: 404)
    │   ├── UnsupportedActionError     the provider has no such action (API: 400); also a
    │   │                              NotImplementedError, as upstream providers raise
    │   ├── JobTimeoutError            ran longer than the worker's job timeout (API: 504)
    │   └── UndecodableJobError        a message that is no job envelope (dead-lettered); also
    │                                  a ValueError
    ├── JobFailedError             an offloaded job finished failed or cancelled
    ├── JobSubmissionError         the broker refused a job (no queue, or a nacked publish)
    └── BrokerUnavailableError     the broker cannot be reached; also a ConnectionError

Providers raise ``RetryableJobError`` or ``PermanentJobError`` (or a subclass). Other exceptions
are classified by type (``is_retryable``): connection and OS-level errors are retryable,
everything else is permanent, so a bug fails fast instead of burning retries. The HTTP API's
``ApiError`` is not part of this tree: it is an answer the API renders, not a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from itl_controlplane_sdk.workers.results import JobStatus


class JobError(Exception):
    """Base of the job system's exceptions."""


class RetryableJobError(JobError):
    """The job may succeed if tried again later."""


class PermanentJobError(JobError):
    """The job will fail the same way on every attempt."""


class ResourceNotFoundError(PermanentJobError):
    """The resource an operation names does not exist (the API answers 404)."""


class UnsupportedActionError(PermanentJobError, NotImplementedError):
    """The provider implements no such action (the API answers 400 ``UnsupportedAction``)."""


class JobTimeoutError(PermanentJobError):
    """The job ran longer than the worker's job timeout."""


class UndecodableJobError(PermanentJobError, ValueError):
    """A message that is not a valid job envelope; its text says what is wrong."""


class JobFailedError(JobError):
    """An offloaded job finished with status failed or cancelled."""

    def __init__(self, job_id: str, status: JobStatus, error: str | None) -> None:
        super().__init__(f"job {job_id} {status.value}: {error or 'no reason given'}")
        self.job_id = job_id
        self.status = status
        self.error = error


class JobSubmissionError(JobError):
    """The broker did not accept a job (no queue would take it, or it nacked the publish)."""


class BrokerUnavailableError(JobError, ConnectionError):
    """The broker cannot be reached; nothing was published."""


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed attempt is worth repeating (see the module docstring)."""
    if isinstance(exc, RetryableJobError):
        return True
    if isinstance(exc, PermanentJobError):
        return False
    return isinstance(exc, ConnectionError | TimeoutError)
