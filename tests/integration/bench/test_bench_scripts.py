"""The benchmarks still run: a change to the SDK, the operator or bench/ cannot break
``make bench`` silently.

No figure is judged here: a run this short on a shared machine measures nothing worth
comparing. What the next person to run a benchmark would notice is checked instead: the
throughput benchmark ends well and every system in it produced real figures, and every
other script that imports the SDK or the operator still starts.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.services import REPO

pytestmark = pytest.mark.integration

BENCH = REPO / "bench"
SYSTEMS = ("raw", "raw-stream", "sdk")
"""The systems that run from the project's own environment; the peers need the virtualenv
of ``make bench-peers``, which the suite does not install."""
JOBS = 200
WARMUP = 50
IN_FLIGHT = 20
PACED_RATE = 100
PACED_SECONDS = 1.0
RUN_TIMEOUT = 180
"""About 15 s on the project's loaded 2 cores; a broker that stops answering is not waited out."""
SIDES = ("client", "worker", "broker")
SEGMENTS = ("segs_from_client", "segs_to_client", "segs_from_worker", "segs_to_worker")

OURS = ("itl_controlplane_sdk", "workerpool_operator", "itl_harness", "localcluster")


def importing_ours() -> list[str]:
    """bench/ modules that import the SDK, the operator or the harness, directly or through
    another bench/ module (the throughput benchmark's parts, say)."""
    sources = {path.stem: path.read_text() for path in BENCH.glob("*.py")}
    found: set[str] = set()
    while True:
        names = "|".join(re.escape(name) for name in (*OURS, *sorted(found)))
        imports = re.compile(rf"^(?:from|import) (?:{names})\b", re.MULTILINE)
        more = {stem for stem, text in sources.items() if imports.search(text)} - found
        if not more:
            return sorted(found)
        found |= more


IMPORTING = [name for name in importing_ours() if name != "throughput"]
SCRIPTS = [f"{name}.py" for name in IMPORTING if not name.startswith("_")]
HELPERS = [name for name in IMPORTING if name.startswith("_")]
"""Modules that scripts import or start (parts, workers, clients, providers): imported only."""

# One interpreter for every script, so the SDK and the operator are imported once (about
# 1.5-2 s in all instead of 6 s for a process per script).
HELP_EACH = textwrap.dedent(
    """
    import contextlib, importlib, io, json, runpy, sys
    bench, scripts, helpers = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
    sys.path.insert(0, bench)
    for name in helpers:
        importlib.import_module(name)
    outcome = {}
    for script in scripts:
        sys.argv = [script, "--help"]
        shown = io.StringIO()
        code = "returned without exiting"
        try:
            with contextlib.redirect_stdout(shown):
                runpy.run_path(f"{bench}/{script}", run_name="__main__")
        except SystemExit as exit:
            code = exit.code
        outcome[script] = {"exit": code, "help": shown.getvalue()}
    print(json.dumps(outcome))
    """
)


def test_every_bench_script_that_imports_the_sdk_or_operator_shows_its_help() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", HELP_EACH, str(BENCH), ",".join(SCRIPTS), ",".join(HELPERS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    elapsed = time.monotonic() - started

    assert len(SCRIPTS) >= 10, SCRIPTS  # the pattern above still finds them
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    for script in SCRIPTS:
        assert outcome[script]["exit"] == 0, (script, outcome[script])
        assert outcome[script]["help"].startswith(f"usage: {script}"), outcome[script]
    print(f"{len(SCRIPTS)} scripts' --help and {len(HELPERS)} helpers' imports: {elapsed:.1f}s")


