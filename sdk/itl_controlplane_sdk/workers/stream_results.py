"""The results stream over RabbitMQ's native stream protocol (``RESULTS_PROTOCOL=stream``).

The same ``provider.results`` stream as over AMQP 0.9.1, written and read through the
``rabbitmq_stream`` plugin's port with the ``rstream`` client (the ``stream`` extra). Per
result the broker then handles one publish entry and one confirm (both batched: every result
that a process finishes in one event-loop iteration goes out in one publish frame, and the
broker confirms them together) and hands readers whole chunks with one credit each, instead of
a three-frame ``basic.publish``, a confirm and a three-frame delivery per result and reader.
Measured in docs/performance.md.

Every node of ``RABBITMQ_URL`` has a stream port (``StreamEndpoint``, one per AMQP URL, in the
same order). Like ``failover.FailoverConnection``, the producer and every reader move to the
next node's port each time they lose theirs or a start fails there: rstream itself keeps
retrying the one address it was given first. ``ResultAppender.start`` checks that the stream
port is usable before a process relies on it: it belongs to the same cluster as the AMQP
connection (a port-forward or a wrong port could lead to another broker), the user may write
to the stream (``contract.permissions``) and every node that holds the results stream answers
at the address it advertises.

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
from collections.abc import Sequence
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
from rstream.client import Addr
from rstream.exceptions import StreamNotAvailable
from rstream.recovery import BackOffRecoveryStrategy, IReliableEntity, RecoveryStrategy
from yarl import URL

from itl_controlplane_sdk.contract.settings import STREAM_PORT_OFFSET
from itl_controlplane_sdk.errors import JobSubmissionError
from itl_controlplane_sdk.workers import amqp10
from itl_controlplane_sdk.workers.result_store import RecordHandler, StreamNotReadableError

log = logging.getLogger(__name__)

RECONNECT_ATTEMPTS = 200
"""Attempts of a reader to come back after a lost connection: rstream's back-off (1 s,
doubling up to 50 s) for about three hours, instead of its 10 attempts (four and a half
minutes), after which a process's tail would stay blind to new results until restarted.
Not more: rstream retries by recursion, one coroutine frame deeper per attempt."""


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
        cls, url: str, port: int | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> StreamEndpoint:
        """The stream port of the node at AMQP ``url``: ``port``, else its AMQP port minus 120
        (``contract.settings.STREAM_PORT_OFFSET``)."""
        parsed = URL(url)
        vhost = unquote(parsed.raw_path[1:]) if len(parsed.raw_path) > 1 else "/"
        if port is None:
            amqp_port = parsed.explicit_port or (5671 if parsed.scheme == "amqps" else 5672)
            port = amqp_port - STREAM_PORT_OFFSET
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

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class StreamEndpoints:
    """The stream ports of a cluster's nodes, used round robin from the current one."""

    def __init__(self, endpoints: Sequence[StreamEndpoint]) -> None:
        if not endpoints:
            raise ValueError("StreamEndpoints needs at least one endpoint")
        self._endpoints = list(endpoints)
        self._index = 0

    def __len__(self) -> int:
        return len(self._endpoints)

    @property
    def current(self) -> StreamEndpoint:
        return self._endpoints[self._index]

    def advance(self) -> StreamEndpoint:
        """Moves to the next node's port (the first after the last) and returns it."""
        self._index = (self._index + 1) % len(self._endpoints)
        return self._endpoints[self._index]

    def point(self, entity: Producer | Consumer) -> None:
        """Makes ``entity``'s next new connection go to the current node's port.

        rstream opens every connection that is not to a known stream member (at start, in
        recovery, when it re-creates a publisher) to the address its client pool holds, set
        once in its constructor; there is no public setter (rstream 1.x, pinned in
        pyproject.toml; tests/unit/sdk/test_stream_endpoints.py fails if that changes).
        """
        endpoint = self.current
        entity._pool.addr = Addr(endpoint.host, endpoint.port)

    async def start(self, entity: Producer | Consumer) -> None:
        """Starts ``entity`` on the first node whose stream port answers, from the current
        one on; raises ConnectionError naming every port tried when none does."""
        failures: list[str] = []
        for attempt in range(len(self._endpoints)):
            if attempt:
                self.advance()
            self.point(entity)
            try:
                await entity.start()
            except Exception as exc:
                failures.append(f"{self.current}: {type(exc).__name__}: {exc}")
                continue
            return
        raise ConnectionError("no stream port answered: " + "; ".join(failures))


class _FailoverRecovery(BackOffRecoveryStrategy):
    """rstream's back-off recovery (``RECONNECT_ATTEMPTS`` attempts, 1 s of jitter) that moves
    to the next node's stream port before every attempt, as ``FailoverConnection`` does for
    AMQP: rstream alone would retry a dead node until it gives up."""

    def __init__(self, endpoints: StreamEndpoints) -> None:
        super().__init__(True, jitter=1)
        RecoveryStrategy.__init__(self, True, max_retries=RECONNECT_ATTEMPTS)
        self._endpoints = endpoints

    async def recover(
        self,
        entity: IReliableEntity,
        stream: str,
        error: Exception,
        attempt: int,
        recovery_fun: Any,
    ) -> None:
        if isinstance(entity, (Producer, Consumer)) and len(self._endpoints) > 1:
            self._endpoints.advance()
            self._endpoints.point(entity)
            log.info(
                "results stream connection lost; next attempt goes to %s", self._endpoints.current
            )
        await super().recover(entity, stream, error, attempt, recovery_fun)


