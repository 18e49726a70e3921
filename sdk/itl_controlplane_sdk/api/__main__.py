"""``python -m itl_controlplane_sdk.api`` / ``itl-api``: serve the API with uvicorn."""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

import uvicorn

from itl_controlplane_sdk import tracing
from itl_controlplane_sdk.api.app import create_app
from itl_controlplane_sdk.api.settings import ApiSettings
from itl_controlplane_sdk.cli import Flag, load_settings
from itl_controlplane_sdk.logs import configure_logging

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

FLAGS = (
    Flag("--host", "host"),
    Flag("--port", "port", type=int),
    Flag("--log-level", "log_level", type=str.upper, choices=LOG_LEVELS),
    Flag("--log-format", "log_format", choices=("plain", "json")),
    Flag("--job-timeout", "job_timeout", type=float),
    Flag("--offloading", "offloading_enabled", switch=True),
    Flag("--auth-mode", "auth_mode", choices=("oidc", "none")),
)


def main(argv: Sequence[str] | None = None) -> None:
    settings = load_settings(
        ApiSettings,
        prog="itl-api",
        description="Serve the ARM-style HTTP API (providers in-process, or offloaded to workers).",
        flags=FLAGS,
        what="API",
        argv=argv,
    )
    secrets = [settings.rabbitmq_url.get_secret_value()]
    if settings.admin_token is not None:
        secrets.append(settings.admin_token.get_secret_value())
    configure_logging(settings.log_level, fmt=settings.log_format, secrets=secrets)
    try:
        tracing.configure("itl-api")
    except ValueError as exc:
        sys.exit(f"invalid API configuration: {exc}")
    app = create_app(settings)
    # What exists now (modules, routers, pydantic schemas: about 77 000 objects) lives as long
    # as the process: move it out of the collector's sight, as the worker does, so a full
    # collection only walks what requests allocate. Walking it all took 19 ms at load average
    # 4, longer on a busier machine: a pause every in-flight request and every result the
    # process waits for sits through (docs/performance.md, "Where the half-peak tail goes").
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