def test_throughput_quick_run_gives_every_system_real_figures(
    rabbitmq_url: str, rabbitmq_stream_port: int, tmp_path: Path
) -> None:
    vhost = f"bench-smoke-{uuid.uuid4().hex[:8]}"
    figures_path = tmp_path / "figures.json"
    env = {
        **os.environ,
        "ITL_BENCH_RABBITMQ_PORT": str(urlsplit(rabbitmq_url).port or 5672),
        "ITL_BENCH_RABBITMQ_STREAM_PORT": str(rabbitmq_stream_port),
    }
    started = time.monotonic()
    done = run_to_the_end(
        [
            sys.executable,
            str(BENCH / "throughput.py"),
            f"--systems={','.join(SYSTEMS)}",
            "--rounds=1",
            f"--jobs={JOBS}",
            f"--warmup={WARMUP}",
            f"--concurrency={IN_FLIGHT}",
            f"--paced-seconds={PACED_SECONDS}",
            f"--paced-rates={PACED_RATE}",
            f"--vhost={vhost}",
            f"--json={figures_path}",
            # The floor's batching worker, so that its confirms and multiple acks are run too.
            "--raw-stream-batched",
        ],
        env,
    )
    elapsed = time.monotonic() - started

    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "| ours (JobQueue+ProviderWorker) |" in done.stdout
    figures = json.loads(figures_path.read_text())
    # Its own vhost, never the shared default one where other suites' queues take jobs.
    assert figures["header"]["vhost"] == vhost
    assert "raw-stream worker batches results and acks per iteration" in figures["header"]["shape"]
    assert set(figures["systems"]) == set(SYSTEMS)
    for system, got in figures["systems"].items():
        check_figures(system, got)
    print(f"throughput.py --systems {','.join(SYSTEMS)}: {elapsed:.1f}s")


def check_figures(system: str, got: dict[str, Any]) -> None:
    """Every round counted every job's latency, and each figure is a real number."""
    assert got["peak_jobs_per_s"] > 0, (system, got)
    assert got["peak_in_flight"] == IN_FLIGHT, (system, got)
    for round_ in got["peak_rounds"]:
        assert round_["jobs"] == round_["latencies"] == JOBS, (system, round_)
        assert 0 < round_["p50_ms"] <= round_["p99_ms"], (system, round_)
    half_rate = got["half_rate"]
    assert half_rate == pytest.approx(got["peak_jobs_per_s"] / 2, rel=0.01), (system, got)
    assert len(got["half_rounds"]) == 1, (system, got)
    for round_ in got["half_rounds"]:
        assert round_["jobs"] == round_["latencies"] > 0, (system, round_)
        assert abs(round_["jobs"] - half_rate * PACED_SECONDS) <= 1, (system, round_)
        assert 0 < round_["p50_ms"] <= round_["p99_ms"], (system, round_)
    for side in SIDES:
        assert got["cpu_ms_per_job"][side] > 0 or side == "broker", (system, side, got)
        assert math.isfinite(got["cpu_ms_per_job"][side]), (system, side, got)
    for key in ("syscalls", "disk_bytes", *SEGMENTS):
        assert math.isfinite(got["broker_per_job"][key]), (system, key, got)
    for key in ("syscalls", *SEGMENTS):
        assert got["broker_per_job"][key] > 0, (system, key, got)
    paced = got["paced"][str(float(PACED_RATE))]
    assert len(paced["rounds"]) == 1, (system, paced)
    for round_ in paced["rounds"]:
        assert round_["jobs"] == round_["latencies"] == int(PACED_RATE * PACED_SECONDS)
        assert round_["offered_rate"] == PACED_RATE, (system, round_)
    assert 0 < paced["p50_ms"] <= paced["p99_ms"], (system, paced)
    for side in SIDES:
        assert math.isfinite(paced["cpu_ms_per_job"][side]), (system, side, paced)
    assert paced["cpu_ms_per_job"]["client"] > 0 and paced["cpu_ms_per_job"]["worker"] > 0


def run_to_the_end(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs the benchmark; one that hangs is interrupted (Ctrl-C), so that it still stops its
    worker processes (sessions of their own) and deletes its vhost, then killed."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f"throughput.py still running after {RUN_TIMEOUT}s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
