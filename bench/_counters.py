"""What a round costs, read from the kernel's counters: CPU of processes and process trees, the
broker's system calls and disk writes (``/proc``), TCP segments per connection (``ss``).

Nothing is traced or slowed down: each counter is read before and after a round.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time
from pathlib import Path

from _broker import PORT, STREAM_PORT


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> list[int]:
    """A process and every descendant alive now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and every descendant alive now."""
    return sum(process_cpu_seconds(p) or 0.0 for p in tree_pids(pid))


SS_OWNER = re.compile(r"pid=(\d+)")
SS_SEGMENTS = re.compile(r"\bdata_segs_(out|in):(\d+)")


def tcp_segments(ports: tuple[int, ...]) -> dict[tuple[int, int], tuple[int, int]]:
    """Per (process, broker port): TCP segments with data sent to and received from it so far.

    Why: each segment the broker receives is a socket read in its Erlang VM, and each one it
    sends is a write: broker CPU per job that frame counts alone do not show (a client can
    write a job's frames in one segment or in three). Read from the kernel's counters of every
    established connection to the broker (``ss -tinp``), so nothing is traced or slowed down.
    """
    filter_ = " or ".join(f"dport = :{port}" for port in ports)
    try:
        out = subprocess.run(
            ["ss", "-tinpH", "state", "established", f"( {filter_} )"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    totals: dict[tuple[int, int], tuple[int, int]] = {}
    owner: tuple[int, int] | None = None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):  # a socket's first line: addresses, process
            match = SS_OWNER.search(line)
            columns = line.split()
            port = int(columns[3].rsplit(":", 1)[1]) if len(columns) > 3 else 0
            owner = (int(match.group(1)), port) if match else None
            continue
        if owner is None:
            continue
        counts = {kind: int(n) for kind, n in SS_SEGMENTS.findall(line)}
        sent, received = totals.get(owner, (0, 0))
        totals[owner] = (sent + counts.get("out", 0), received + counts.get("in", 0))
    return totals


class CpuMeter:
    """CPU used over a round by the client, the worker, the broker and Redis.

    On a shared 2-core machine jobs/s swing with whatever else runs; CPU per job swings
    much less, so it tells where a system's cost lies even when wall-clock figures are noisy.
    The client is this process (raw, ours) or a peer's client process; the worker counts its
    whole process tree (dramatiq's and taskiq's CLIs fork the process that runs the jobs).
    The broker also serves whoever else uses it: its CPU rate over an idle moment before the
    round is subtracted, else a slower system would be billed for more of others' traffic.
    """

    IDLE_SAMPLE_SECONDS = 0.5

    def __init__(
        self,
        worker_pid: int,
        broker: int | None,
        *,
        client_pid: int | None = None,
        redis: int | None = None,
    ) -> None:
        self._worker_pid = worker_pid
        self._client_pid = client_pid
        self._pids = {
            **({"broker": broker} if broker else {}),
            **({"redis": redis} if redis else {}),
        }
        self._start: dict[str, float] = {}
        self._broker_idle_rate = 0.0
        self._started = 0.0

    async def sample_broker_idle(self) -> None:
        """Measures the broker's background CPU rate while no benchmark job is in flight."""
        pid = self._pids.get("broker")
        before = process_cpu_seconds(pid) if pid else None
        await asyncio.sleep(self.IDLE_SAMPLE_SECONDS)
        after = process_cpu_seconds(pid) if pid else None
        if before is not None and after is not None:
            self._broker_idle_rate = (after - before) / self.IDLE_SAMPLE_SECONDS

    def _now(self) -> dict[str, float]:
        client = (
            process_cpu_seconds(self._client_pid)
            if self._client_pid is not None
            else time.process_time()
        )
        now = {"worker": tree_cpu_seconds(self._worker_pid)}
        if client is not None:
            now["client"] = client
        for side, pid in self._pids.items():
            seconds = process_cpu_seconds(pid)
            if seconds is not None:
                now[side] = seconds
        return now

    def _broker_io(self) -> dict[str, float]:
        """The broker's read/write syscalls (sockets and files) and bytes written to disk."""
        pid = self._pids.get("broker")
        try:
            fields = dict(
                line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines()
            )
        except (OSError, ValueError):
            return {}
        return {
            "syscalls": int(fields["syscr"]) + int(fields["syscw"]),
            "disk_bytes": int(fields["write_bytes"]),
        }

    def _segments(self) -> dict[str, float]:
        """TCP data segments the client and the worker sent to the broker and got from it."""
        per_socket = tcp_segments((PORT, STREAM_PORT))
        sides = {
            "client": [self._client_pid if self._client_pid is not None else os.getpid()],
            "worker": tree_pids(self._worker_pid),
        }
        counts: dict[str, float] = {}
        for side, pids in sides.items():
            for prefix, ports in (("", (PORT, STREAM_PORT)), ("stream_", (STREAM_PORT,))):
                sockets = [per_socket.get((p, port), (0, 0)) for p in pids for port in ports]
                counts[f"{prefix}segs_from_{side}"] = sum(sent for sent, _ in sockets)
                counts[f"{prefix}segs_to_{side}"] = sum(got for _, got in sockets)
        return counts

    def __enter__(self) -> CpuMeter:
        self._io_start = self._broker_io() if "broker" in self._pids else {}
        self._io_start |= self._segments()
        self._start = self._now()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        io_end = (self._broker_io() if "broker" in self._pids else {}) | self._segments()
        self.broker_io = {k: io_end[k] - self._io_start[k] for k in io_end if k in self._io_start}
        self.used = {side: end[side] - self._start[side] for side in end if side in self._start}
        if "broker" in self.used:
            background = self._broker_idle_rate * (time.perf_counter() - self._started)
            self.used["broker"] = max(0.0, self.used["broker"] - background)

    used: dict[str, float]
    broker_io: dict[str, float]