class StreamUnusable(ConnectionError):
    """The stream port answers, but results cannot go through it (the reason says why)."""


class ResultAppender:
    """Appends records to one stream; ``append`` waits for the broker's confirm.

    Records appended in the same event-loop iteration go out as one publish frame (a worker's
    jobs finish together when the broker confirmed their results together), each with its own
    publishing id and its own confirm, so one record's failure fails only its own job.
    """

    def __init__(
        self, endpoints: StreamEndpoints, stream: str, *, timeout: float, name: str
    ) -> None:
        self._endpoints = endpoints
        self._stream = stream
        self._timeout = timeout
        self._producer = Producer(
            **endpoints.current.client_options(name),
            recovery_strategy=_FailoverRecovery(endpoints),
        )
        self._next_id = 0
        self._pending: list[RawMessage] = []
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._flushes: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False

    @property
    def endpoint(self) -> StreamEndpoint:
        """The node's stream port this appender uses now."""
        return self._endpoints.current

    async def start(self, *, timeout: float, cluster_name: str | None = None) -> None:
        """Connects and checks that results can go through this port, within ``timeout``.

        Raises ``StreamUnusable`` when the port belongs to another cluster than
        ``cluster_name`` (the AMQP connection's) or a node holding the stream does not answer
        at the address it advertises (``stream.advertised_host``/``_port`` unset behind a
        Service, say), ``ConnectionError`` or ``TimeoutError`` when no port answers.
        """
        try:
            async with asyncio.timeout(timeout):
                await self._endpoints.start(self._producer)
                await self._check(cluster_name)
        except BaseException:
            await self.stop()
            raise

    async def _check(self, cluster_name: str | None) -> None:
        client = await self._producer.default_client
        properties = client.server_properties or {}
        theirs = properties.get("cluster_name")
        if cluster_name is not None and theirs is not None and theirs != cluster_name:
            raise StreamUnusable(
                f"{self.endpoint} is a node of cluster {theirs!r}, not of {cluster_name!r} "
                "(the AMQP connection's)"
            )
        _, replicas = await client.query_leader_and_replicas(self._stream)
        # The publisher, declared now rather than at the first result: it connects to the
        # stream's leader at the address the leader advertises, and the broker checks this
        # user's write permission on the stream. rstream has no public call for it (1.x).
        try:
            async with self._producer._lock:
                await self._producer._get_or_create_publisher(self._stream)
        except Exception as exc:  # rstream's clean-up may replace the broker's own error
            raise StreamUnusable(
                f"no publisher on {self._stream!r} ({type(exc).__name__}): the user needs write "
                "permission on it, and its leader must answer at its advertised address"
            ) from None
        for node in replicas:  # readers may be sent to any replica
            try:
                _, writer = await asyncio.open_connection(node.host, node.port)
            except OSError as exc:
                raise StreamUnusable(
                    f"a replica of {self._stream!r} advertises {node.host}:{node.port}, which "
                    f"does not answer ({type(exc).__name__}: {exc}); set the broker's "
                    "stream.advertised_host and stream.advertised_port"
                ) from None
            writer.close()

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
            if len(self._endpoints) > 1:  # the next batch finds the stream through another node
                self._endpoints.advance()
                self._endpoints.point(self._producer)
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
        self, endpoints: StreamEndpoints, stream: str, on_record: RecordHandler, *, name: str
    ) -> None:
        self._stream = stream
        self._on_record = on_record
        self._stopped = False
        self._endpoints = endpoints
        self._consumer = Consumer(
            **endpoints.current.client_options(name),
            # After a lost connection the subscription resumes at the next offset it has not
            # seen, after 1 s and then backing off (``RECONNECT_ATTEMPTS``), on the next node.
            recovery_strategy=_FailoverRecovery(endpoints),
        )

    async def open(self, since: float) -> StreamSubscription:
        """Starts reading at the chunk holding ``since`` (epoch seconds).

        Raises ``StreamNotReadableError`` when the node has no stream member to serve it yet
        or does not answer in time: right after a rolling restart a node may take longer than
        rstream's request timeout to answer a subscribe. The reader then keeps trying.
        """
        try:
            await self._endpoints.start(self._consumer)
            await self._consumer.subscribe(
                self._stream,
                self._on_message,
                offset_specification=ConsumerOffsetSpecification(
                    OffsetType.TIMESTAMP, max(0, int(since * 1000))
                ),
            )
        except (StreamNotAvailable, TimeoutError) as exc:
            await self.close()
            raise StreamNotReadableError(
                f"{self._endpoints.current}: {type(exc).__name__} {exc}".rstrip()
            ) from None
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
        # The chunk's timestamp: when the stream's leader stored the record (epoch ms).
        stored = context.timestamp / 1000
        if await self._on_record(message_id, message_type, body, context.offset, stored):
            self._stopped = True

    async def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(Exception):
            await self._consumer.close()
