"""The broker a benchmark runs on: where it listens, a vhost of the run's own, its version and pid.

Shared by the throughput benchmark and the scripts that measure one part of its path
(``latency_stages``, ``priority_levels``, ``scaling``, ``api_throughput``), so they all reach the
same broker the same way: ``ITL_BENCH_RABBITMQ_PORT`` (and ``ITL_BENCH_RABBITMQ_STREAM_PORT``)
for another local broker, ``RABBITMQ_NODENAME`` and ``ITL_RABBITMQ_HOME`` of
``tools/rabbitmq/rabbitmq.sh`` for its ``rabbitmqctl`` and pid.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika

HOST = "127.0.0.1"
PORT = int(os.environ.get("ITL_BENCH_RABBITMQ_PORT", "5672"))
STREAM_PORT = int(os.environ.get("ITL_BENCH_RABBITMQ_STREAM_PORT", str(PORT - 120)))
DEFAULT_VHOST = "bench"


@dataclass(frozen=True)
class BrokerTarget:
    """The virtual host the benchmark runs in, and the URLs both client kinds need for it."""

    vhost: str

    @property
    def url(self) -> str:
        """aio-pika's form: the path after the port is the vhost."""
        return f"amqp://guest:guest@{HOST}:{PORT}/{'' if self.vhost == '/' else self.vhost}"

    @property
    def celery_url(self) -> str:
        """kombu's form, where the default vhost is spelled ``//``."""
        return f"amqp://guest:guest@{HOST}:{PORT}/{self.vhost}"


def stream_client_options(url: str, port: int) -> dict[str, Any]:
    """rstream's ``Producer``/``Consumer`` arguments for the broker and vhost of an AMQP URL."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname or HOST,
        "port": port,
        "vhost": unquote(parts.path[1:]) or "/",
        "username": unquote(parts.username or "guest"),
        "password": unquote(parts.password or "guest"),
    }


def rabbitmqctl(*args: str) -> bool:
    """Runs rabbitmqctl against the local broker of ``tools/rabbitmq/rabbitmq.sh``."""
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": os.environ.get("RABBITMQ_NODENAME", "itl@localhost"),
        "PATH": f"/usr/lib/rabbitmq/bin:/usr/sbin:{os.environ.get('PATH', '')}",
    }
    try:
        subprocess.run(
            ["rabbitmqctl", "-q", *args], env=env, capture_output=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@contextlib.contextmanager
def private_vhost(name: str) -> Iterator[BrokerTarget]:
    """A fresh vhost for the run, deleted afterwards; the default vhost if that is impossible.

    Isolation matters on a shared broker: test suites that bind ``provider.#`` would take
    (and fail) the benchmark's jobs, every ``JobQueue`` of a running suite would receive the
    benchmark's results on the shared ``provider.results`` stream (taxing the broker during
    our rounds only), and the benchmark's own objects would otherwise outlive a crash.
    """
    if name == "/":
        yield BrokerTarget("/")
        return
    rabbitmqctl("delete_vhost", name)
    if not (
        rabbitmqctl("add_vhost", name)
        and rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    ):
        print(
            f"note: could not create vhost {name!r} with rabbitmqctl; using the default vhost",
            flush=True,
        )
        yield BrokerTarget("/")
        return
    try:
        yield BrokerTarget(name)
    finally:
        rabbitmqctl("delete_vhost", name)


def broker_reachable() -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((HOST, PORT)) == 0


async def broker_version(url: str) -> str:
    connection = await aio_pika.connect(url)
    try:
        transport = connection.transport
        if transport is None:
            return "?"
        properties = transport.connection.server_properties
        version = properties.get("version", "?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await connection.close()


def broker_pid() -> int | None:
    """The pid of the local RabbitMQ (``tools/rabbitmq/rabbitmq.sh`` writes it to a file)."""
    state = os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state"))
    home = Path(os.environ.get("ITL_RABBITMQ_HOME", f"{state}/itl-workers/rabbitmq"))
    with contextlib.suppress(OSError, ValueError):
        return int((home / "rabbitmq.pid").read_text().strip())
    return None
