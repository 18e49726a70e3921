"""The peers of the throughput benchmark, seen from the benchmark's process.

dramatiq, taskiq, Celery 5 and FastStream live in a virtualenv of their own
(``tools/bench/peers.sh``, ``make bench-peers``), so the project's environment never imports
them. Each peer runs as two subprocesses from that virtualenv: its worker (the library's own
CLI where it has one, one process running up to 10 jobs at once) and its client
(``bench/_peer_<name>.py``, driven over stdin/stdout by ``bench/_peer_driver.py``), so the
benchmark measures a peer's client CPU from ``/proc`` like its worker's. dramatiq and taskiq
keep their results in Redis: ``redis_server`` starts Debian's ``redis-server`` on a free
loopback port for the run and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PEERS_SCRIPT = BENCH_DIR.parent / "tools" / "bench" / "peers.sh"
WORKER_CONCURRENCY = 10
READY_TIMEOUT = 60.0
ROUND_TIMEOUT = 600.0


@dataclass(frozen=True)
class Peer:
    """One peer configuration: its module, variant and how its worker is started."""

    name: str
    module: str
    variant: str
    label: str
    uses_redis: bool = False

    @property
    def queue(self) -> str:
        return f"bench.{self.name}"

    def worker_argv(self, python: str) -> list[str]:
        c = str(WORKER_CONCURRENCY)
        if self.module == "_peer_dramatiq":
            return [python, "-m", "dramatiq", self.module, "--processes", "1", "--threads", c,
                    "--queues", self.queue]  # fmt: skip
        if self.module == "_peer_taskiq":
            return [python, "-m", "taskiq", "worker", f"{self.module}:broker", "--workers", "1",
                    "--max-async-tasks", c, "--log-level", "WARNING"]  # fmt: skip
        if self.module == "_peer_celery":
            return [python, "-m", "celery", "-A", self.module, "worker", "-P", "threads",
                    "-c", c, "-Q", self.queue, "--without-gossip", "--without-mingle",
                    "--without-heartbeat", "-l", "WARNING"]  # fmt: skip
        return [python, str(BENCH_DIR / f"{self.module}.py"), "worker"]

    def env(self, amqp_url: str, celery_url: str, redis_url: str | None) -> dict[str, str]:
        return {
            "BENCH_AMQP_URL": celery_url if self.module == "_peer_celery" else amqp_url,
            "BENCH_QUEUE": self.queue,
            "BENCH_VARIANT": self.variant,
            "BENCH_REDIS_URL": redis_url or "",
            "PYTHONPATH": str(BENCH_DIR),
        }


PEERS = {
    peer.name: peer
    for peer in (
        Peer("dramatiq", "_peer_dramatiq", "defaults", "dramatiq (defaults)", uses_redis=True),
        Peer("dramatiq-reliable", "_peer_dramatiq", "reliable", "dramatiq (confirms)", True),
        Peer("taskiq", "_peer_taskiq", "defaults", "taskiq-aio-pika (defaults)", True),
        Peer("celery", "_peer_celery", "defaults", "Celery 5 (defaults)"),
        Peer("celery-reliable", "_peer_celery", "reliable", "Celery 5 (acks late, confirms)"),
        Peer("faststream", "_peer_faststream", "defaults", "FastStream (defaults)"),
        Peer("faststream-reliable", "_peer_faststream", "reliable", "FastStream (persist)"),
    )
}


def peers_python() -> str:
    """The peers' virtualenv python; a clear error naming the fix when it is missing."""
    python = subprocess.run(
        ["bash", str(PEERS_SCRIPT), "--print-python"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not Path(python).exists():
        raise SystemExit(
            f"the benchmark's peers are not installed ({python} missing): run `make bench-peers`"
        )
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RedisServer:
    url: str
    pid: int


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Debian's redis-server at its defaults on a free loopback port, data in a temp dir."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="itl-bench-redis-") as data:
        process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                data,
                "--logfile",
                str(Path(data) / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"redis-server exited ({process.returncode})")
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server not listening after 30s")
                time.sleep(0.05)
            yield RedisServer(f"redis://127.0.0.1:{port}/0", process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class PeerClient:
    """A peer's client subprocess; ``closed``/``open`` run one round there and return figures."""

    def __init__(self, peer: Peer, python: str, env: dict[str, str], log: Path) -> None:
        self.peer = peer
        self._argv = [python, str(BENCH_DIR / f"{peer.module}.py")]
        self._env = {**os.environ, **env}
        self._log = log
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def start(self) -> None:
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv,
                env=self._env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                limit=64 * 1024 * 1024,
            )
        await self._answer(READY_TIMEOUT)

    async def _answer(self, timeout: float) -> dict[str, object]:
        assert self._process is not None
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        if not line:
            tail = self._log.read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError(f"{self.peer.label} client gave no answer:\n" + "\n".join(tail))
        answer: dict[str, object] = json.loads(line)
        return answer

    async def _command(self, **command: object) -> dict[str, object]:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command).encode() + b"\n")
        await self._process.stdin.drain()
        return await self._answer(ROUND_TIMEOUT)

    async def closed(self, jobs: int, in_flight: int) -> tuple[float, list[float]]:
        answer = await self._command(cmd="closed", jobs=jobs, in_flight=in_flight)
        return float(answer["seconds"]), list(answer["latencies"])  # type: ignore[arg-type,call-overload]

    async def open(self, rate: float, seconds: float) -> tuple[float, list[float]]:
        answer = await self._command(cmd="open", rate=rate, seconds=seconds)
        return float(answer["seconds"]), list(answer["latencies"])  # type: ignore[arg-type,call-overload]

    async def rss_kib(self) -> int:
        return int((await self._command(cmd="rss"))["rss_kib"])  # type: ignore[call-overload]

    async def close(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 15)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
