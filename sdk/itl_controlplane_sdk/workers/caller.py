"""Who asked for the job a provider is running: ``current_caller()``.

The API puts the caller's verified identity (subject and issuer, never a credential) into the
job envelope. ``ProviderWorker`` makes it visible to the provider for the duration of the
operation through a context variable, so providers can record or check who acted without a
change to the provider interface. ``None`` for jobs submitted without one (SDK producers,
``AUTH_MODE=none``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from itl_controlplane_sdk.workers.envelope import JobCaller

_CALLER: ContextVar[JobCaller | None] = ContextVar("itl_job_caller", default=None)


def current_caller() -> JobCaller | None:
    """The caller of the job this task is running, if the submitter named one."""
    return _CALLER.get()


@contextlib.contextmanager
def running_for(caller: JobCaller | None) -> Iterator[None]:
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        _CALLER.reset(token)
