"""Free loopback TCP ports.

Why: every run (parallel pytest sessions, a `make cluster-up` cluster next to a test session) needs
its own ports; fixed ports would collide.  The kernel picks them; all requested ports are held open
together until the caller has them, so one call never returns the same port twice.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Return *count* distinct ports that were free on 127.0.0.1 a moment ago."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(sock.getsockname()[1])
        return ports
