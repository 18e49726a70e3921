"""Reaching the services tests need, and the CI rule for when they are missing."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from itl_harness.rabbitmq_node import RABBITMQ_SCRIPT

REPO = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def unavailable(what: str, reason: str) -> None:
    if in_ci():
        pytest.fail(f"{what} unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"{what} unavailable: {reason} (start it with `make rabbitmq-up`)")


def require_rabbitmq(url: str) -> None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            pass
    except OSError as exc:
        unavailable("RabbitMQ", f"{parts.hostname}:{parts.port or 5672}: {exc}")


def require_rabbitmq_stream(url: str, port: int) -> None:
    """The stream protocol port of the broker at ``url`` (``RESULTS_PROTOCOL=stream``)."""
    host = urlsplit(url).hostname or "127.0.0.1"
    try:
        with socket.create_connection((host, port), 2):
            pass
    except OSError as exc:
        unavailable("RabbitMQ stream protocol", f"{host}:{port}: {exc}")


def rabbitmqctl(*args: str, timeout: float = 120) -> str:
    """Runs rabbitmqctl against the project's local broker (see tools/rabbitmq/rabbitmq.sh)."""
    done = subprocess.run(
        ["bash", str(RABBITMQ_SCRIPT), "ctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout
