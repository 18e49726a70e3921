"""``python -m itl_controlplane_sdk.workers`` / ``itl-worker``: run one worker process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence

from itl_controlplane_sdk import tracing
from itl_controlplane_sdk.cli import Flag, load_settings
from itl_controlplane_sdk.contract.settings import WorkerSettings
from itl_controlplane_sdk.logs import configure_logging
from itl_controlplane_sdk.workers.runtime import run_worker

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

FLAGS = (
    Flag("--worker-id", "worker_id"),
    Flag("--pool", "pool_name"),
    Flag("--queue", "job_queue"),
    Flag("--max-concurrent-jobs", "max_concurrent_jobs", type=int),
    Flag("--job-timeout", "job_timeout", type=float),
    Flag("--host", "health_check_host"),
    Flag("--port", "health_check_port", type=int),
    Flag("--log-level", "log_level", type=str.upper, choices=LOG_LEVELS),
    Flag("--log-format", "log_format", choices=("plain", "json")),
)


def main(argv: Sequence[str] | None = None) -> None:
    settings = load_settings(
        WorkerSettings,
        prog="itl-worker",
        description="Run one worker: take jobs from RabbitMQ, run the providers, publish results.",
        flags=FLAGS,
        what="worker",
        argv=argv,
    )
    configure_logging(
        settings.log_level,
        context=settings.worker_id,
        fmt=settings.log_format,
        fields={"worker_id": settings.worker_id, "pool": settings.pool_name},
        secrets=[settings.rabbitmq_url.get_secret_value()],
    )
    try:
        tracing.configure("itl-worker")
    except ValueError as exc:
        sys.exit(f"invalid worker configuration: {exc}")
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
