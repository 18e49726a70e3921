"""One logging set-up for the project's processes: the worker, the API server and the operator.

Every module logs through ``logging.getLogger(__name__)``, so a line names the code that wrote
it and a package's level can be tuned alone (``itl_controlplane_sdk.workers``,
``workerpool_operator.autoscaler``). The worker and the API server call ``configure_logging``;
the operator lets Kopf install its handler (its formats add the Kubernetes object a line is
about) and applies the same level rules through ``set_levels``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so a second call replaces it."""


def configure_logging(level: str, *, context: str | None = None, quiet: Iterable[str] = ()) -> None:
    """One line per record on stderr: time, level, logger, ``[context]`` (a worker id), message.

    Third-party loggers that keep their own handlers (uvicorn's) are sent here too, so every
    line of a process has one shape.
    """
    prefix = f"[{context.replace('%', '%%')}] " if context else ""
    handler = _LineHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(LINE_FORMAT.replace("%(message)s", prefix + "%(message)s"))
    )
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
