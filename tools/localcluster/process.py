"""One control-plane child process in its own process group.

Why its own group: components may fork helpers; killing the group on teardown reaps them all, and
signals sent to the test runner's group (Ctrl-C) do not race our orderly shutdown.  Teardown only
ever signals groups this harness started, identified by pid *and* by the run directory appearing in
the process command line (so a recycled pid can never be hit).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ComponentFailed

LOG_TAIL_BYTES = 4000
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class Component:
    """A started component: name, pid (== pgid), log file and argv."""

    name: str
    pid: int
    log: Path
    argv: list[str]
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        """True while the process exists and is not a zombie."""
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        """Last *limit* bytes of the component log, for error messages."""
        try:
            with self.log.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - limit))
                return fh.read().decode(errors="replace")
        except OSError:
            return "<no log>"

    def check_alive(self) -> None:
        """Raise ComponentFailed with the log tail if the process has exited."""
        if not self.alive():
            code = self.popen.returncode if self.popen is not None else "?"
            raise ComponentFailed(
                f"{self.name} exited (code {code}); log {self.log}:\n{self.log_tail()}"
            )


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGKILL the child when its parent dies (PR_SET_PDEATHSIG).

    Why: components live in their own sessions, so a test runner killed by SIGKILL or an unhandled
    SIGTERM (CI timeouts) would otherwise leak etcd/apiserver processes.  SIGKILL, not SIGTERM:
    etcd and kube-apiserver terminated together wait on each other's graceful shutdown for a long
    time, and an orphaned test cluster has nothing worth saving.  libc is resolved here, in the
    parent, so the child only makes one foreign call between fork and exec.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    signum = int(signal.SIGKILL)

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return hook


def start(
    name: str,
    argv: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    tie_to_parent: bool = False,
) -> Component:
    """Start *argv* in a new session (own process group), stdout+stderr appended to *log*.

    With *tie_to_parent* the child is terminated if this process dies without tearing it down
    (pytest sessions); the CLI's background cluster must outlive its parent and does not use it.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    hook = _parent_death_signal() if tie_to_parent else None
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
            preexec_fn=hook,
        )
    return Component(name=name, pid=popen.pid, log=log, argv=argv, popen=popen)


def pid_alive(pid: int) -> bool:
    """True if *pid* exists and is not a zombie (works for processes that are not our children)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def owned_by(pid: int, marker: str) -> bool:
    """True if *pid*'s command line mentions *marker* (the run dir): guards against pid reuse."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def stop(component: Component, marker: str, grace: float = 15.0) -> None:
    """SIGTERM the component's group, then SIGKILL after *grace* seconds.  Never raises."""
    if not component.alive() or not owned_by(component.pid, marker):
        _reap(component)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(component.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while component.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if component.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(component.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while component.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    _reap(component)


def _reap(component: Component) -> None:
    if component.popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            component.popen.wait(timeout=1)


def rss_kib(pid: int) -> int:
    """Resident set size of *pid* in KiB (0 if gone): used to report control-plane memory."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
