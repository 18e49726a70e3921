"""``wait_until_connected`` means "the broker answers", not "a socket looks open".

A broker that restarts can leave a client holding a socket that reads as open but no longer
leads anywhere; the first publish on it then fails with "connection reset by peer". The
broker cannot be made to do that on demand, so a loopback proxy in front of the real broker
produces it: frozen, it keeps both sockets open and forwards nothing (the half-open
connection); then it drops them, as the broker's reset does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from itl_controlplane_sdk.workers import JobQueue
from itl_harness.workers import free_port
from tests.integration.sdk.conftest import ALL_JOBS
from tests.support.requests import demo_request

pytestmark = pytest.mark.integration


class FreezingProxy:
    """Forwards TCP to the broker until frozen; ``reset`` closes every proxied connection."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FreezingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    def freeze(self) -> None:
        self._flowing.clear()

    def reset(self) -> None:
        """Closes the proxied connections and lets new ones flow again."""
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        sink.close()


@pytest.fixture
async def proxy(rabbitmq_url: str) -> AsyncIterator[FreezingProxy]:
    broker = urlsplit(rabbitmq_url)
    async with FreezingProxy(broker.hostname or "127.0.0.1", broker.port or 5672) as running:
        yield running


def through(proxy: FreezingProxy, url: str) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{proxy.port}"))


async def test_wait_until_connected_waits_for_a_broker_that_answers(
    rabbitmq_url: str, queue_name: str, proxy: FreezingProxy
) -> None:
    queue = JobQueue(through(proxy, rabbitmq_url), queue_name=queue_name, bindings=ALL_JOBS)
    await queue.connect()
    try:
        assert await queue.wait_until_connected(5)

        proxy.freeze()
        assert queue.is_connected, "the half-open socket still reads as open"
        assert not await queue.wait_until_connected(1.5)

        proxy.reset()
        assert await queue.wait_until_connected(30)
        job_id = await queue.submit_job("ITL.Demo", "Job", "create", demo_request())
        assert job_id
    finally:
        proxy.reset()
        await queue.disconnect()
