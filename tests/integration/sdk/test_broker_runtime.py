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
from collections.abc import Iterator

import pytest

from itl_harness.rabbitmq_node import RabbitmqNode
from tests.support.own_broker import own_node, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitmqNode]:
    with running(own_node(tmp_path_factory.mktemp("runtime-broker"), "itl-runtime")) as broker:
        yield broker


def test_the_broker_schedulers_are_unbound(node: RabbitmqNode) -> None:
    assert node.eval("erlang:system_info(scheduler_bind_type).") == "unbound"


def test_the_broker_schedulers_do_not_busy_wait(node: RabbitmqNode) -> None:
    # The emulator's own flags as the VM received them; a flag given twice takes its last value.
    quoted = node.eval('string:join(erlang:system_info(emu_args), " ").')
    args = quoted.strip('"').split()
    last = dict(itertools.pairwise(args))
    assert {f: last.get(f) for f in ("-sbwt", "-sbwtdcpu", "-sbwtdio")} == {
        "-sbwt": "none",
        "-sbwtdcpu": "none",
        "-sbwtdio": "none",
    }, args
