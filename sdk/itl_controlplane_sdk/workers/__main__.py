"""``python -m itl_controlplane_sdk.workers`` / ``itl-worker``: run one worker process."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from itl_controlplane_sdk.workers.runtime import run_worker
from itl_controlplane_sdk.workers.settings import WorkerSettings


def main() -> None:
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        sys.exit(f"invalid worker configuration: {problems}")
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s [" + settings.worker_id + "] %(message)s",
    )
    sys.exit(asyncio.run(run_worker(settings)))


if __name__ == "__main__":
    main()
