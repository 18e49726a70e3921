"""Deadline-based polling.

Why: control-plane readiness and controller effects are asynchronous; a fixed ``sleep`` is either
flaky or slow.  ``wait_until`` polls a probe until it returns a truthy value or the deadline passes,
and its error says what was awaited and what was last seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The awaited condition did not hold before the deadline (an AssertionError for pytest)."""


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    max_interval: float = 2.0,
) -> T:
    """Call *probe* until it returns a truthy value; return that value.

    Exceptions raised by *probe* count as "not yet" (components refuse connections while starting);
    the last one is reported on timeout.  A probe may raise ``StopWaiting`` to abort immediately.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    delay = interval
    while True:
        try:
            result = probe()
        except StopWaiting:
            raise
        except Exception as exc:
            result = None
            last = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, max_interval)


class StopWaiting(Exception):
    """Raised by a probe when waiting further is pointless (e.g. the process died)."""
