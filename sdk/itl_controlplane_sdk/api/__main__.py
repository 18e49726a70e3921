"""``python -m itl_controlplane_sdk.api`` / ``itl-api``: serve the API with uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from itl_controlplane_sdk.api.app import create_app
from itl_controlplane_sdk.api.settings import ApiSettings
from itl_controlplane_sdk.validation import describe


def main() -> None:
    try:
        settings = ApiSettings()
    except ValidationError as exc:
        sys.exit(f"invalid API configuration: {describe(exc)}")
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
