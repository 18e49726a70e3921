"""The results stream over RabbitMQ's native stream protocol (``RESULTS_PROTOCOL=stream``).

The same ``provider.results`` stream as over AMQP 0.9.1, written and read through the
``rabbitmq_stream`` plugin's port with the ``rstream`` client (the ``stream`` extra). Per
result the broker then handles one publish entry and one confirm (both batched: every result
that a process finishes in one event-loop iteration goes out in one publish frame, and the
broker confirms them together) and hands readers whole chunks with one credit each, instead of
a three-frame ``basic.publish``, a confirm and a three-frame delivery per result and reader.
Measured in docs/performance.md.

Guarantees are those of the AMQP path: ``ResultAppender.append`` returns only once the broker
has confirmed the record (so a worker acks its job after its result is durable) and raises
otherwise; records are AMQP 1.0 messages (``amqp10``), so AMQP 0.9.1 readers and writers of the
same stream interoperate with these. Markers go out unconfirmed, as over AMQP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from rstream import (
    ConfirmationStatus,
    Consumer,
    ConsumerOffsetSpecification,
    MessageContext,
    OffsetType,
    Producer,
    RawMessage,
)
from rstream.recovery import BackOffRecoveryStrategy, RecoveryStrategy
from yarl import URL

from itl_controlplane_sdk.errors import JobSubmissionError
from itl_controlplane_sdk.workers import amqp10
from itl_controlplane_sdk.workers.result_store import RecordHandler

log = logging.getLogger(__name__)

DEFAULT_STREAM_PORT = 5552
"""The ``rabbitmq_stream`` plugin's default port (5551 with TLS)."""

RECONNECT_ATTEMPTS = 200
"""Attempts of a reader to come back after a lost connection: rstream's back-off (1 s,
doubling up to 50 s) for about three hours, instead of its 10 attempts (four and a half
minutes), after which a process's tail would stay blind to new results until restarted.
Not more: rstream retries by recursion, one coroutine frame deeper per attempt."""


class _PatientRecovery(BackOffRecoveryStrategy):
    """rstream's back-off strategy with ``RECONNECT_ATTEMPTS`` attempts and 1 s of jitter."""

    def __init__(self) -> None:
        super().__init__(True, jitter=1)
        RecoveryStrategy.__init__(self, True, max_retries=RECONNECT_ATTEMPTS)


@dataclass(frozen=True)
class StreamEndpoint:
    """Where and as whom to speak the stream protocol: the AMQP URL's host, user and vhost."""

    host: str
    port: int
    vhost: str
    username: str
    password: str
    ssl_context: ssl.SSLContext | None = None

    def client_options(self, name: str) -> dict[str, Any]:
        """Where and as whom rstream's Producer and Consumer connect, named ``name``."""
        return {
            "host": self.host,
            "port": self.port,
            "vhost": self.vhost,
            "username": self.username,
            "password": self.password,
            "ssl_context": self.ssl_context,
            "connection_name": name,
        }

    @classmethod
    def from_amqp_url(
        cls, url: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> StreamEndpoint:
        parsed = URL(url)
        vhost = unquote(parsed.raw_path[1:]) if len(parsed.raw_path) > 1 else "/"
        return cls(
            host=parsed.host or "localhost",
            port=port,
            vhost=vhost,
            username=parsed.user or "guest",
            password=parsed.password or "guest",
            ssl_context=ssl_context,
        )

    def __repr__(self) -> str:  # never the password
        return f"StreamEndpoint({self.host}:{self.port}, vhost={self.vhost!r})"


class ResultAppender:
    """Appends records to one stream; ``append`` waits for the broker's confirm.

    Records appended in the same event-loop iteration go out as one publish frame (a worker's
    jobs finish together when the broker confirmed their results together), each with its own
    publishing id and its own confirm, so one record's failure fails only its own job.
    """

    def __init__(self, endpoint: StreamEndpoint, stream: str, *, timeout: float, name: str) -> None:
        self._endpoint = endpoint
        self._stream = stream
        self._timeout = timeout
        self._producer = Producer(**endpoint.client_options(name))
        self._next_id = 0
        self._pending: list[RawMessage] = []
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._flushes: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the results producer was closed"))
        self._waiting.clear()
        with contextlib.suppress(Exception):
            await self._producer.close()

    async def append(
        self, message_id: str, body: bytes, *, message_type: str | None = None, confirm: bool = True
    ) -> None:
        """Appends one record; with ``confirm`` returns once the broker has confirmed it.

        Raises ``JobSubmissionError`` when the broker refuses the record and ``TimeoutError``
        or ``ConnectionError`` when no confirm comes (the caller retries or requeues).
        """
        self._next_id += 1
        publishing_id = self._next_id
        self._pending.append(
            RawMessage(amqp10.encode(body, message_id, message_type), publishing_id)
        )
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        if not confirm:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting[publishing_id] = future
        try:
            async with asyncio.timeout(self._timeout):
                await future
        finally:
            self._waiting.pop(publishing_id, None)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            flush = asyncio.create_task(self._flush(batch))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[RawMessage]) -> None:
        try:
            await self._producer.send_batch(
                self._stream, batch, on_publish_confirm=self._on_confirm
            )
        except Exception as exc:
            log.debug("results batch not sent: %s", type(exc).__name__)
            for message in batch:
                future = self._waiting.get(message.publishing_id or 0)
                if future is not None and not future.done():
                    future.set_exception(ConnectionError(f"result not sent: {exc}"))

    def _on_confirm(self, status: ConfirmationStatus) -> None:
        future = self._waiting.get(status.message_id)
        if future is None or future.done():
            return
        if status.is_confirmed:
            future.set_result(None)
        else:
            future.set_exception(
                JobSubmissionError(
                    f"a record on stream {self._stream!r} was not confirmed: "
                    + (
                        "the connection was lost first"
                        if status.response_code < 0
                        else f"the broker refused it (response code {status.response_code})"
                    )
                )
            )


class StreamSubscription:
    """One reader of the stream from a point in time, on a connection of its own."""

    def __init__(
        self, endpoint: StreamEndpoint, stream: str, on_record: RecordHandler, *, name: str
    ) -> None:
        self._stream = stream
        self._on_record = on_record
        self._stopped = False
        self._consumer = Consumer(
            **endpoint.client_options(name),
            # After a lost connection the subscription resumes at the next offset it has not
            # seen, after 1 s and then backing off (``RECONNECT_ATTEMPTS``).
            recovery_strategy=_PatientRecovery(),
        )

    async def open(self, since: float) -> StreamSubscription:
        """Starts reading at the chunk holding ``since`` (epoch seconds)."""
        try:
            await self._consumer.start()
            await self._consumer.subscribe(
                self._stream,
                self._on_message,
                offset_specification=ConsumerOffsetSpecification(
                    OffsetType.TIMESTAMP, max(0, int(since * 1000))
                ),
            )
        except BaseException:
            await self.close()
            raise
        return self

    async def _on_message(self, data: bytes, context: MessageContext) -> None:
        if self._stopped:
            return
        try:
            message_id, message_type, body = amqp10.decode(data)
        except ValueError as exc:
            log.warning("skipping undecodable record in %s: %s", self._stream, exc)
            return
        if await self._on_record(message_id, message_type, body, context.offset):
            self._stopped = True

    async def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(Exception):
            await self._consumer.close()
