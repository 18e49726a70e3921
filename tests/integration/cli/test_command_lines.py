"""The entry points behave like the tools users know: --help, flags over variables, clear errors.

Each test runs the installed console script as a process, as a user or a container would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from itl_harness.workers import free_port, stop_gracefully

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
ENTRY_POINTS = ["itl-worker", "itl-api", "workerpool-operator"]
# Variables a developer's shell may carry would change what these tests see.
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("API_", "AUTH_", "WORKERPOOL_OPERATOR_", "HEALTH_CHECK_", "LOG_"))
}


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**CLEAN_ENV, **env},
    )


@pytest.mark.parametrize("command", ENTRY_POINTS)
def test_help_lists_the_flags_with_their_variables(command: str) -> None:
    result = run(command, "--help")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {command}")
    assert "--log-level" in result.stdout
    assert "(env " in result.stdout


@pytest.mark.parametrize("command", ENTRY_POINTS)
def test_an_unknown_argument_is_refused(command: str) -> None:
    result = run(command, "--prot", "9000")

    assert result.returncode == 2
    assert "unrecognized arguments: --prot 9000" in result.stderr


@pytest.mark.parametrize(
    ("command", "args", "env", "message"),
    [
        (
            "itl-api",
            ["--port", "70000"],
            {},
            "itl-api: invalid API configuration: --port: Input should be less than or equal"
            " to 65535",
        ),
        (
            "itl-api",
            [],
            {},
            "AUTH_MODE=oidc (the default) needs AUTH_ISSUER and AUTH_AUDIENCE; set AUTH_MODE=none",
        ),
        (
            "itl-worker",
            [],
            {"MAX_CONCURRENT_JOBS": "0"},
            "itl-worker: invalid worker configuration: MAX_CONCURRENT_JOBS: Input should be"
            " greater than or equal to 1",
        ),
        (
            "workerpool-operator",
            [],
            {"WORKERPOOL_OPERATOR_METRICS_PORT": "-1"},
            "workerpool-operator: invalid operator configuration: "
            "WORKERPOOL_OPERATOR_METRICS_PORT: Input should be greater than or equal to 0",
        ),
        (
            "workerpool-operator",
            ["--log-level", "loud"],
            {},
            "argument --log-level: invalid choice: 'LOUD'",
        ),
    ],
)
def test_invalid_settings_end_with_one_line_naming_the_source(
    command: str, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run(command, *args, **env)

    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def api_on_flag_port(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BIN / "itl-api"),
                "--port",
                str(port),
                "--log-level",
                "debug",
                "--auth-mode",
                "none",
            ],
            env={**CLEAN_ENV, "API_PORT": str(free_port())},  # the flag wins
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield port, log
    finally:
        stop_gracefully(process, 15)


def test_api_binds_the_port_its_flag_names_on_loopback(
    api_on_flag_port: tuple[int, Path],
) -> None:
    port, log = api_on_flag_port
    deadline = time.monotonic() + 30
    status: object = None
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code
            break
        except httpx.HTTPError as exc:
            status = exc
            time.sleep(0.1)

    assert status == 200, log.read_text()
    # One line shape for the SDK's and uvicorn's records alike.
    assert f"INFO uvicorn.error Uvicorn running on http://127.0.0.1:{port}" in log.read_text()
