"""The project's broker runs its Erlang schedulers unbound and without busy waiting.

On a machine the broker shares with its clients and workers, a scheduler pinned to one core
waits for that core while another is idle, and a scheduler that spins before sleeping burns
the CPU the others need: measured, both raise the broker's CPU per job (docs/performance.md).
``tools/rabbitmq/rabbitmq.sh`` starts every broker of development, CI and the benchmarks, so
the settings are checked on a node it starts for this test (its own nodename, ports and data
directory; the shared broker is never restarted), by asking the running VM itself.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from itl_harness.workers import free_port
from tests.support.services import RABBITMQ_SCRIPT, unavailable

pytestmark = pytest.mark.integration

# What would override the script's defaults; the test judges the defaults.
OVERRIDES = (
    "RABBITMQ_SCHEDULER_BIND_TYPE",
    "RABBITMQ_SCHEDULER_BUSY_WAIT_THRESHOLD",
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
    "RABBITMQ_SERVER_ERL_ARGS",
    "ITL_RABBITMQ_STREAM_PORT",
)


class Node:
    """A RabbitMQ node of the test's own, started and stopped by ``rabbitmq.sh``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in OVERRIDES},
            "RABBITMQ_NODENAME": f"itl-runtime-{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_PORT": str(free_port()),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ITL_RABBITMQ_HOME": str(home),
        }

    def script(self, *args: str, timeout: float = 180) -> str:
        return subprocess.run(
            ["bash", str(RABBITMQ_SCRIPT), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        ).stdout

    def eval(self, expression: str) -> str:
        return self.script("ctl", "-q", "eval", expression, timeout=60).strip()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    if shutil.which("rabbitmq-server", path="/usr/lib/rabbitmq/bin:/usr/sbin") is None:
        unavailable("RabbitMQ", "rabbitmq-server is not installed (make install)")
    started = Node(tmp_path_factory.mktemp("runtime-broker"))
    try:
        started.script("up")
    except subprocess.CalledProcessError as exc:
        started.script("down", timeout=60)
        unavailable("RabbitMQ node", f"{exc.stdout!r} {exc.stderr!r}")
    yield started
    try:
        started.script("down", timeout=60)
    finally:
        shutil.rmtree(started.home, ignore_errors=True)


def test_the_broker_schedulers_are_unbound(node: Node) -> None:
    assert node.eval("erlang:system_info(scheduler_bind_type).") == "unbound"


def test_the_broker_schedulers_do_not_busy_wait(node: Node) -> None:
    # The emulator's own flags as the VM received them; a flag given twice takes its last value.
    quoted = node.eval('string:join(erlang:system_info(emu_args), " ").')
    args = quoted.strip('"').split()
    last = dict(itertools.pairwise(args))
    assert {f: last.get(f) for f in ("-sbwt", "-sbwtdcpu", "-sbwtdio")} == {
        "-sbwt": "none",
        "-sbwtdcpu": "none",
        "-sbwtdio": "none",
    }, args
