"""``python -m itl_controlplane_sdk.workers`` / ``itl-worker``: run one worker process."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

from pydantic import ValidationError

from itl_controlplane_sdk.contract.settings import WorkerSettings
from itl_controlplane_sdk.validation import describe
from itl_controlplane_sdk.workers.runtime import run_worker


def main() -> None:
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        sys.exit(f"invalid worker configuration: {describe(exc)}")
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s [" + settings.worker_id + "] %(message)s",
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        sys.exit(runner.run(run_worker(settings)))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where installed (the default on Linux): it cuts the worker's per-job CPU."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
