"""One robust AMQP connection over several broker addresses (the nodes of a cluster).

aio-pika's ``connect_robust`` reconnects to the one URL it was given; when that node is dead, it
retries the dead node forever. ``FailoverConnection`` is the same robust connection (it restores
its channels, re-declares their queues and exchanges, and re-registers consumers) that moves to
the next address every time its connection closes or an attempt fails, round robin. aio-pika
reports both through ``_on_connection_close`` (a failed attempt passes its error the same way),
which is the one hook this class overrides.

``connect_failover`` makes the first connection: it tries the addresses in the order given and
raises only when none answers, naming each address (redacted) with its error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aio_pika import RobustConnection
from aio_pika.abc import TimeoutType
from yarl import URL

from itl_controlplane_sdk.redaction import redact_url, scrub

log = logging.getLogger(__name__)

RECONNECT_INTERVAL_SECONDS = 1.0
"""Pause between two failed attempts; the first attempt after a loss is immediate."""


class FailoverConnection(RobustConnection):
    """A robust connection that moves to the next broker address whenever it loses one."""

    def __init__(self, urls: Sequence[str], **kwargs: Any) -> None:
        if not urls:
            raise ValueError("FailoverConnection needs at least one broker URL")
        self._urls = [URL(url) for url in urls]
        self._index = 0
        kwargs.setdefault("reconnect_interval", RECONNECT_INTERVAL_SECONDS)
        super().__init__(self._urls[0], **kwargs)

    @property
    def current_url(self) -> str:
        """The address in use (or tried next), with its password redacted."""
        return redact_url(str(self._urls[self._index]))

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if len(self._urls) > 1 and not self._close_called:
            self._index = (self._index + 1) % len(self._urls)
            self.url = self._urls[self._index]
            log.info("broker connection lost; next attempt goes to %s", self.current_url)
        await super()._on_connection_close(closing)


async def connect_failover(
    urls: Sequence[str], *, timeout: TimeoutType = None, **kwargs: Any
) -> FailoverConnection:
    """Connects to the first address that answers; raises ConnectionError if none does."""
    failures: list[str] = []
    for start in range(len(urls)):
        ordered = [*urls[start:], *urls[:start]]
        connection = FailoverConnection(ordered, **kwargs)
        try:
            await connection.connect(timeout=timeout)
        except Exception as exc:
            error = scrub(f"{type(exc).__name__}: {exc}", urls[start])
            failures.append(f"{redact_url(urls[start])}: {error}")
            await connection.close()
            continue
        if failures:
            log.warning("connected to %s; before: %s", connection.current_url, "; ".join(failures))
        return connection
    raise ConnectionError("no broker address answered: " + "; ".join(failures))
