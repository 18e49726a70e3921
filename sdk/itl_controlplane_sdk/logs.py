"""One logging set-up for the project's processes: the worker, the API server and the operator.

Every module logs through ``logging.getLogger(__name__)``, so a line names the code that wrote
it and a package's level can be tuned alone (``itl_controlplane_sdk.workers``,
``workerpool_operator.autoscaler``). The worker and the API server call ``configure_logging``;
the operator lets Kopf install its handler (its formats add the Kubernetes object a line is
about, and its ``json`` format matches ours) and applies the same level rules through
``set_levels``.

``LOG_FORMAT=json`` writes one JSON object per line. Every line carries the process's fields
(a worker's ``worker_id`` and ``pool``), and every line written while a job runs carries
``job_id`` and, with tracing on, the job's ``trace_id``: one query finds a job's lines across
pods, and the trace they belong to. Known secrets (the broker URL's password) are scrubbed from
the finished line, exception text and tracebacks included, in both formats.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from itl_controlplane_sdk import tracing
from itl_controlplane_sdk.redaction import scrub

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FIELDS = "{levelname}{name}{message}"
JSON_RENAMES = {"levelname": "level", "name": "logger"}

LogFormat = Literal["plain", "json"]

_job_id: ContextVar[str | None] = ContextVar("itl_job_id", default=None)


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Lines logged inside the block (by the SDK or a provider) carry ``job_id``/``trace_id``."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class _Context(logging.Filter):
    """Adds the process's fields and the running job's ids to every record."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__()
        self._fields = dict(fields)

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self._fields.items():
            setattr(record, key, value)
        job_id = _job_id.get()
        if job_id is not None:
            record.job_id = job_id
            trace_id = tracing.current_trace_id()
            if trace_id is not None:
                record.trace_id = trace_id
        return True


class _Scrubbed(logging.Formatter):
    """Formats with ``inner``, then removes every secret (and its password) from the line."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets = [secret for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        line = self._inner.format(record)
        for secret in self._secrets:
            line = scrub(line, secret) if "://" in secret else line.replace(secret, "***")
        return line


def _formatter(fmt: LogFormat, prefix: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(JSON_FIELDS, style="{", rename_fields=JSON_RENAMES, timestamp="time")
    return logging.Formatter(LINE_FORMAT.replace("%(message)s", prefix + "%(message)s"))


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so a second call replaces it."""


def configure_logging(
    level: str,
    *,
    context: str | None = None,
    quiet: Iterable[str] = (),
    fmt: LogFormat = "plain",
    fields: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """One line per record on stderr, ``plain`` or ``json`` (see the module docstring).

    ``plain``: time, level, logger, ``[context]`` (a worker id), message. ``fields`` are added
    to every record (JSON keys); ``secrets`` never appear in a line. Third-party loggers that
    keep their own handlers (uvicorn's) are sent here too, so every line has one shape.
    """
    prefix = f"[{context.replace('%', '%%')}] " if context else ""
    handler = _LineHandler(sys.stderr)
    handler.setFormatter(_Scrubbed(_formatter(fmt, prefix), secrets))
    handler.addFilter(_Context(fields or {}))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _LineHandler)]
    root.addHandler(handler)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    set_levels(level, quiet=quiet)


def set_levels(level: str, *, quiet: Iterable[str] = ()) -> None:
    """``level`` for everything; the ``quiet`` loggers (chatty per event) WARNING unless DEBUG."""
    logging.getLogger().setLevel(level)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
