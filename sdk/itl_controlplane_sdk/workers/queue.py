"""JobQueue: submitting jobs, consuming them, and reading results and queue statistics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from pamqp.commands import Basic
from yarl import URL

from itl_controlplane_sdk import tracing
from itl_controlplane_sdk.contract import replication, topology
from itl_controlplane_sdk.contract.brokers import split_broker_urls
from itl_controlplane_sdk.contract.settings import (
    DEFAULT_MAX_JOB_BYTES,
    DEFAULT_RABBITMQ_URL,
    RESULTS_PROTOCOLS,
    ResultsProtocol,
)
from itl_controlplane_sdk.contract.tls import BrokerTls
from itl_controlplane_sdk.errors import BrokerUnavailableError, JobSubmissionError
from itl_controlplane_sdk.models import ResourceRequest
from itl_controlplane_sdk.redaction import redact_url, scrub
from itl_controlplane_sdk.workers import amqp, cancellation, dead_letters
from itl_controlplane_sdk.workers.arrivals import ArrivalWatch
from itl_controlplane_sdk.workers.cancellation import CancellationWatcher
from itl_controlplane_sdk.workers.consumer import JobConsumer
from itl_controlplane_sdk.workers.envelope import (
    OPERATIONS,
    JobCaller,
    JobEnvelope,
    job_attributes,
    new_job_id,
)
from itl_controlplane_sdk.workers.failover import FailoverConnection, connect_failover
from itl_controlplane_sdk.workers.heartbeats import Heartbeat, HeartbeatMonitor
from itl_controlplane_sdk.workers.queue_stats import StatsChannels
from itl_controlplane_sdk.workers.result_store import (
    PROCESSING_MESSAGE_TYPE,
    AmqpSubscription,
    RecordHandler,
    ResultReader,
    Subscription,
)
from itl_controlplane_sdk.workers.results import JobResult, JobStatus

if TYPE_CHECKING:
    from itl_controlplane_sdk.workers.stream_results import ResultAppender, StreamEndpoints

log = logging.getLogger(__name__)

AUTO_PROBE_TIMEOUT = 3.0
"""Longest ``results_protocol="auto"`` waits for the stream port before it settles for AMQP
(``connect_timeout`` when it is shorter): a port that drops packets (a firewall, a
NetworkPolicy that allows only AMQP) must not hold every process's start for long. With
``"stream"`` the whole ``connect_timeout`` applies."""

NACK_RETRY_SECONDS = 0.25
"""Pause before a nacked job is published again on a new channel."""


def _cluster_name(connection: FailoverConnection) -> str | None:
    """The cluster name the broker announced on this AMQP connection (None if unknown)."""
    transport = connection.transport
    name = transport.connection.server_properties.get("cluster_name") if transport else None
    if isinstance(name, bytes):
        return name.decode(errors="replace")
    return name if isinstance(name, str) else None


class JobQueue:
    """Manages job distribution via RabbitMQ.

    One instance holds one robust connection: it reconnects by itself after a broker restart,
    re-declaring its channels and consumers. ``rabbitmq_url`` may list the nodes of a cluster,
    comma-separated; the connection then moves to the next node when it loses one
    (``failover``). Publishes wait for broker confirms. ``tls`` verifies ``amqps://`` brokers
    with a private CA and presents a client certificate (``contract.tls``).

    Results go over RabbitMQ's stream protocol when the broker offers it (the
    ``rabbitmq_stream`` plugin on each node's ``results_stream_port``, by default its AMQP port
    minus 120: 5552), with the same guarantees and less broker work per result
    (``stream_results``), else over AMQP: ``results_protocol="auto"`` decides once at
    ``connect`` and logs which; ``"stream"`` requires the stream protocol, ``"amqp"`` never
    uses it. Jobs always travel over AMQP.
    """

    def __init__(
        self,
        rabbitmq_url: str = DEFAULT_RABBITMQ_URL,
        *,
        queue_name: str = topology.DEFAULT_JOB_QUEUE,
        bindings: Sequence[str] = (),
        declare_topology: bool = True,
        result_retention: float = 3600.0,
        result_cache_size: int = 10_000,
        result_lookback: float = 60.0,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        tls: BrokerTls | None = None,
        queue_type: replication.QueueType = "classic",
        results_protocol: ResultsProtocol = "auto",
        results_stream_port: int | None = None,
        stats_channels: int = 1,
    ) -> None:
        if results_protocol not in RESULTS_PROTOCOLS:
            choices = ", ".join(RESULTS_PROTOCOLS)
            raise ValueError(f"results_protocol must be one of {choices}, not {results_protocol!r}")
        if queue_type not in replication.QUEUE_TYPES:
            choices = ", ".join(replication.QUEUE_TYPES)
            raise ValueError(f"queue_type must be one of {choices}, not {queue_type!r}")
        self.rabbitmq_url = rabbitmq_url
        self.queue_name = queue_name
        self.queue_type: replication.QueueType = queue_type
        self.bindings = tuple(bindings)
        self._declare_topology = declare_topology
        self._result_retention = result_retention
        self._result_cache_size = result_cache_size
        self._result_lookback = min(result_lookback, result_retention)
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._tls = tls
        self._ssl_context: ssl.SSLContext | None = None
        self.results_protocol: ResultsProtocol = results_protocol
        self.results_stream_port = results_stream_port
        self._appender: ResultAppender | None = None
        self._connection: FailoverConnection | None = None
        self._channel: AbstractChannel | None = None
        self._consumer: JobConsumer | None = None
        self._reader: ResultReader | None = None
        self._monitor: HeartbeatMonitor | None = None
        self._arrivals: ArrivalWatch | None = None
        self._watcher: CancellationWatcher | None = None
        self._marker_channel: AbstractChannel | None = None
        # One confirmed channel per stream, publishing to that stream only (_stream_channel).
        self._stream_channels: dict[str, AbstractChannel] = {}
        self._lazy_lock = asyncio.Lock()
        self._channel_lock = asyncio.Lock()
        self._retired_channels: set[asyncio.Task[None]] = set()
        self._stats_channels = stats_channels
        self._stats = StatsChannels(stats_channels, publish_timeout)

    def __repr__(self) -> str:
        return f"JobQueue({redact_url(self.rabbitmq_url)!r}, queue_name={self.queue_name!r})"

    @property
    def is_connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and (self._channel is not None and not self._channel.is_closed)
        )

    @property
    def connected_url(self) -> str | None:
        """The broker address in use, password redacted (None before ``connect``)."""
        return self._connection.current_url if self._connection is not None else None

    @property
    def results_transport(self) -> str | None:
        """How this process writes and reads results now: ``stream`` or ``amqp`` (None before
        ``connect``); ``results_protocol="auto"`` decides at ``connect``."""
        if self._connection is None:
            return None
        return "stream" if self._appender is not None else "amqp"

    @property
    def in_flight(self) -> int:
        """Job deliveries this process holds now (one concurrency slot each)."""
        return self._consumer.in_flight if self._consumer is not None else 0

    @property
    def unacked(self) -> int:
        """Job deliveries the broker counts as unacknowledged by this process."""
        return self._consumer.unacked if self._consumer is not None else 0

    @property
    def stuck(self) -> int:
        """Job deliveries held with no job running for them (0 unless something broke)."""
        return self._consumer.stuck if self._consumer is not None else 0

    def _error(self, exc: BaseException) -> str:
        return scrub(f"{type(exc).__name__}: {exc}", self.rabbitmq_url)

    async def connect(self) -> None:
        """Connects and declares the topology (idempotent). Raises on failure."""
        if self._connection is not None:
            return
        try:
            connection = await connect_failover(
                split_broker_urls(self.rabbitmq_url),
                timeout=self._connect_timeout,
                ssl_context=self._tls_context() if self._tls is not None else None,
                client_properties={"connection_name": f"itl-jobqueue {self.queue_name}"},
            )
        except Exception as exc:
            raise BrokerUnavailableError(
                f"cannot connect to RabbitMQ at {redact_url(self.rabbitmq_url)}: {self._error(exc)}"
            ) from None
        try:
            if self._declare_topology:
                await amqp.declare_job_topology(
                    connection, self.queue_name, self.bindings, self.queue_type
                )
                await amqp.declare_results_stream(
                    connection, self._result_retention, self.queue_type
                )
                await cancellation.declare_cancellations_stream(
                    connection, self._result_retention, self.queue_type
                )
            self._channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self._stream_channels = {
                stream: await connection.channel(publisher_confirms=True, on_return_raises=True)
                for stream in (topology.RESULTS_STREAM, topology.CANCELLATIONS_STREAM)
            }
            if self.results_protocol != "amqp":
                self._appender = await self._start_appender(connection)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        log.info(
            "connected to RabbitMQ at %s; results over %s",
            connection.current_url,
            f"the stream protocol at {self._appender.endpoint}"
            if self._appender is not None
            else f"AMQP (RESULTS_PROTOCOL={self.results_protocol})",
        )

    async def disconnect(self) -> None:
        """Stops consumers and readers, then closes the connection."""
        if self._consumer is not None:
            await self._consumer.drain(timeout=0)
            self._consumer = None
        for helper in (self._reader, self._monitor, self._watcher, self._arrivals):
            if helper is not None:
                await helper.stop()
        self._reader = None
        self._monitor = None
        self._arrivals = None
        self._watcher = None
        self._marker_channel = None
        self._stats = StatsChannels(self._stats_channels, self._publish_timeout)
        if self._appender is not None:
            await self._appender.stop()
            self._appender = None
        for task in self._retired_channels:
            task.cancel()  # closing the connection closes their channels
        if self._connection is not None:
            await self._connection.close()
        self._connection = None
        self._channel = None
        self._stream_channels = {}

    def _require_connection(self) -> tuple[AbstractRobustConnection, AbstractChannel]:
        if self._connection is None or self._channel is None:
            raise BrokerUnavailableError("JobQueue is not connected; call connect() first")
        return self._connection, self._channel

    async def submit_job(
        self,
        provider_namespace: str,
        resource_type: str,
        operation: str,
        request: ResourceRequest,
        priority: int = 5,
        *,
        job_id: str | None = None,
        deadline: datetime | None = None,
        caller: JobCaller | None = None,
    ) -> str:
        """Publishes a job and returns its id once the broker has confirmed it.

        A new id is bound to the request's subscription (``envelope.job_owned_by``); ``caller``
        records who asked, for providers and audit trails.
        """
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}, not {operation!r}")
        if not 0 <= priority <= topology.MAX_PRIORITY:
            raise ValueError(
                f"priority must be between 0 and {topology.MAX_PRIORITY}, not {priority}"
            )
        self._require_connection()
        envelope = JobEnvelope(
            job_id=job_id or new_job_id(request.subscription_id),
            provider_namespace=provider_namespace,
            resource_type=resource_type,
            operation=operation,
            request=request,
            priority=priority,
            deadline=deadline,
            caller=caller,
        )
        routing_key = topology.job_routing_key(provider_namespace, resource_type, operation)
        attributes = {**job_attributes(envelope), "messaging.destination.name": routing_key}
        with tracing.span("submit_job", attributes, kind="PRODUCER"):
            properties = amqp.persistent_properties(
                envelope.job_id,
                priority=priority,
                timestamp=envelope.submitted_at,
                headers=tracing.inject({}),
            )
            band = replication.band_of(priority, self.queue_type)
            try:
                await self._publish_job(
                    band.exchange, envelope.to_json(), properties, routing_key, envelope.job_id
                )
            except JobSubmissionError:
                raise
            except Exception as exc:
                raise BrokerUnavailableError(
                    f"job {envelope.job_id} was not submitted: {self._error(exc)}"
                ) from None
        return envelope.job_id

    async def _publish_job(
        self,
        exchange_name: str,
        body: bytes,
        properties: Basic.Properties,
        routing_key: str,
        job_id: str,
    ) -> None:
        """Publishes a job, holding it up to ``publish_timeout`` while the broker nacks it.

        A nack is retried on a fresh channel: a RabbitMQ 3.10 channel whose first publish to a
        quorum queue met the queue's old leader on a node going down (a node stop, a failover
        right after it) nacks every later publish to that queue until the node is back,
        minutes in a rolling restart. A new channel reads the queue's current leader. A nack
        may come from one of several queues the job was routed to, so a retry can deliver it
        twice to the others: delivery is at least once, and the job id is the same.
        """
        deadline = time.monotonic() + self._publish_timeout
        while True:
            _, channel = self._require_connection()
            try:
                await amqp.publish_confirmed(
                    channel,
                    exchange_name,
                    body,
                    properties,
                    routing_key,
                    timeout=max(0.1, deadline - time.monotonic()),
                    what=f"job {job_id}",
                )
                return
            except amqp.PublishNackedError:
                if time.monotonic() + NACK_RETRY_SECONDS >= deadline:
                    raise
                log.warning("job %s nacked by the broker; retrying on a new channel", job_id)
            await self._renew_channel(channel)
            await asyncio.sleep(NACK_RETRY_SECONDS)

    async def _renew_channel(self, failed: AbstractChannel) -> None:
        """Replaces the publishing channel ``failed`` (once, however many callers saw it fail).

        The old channel closes only once publishes still waiting on it have had their
        ``publish_timeout``: closing it now would fail them too.
        """
        async with self._channel_lock:
            if self._channel is not failed or self._connection is None:
                return
            self._channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )

        async def close_later() -> None:
            await asyncio.sleep(self._publish_timeout)
            with contextlib.suppress(Exception):
                await failed.close()

        task = asyncio.create_task(close_later())
        self._retired_channels.add(task)
        task.add_done_callback(self._retired_channels.discard)

    async def consume_jobs(
        self,
        worker_callback: Callable[[str, dict[str, Any]], Awaitable[JobResult]],
        *,
        prefetch: int = 10,
        max_attempts: int = 3,
        retry_base_delay: float = 1.0,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        """Starts consuming this queue's jobs; returns once the consumer is registered.

        ``worker_callback(job_id, payload)`` returns the JobResult; raising
        ``RetryableJobError`` asks for another attempt after a backoff. ``on_idle`` is
        called whenever the last job in flight is settled (the worker turned idle). Call
        ``stop_consuming`` (or ``disconnect``) to stop. Cancelled and expired jobs are
        settled without calling it (see ``cancellation``).
        """
        connection, _ = self._require_connection()
        if self._consumer is not None:
            raise RuntimeError("this JobQueue is already consuming")
        if self._watcher is None:
            watcher = CancellationWatcher(connection)
            await watcher.start()
            self._watcher = watcher
        if self._marker_channel is None:
            self._marker_channel = await connection.channel(publisher_confirms=False)
        consumer = JobConsumer(
            connection,
            queue_name=self.queue_name,
            callback=cancellation.guarded(
                worker_callback, watcher=self._watcher, mark_started=self._mark_started
            ),
            prefetch=prefetch,
            max_attempts=max_attempts,
            retry_base_delay=retry_base_delay,
            publish_timeout=self._publish_timeout,
            results=self.publish_result,
            max_job_bytes=max_job_bytes,
            queue_type=self.queue_type,
            on_idle=on_idle,
        )
        await consumer.start()
        self._consumer = consumer

    async def stop_consuming(self, timeout: float = 30.0) -> int:
        """Drains: no new jobs; in-flight ones get ``timeout`` seconds. Returns the requeued."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return 0
        return await consumer.drain(timeout)

    async def publish_result(self, result: JobResult) -> None:
        """Appends a result to the results stream (confirmed)."""
        self._require_connection()
        body = result.to_json()
        if self._appender is not None:
            await self._appender.append(result.job_id, body)
            return
        await amqp.publish_confirmed(
            self._stream_channel(topology.RESULTS_STREAM),
            "",
            body,
            amqp.persistent_properties(result.job_id),
            topology.RESULTS_STREAM,
            timeout=self._publish_timeout,
            what=f"result of job {result.job_id}",
        )

    def _stream_channel(self, stream: str) -> AbstractChannel:
        """The channel that publishes to ``stream`` and nothing else.

        RabbitMQ 3.10 (up to 3.13) loses confirmed stream writes after a stream changes leader
        when the channel publishes anything else too: it re-sends the unconfirmed writes under
        the channel's publish sequence numbers instead of the stream's own (``resend_all`` in
        ``rabbit_stream_queue``), and the new leader's deduplication then drops, yet confirms,
        the channel's next writes until the stream's numbering catches up. On a channel that
        only ever publishes to the one stream the two numberings are the same, so the re-sent
        writes keep their numbers and nothing is dropped (docs/reliability.md).
        """
        channel = self._stream_channels.get(stream)
        if channel is None:
            raise BrokerUnavailableError("JobQueue is not connected; call connect() first")
        return channel

    async def cancel_job(
        self,
        job_id: str,
        reason: str = "cancelled by request",
        *,
        status: JobStatus = JobStatus.CANCELLED,
    ) -> JobResult:
        """Cancels a job that has not started (``status=FAILED`` expires it instead).

        Workers that receive the job afterwards skip it, and ``get_result`` anywhere returns
        the first terminal result recorded for it: this one, unless the job already finished
        (check ``get_result``/``get_job_progress`` first; ``cancellation`` explains the race).
        """
        if status not in (JobStatus.CANCELLED, JobStatus.FAILED):
            raise ValueError(f"a job can be cancelled or failed, not set to {status.value}")
        self._require_connection()
        record = JobResult(job_id, status, error=reason)
        try:
            await amqp.publish_confirmed(
                self._stream_channel(topology.CANCELLATIONS_STREAM),
                "",
                record.to_json(),
                amqp.persistent_properties(job_id),
                topology.CANCELLATIONS_STREAM,
                timeout=self._publish_timeout,
                what=f"cancellation of job {job_id}",
            )
            await self.publish_result(record)
        except JobSubmissionError:
            raise
        except Exception as exc:
            raise BrokerUnavailableError(
                f"job {job_id} was not cancelled: {self._error(exc)}"
            ) from None
        return record

    async def get_job_progress(self, job_id: str) -> JobResult | None:
        """The ``processing`` marker of a started, unfinished job, if this process saw one."""
        reader = await self._result_reader()
        return reader.progress(job_id)

    async def _mark_started(self, job_id: str) -> None:
        """Appends a ``processing`` marker to the results stream, without waiting for a confirm.

        Markers only help an API refuse to cancel running jobs; losing one is harmless, so the
        hot path does not pay for a confirm round trip.
        """
        body = JobResult(job_id, JobStatus.PROCESSING).to_json()
        if self._appender is not None:
            await self._appender.append(
                job_id, body, message_type=PROCESSING_MESSAGE_TYPE, confirm=False
            )
            return
        if self._marker_channel is None:
            return
        await self._marker_channel.default_exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                message_id=job_id,
                type=PROCESSING_MESSAGE_TYPE,
            ),
            routing_key=topology.RESULTS_STREAM,
            mandatory=False,
        )

    async def get_result(self, job_id: str, timeout: float = 30.0) -> JobResult | None:
        """Waits up to ``timeout`` seconds for the job's final result; None if none came.

        Works from any process connected to the broker, for results published within the
        retention window, including ones published before this process started. ``timeout``
        is a maximum: 0 answers at once from what this process holds in memory.
        """
        reader = await self._result_reader()
        return await reader.wait_for(job_id, timeout)

    async def find_result(self, job_id: str, timeout: float = 2.0) -> JobResult | None:
        """The job's final result if one was recorded by now, without waiting for one to come.

        Reads the results stream's history when this process cannot vouch for the job from
        memory, for at most ``timeout`` seconds (0: memory only); None if no result was found.
        """
        reader = await self._result_reader()
        return await reader.wait_for(job_id, timeout, wait_for_new=False)

    async def _result_reader(self) -> ResultReader:
        async with self._lazy_lock:
            if self._reader is None:
                self._require_connection()
                assert self._connection is not None
                reader = ResultReader(
                    self._subscriber(self._connection),
                    cache_size=self._result_cache_size,
                    lookback_seconds=self._result_lookback,
                )
                await reader.start()
                self._reader = reader
            return self._reader

    def _stream_endpoints(self, connection: FailoverConnection) -> StreamEndpoints:
        """The stream port of every node of ``rabbitmq_url``, from the one in use now on."""
        from itl_controlplane_sdk.workers.stream_results import StreamEndpoint, StreamEndpoints

        urls = split_broker_urls(self.rabbitmq_url)
        current = next((i for i, url in enumerate(urls) if URL(url) == connection.url), 0)
        return StreamEndpoints(
            [
                StreamEndpoint.from_amqp_url(
                    url,
                    self.results_stream_port,
                    # TLS to the broker: to its stream port too
                    self._tls_context() if url.lower().startswith("amqps://") else None,
                )
                for url in [*urls[current:], *urls[:current]]
            ]
        )

    def _tls_context(self) -> ssl.SSLContext:
        """The one TLS context of this queue's connections to ``amqps://`` nodes, built at
        first use: building one reads the CA files (the system's CAs: tens of ms, more on a
        busy machine), and the stream endpoints are rebuilt for every result scan and
        reader. Nodes share it safely: each connection checks its own host name."""
        if self._ssl_context is None:
            self._ssl_context = (self._tls or BrokerTls()).context()
        return self._ssl_context

    async def _start_appender(self, connection: FailoverConnection) -> ResultAppender | None:
        """The stream protocol's result writer, or None when ``auto`` falls back to AMQP."""
        from itl_controlplane_sdk.workers.stream_results import ResultAppender

        endpoints = self._stream_endpoints(connection)
        appender = ResultAppender(
            endpoints,
            topology.RESULTS_STREAM,
            timeout=self._publish_timeout,
            name=f"itl-results {self.queue_name}",
        )
        try:
            await appender.start(
                timeout=self._connect_timeout
                if self.results_protocol == "stream"
                else min(self._connect_timeout, AUTO_PROBE_TIMEOUT),
                cluster_name=_cluster_name(connection),
            )
        except Exception as exc:
            where = f"the stream protocol at {endpoints.current}"
            if self.results_protocol == "stream":
                raise BrokerUnavailableError(
                    f"cannot use {where} (RESULTS_PROTOCOL=stream needs the broker's "
                    f"rabbitmq_stream plugin): {self._error(exc)}"
                ) from None
            log.info("results go over AMQP: %s is not usable: %s", where, self._error(exc))
            return None
        return appender

    def _subscriber(
        self, connection: FailoverConnection
    ) -> Callable[[float, RecordHandler], Awaitable[Subscription]]:
        """How the result reader subscribes to the results stream, over this queue's protocol."""
        if self._appender is None:
            return lambda since, on_record: AmqpSubscription.open(connection, since, on_record)
        from itl_controlplane_sdk.workers.stream_results import StreamSubscription

        async def subscribe(since: float, on_record: RecordHandler) -> Subscription:
            subscription = StreamSubscription(
                self._stream_endpoints(connection),
                topology.RESULTS_STREAM,
                on_record,
                name=f"itl-results-reader {self.queue_name}",
            )
            return await subscription.open(since)

        return subscribe

    async def get_queue_stats(
        self,
        queues: Sequence[str] | None = None,
        *,
        queue_type: replication.QueueType | None = None,
    ) -> dict[str, Any]:
        """Depth and consumers of the job queue, the results stream and the DLQ.

        Never raises for broker trouble: ``connected`` is False and ``error`` says why; a
        missing queue has ``exists: False`` and an ``error`` instead of counts. In replicated
        mode (this queue's, or ``queue_type``) a job queue's counts are those of its priority
        bands summed, with each band's depth under ``bands``.
        """
        queue_type = queue_type or self.queue_type
        names = (
            list(queues)
            if queues is not None
            else [
                self.queue_name,
                topology.RESULTS_STREAM,
                topology.DEAD_LETTER_QUEUE,
            ]
        )
        if self._connection is None or self._connection.is_closed:
            return {"connected": False, "queues": {}, "error": "not connected to RabbitMQ"}
        stats: dict[str, Any] = {}
        try:
            for name in names:
                if queue_type == "classic" or not replication.is_job_queue(name):
                    stats[name] = await self._passive_queue_stats(name)
                    continue
                bands = {
                    band: await self._passive_queue_stats(band)
                    for band in replication.band_queues(name, queue_type)
                }
                stats[name] = replication.summed_stats(bands, name, queue_type)
        except Exception as exc:
            return {"connected": False, "queues": stats, "error": self._error(exc)}
        return {"connected": True, "queues": stats}

    async def _passive_queue_stats(self, name: str) -> dict[str, Any]:
        """One passive declare on a reused channel (``queue_stats``: up to ``stats_channels``
        of them, for a reader such as the operator's autoscaler that polls many queues)."""
        assert self._connection is not None
        return await self._stats.read(self._connection, name)

    async def publish_heartbeat(self, heartbeat: Heartbeat) -> None:
        _, channel = self._require_connection()
        exchange = await channel.get_exchange(topology.HEARTBEAT_EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                heartbeat.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
                expiration=max(1.0, heartbeat.expires_after),
            ),
            routing_key="",
            mandatory=False,
            timeout=self._publish_timeout,
        )

    async def get_worker_heartbeats(self, pool: str | None = None) -> list[dict[str, Any]]:
        """Newest heartbeat of each live worker (optionally of one pool).

        The first call subscribes; until one heartbeat interval has passed the list may
        miss workers (``heartbeats_complete_since`` tells when the view became complete).
        """
        async with self._lazy_lock:
            if self._monitor is None:
                connection, _ = self._require_connection()
                monitor = HeartbeatMonitor(connection)
                await monitor.start()
                self._monitor = monitor
        return self._monitor.snapshot(pool)

    def on_worker_idle(self, pool: str, callback: Callable[[], None] | None) -> bool:
        """Call ``callback`` whenever a worker of ``pool`` reports it turned idle (None:
        stop); ``HeartbeatMonitor.on_worker_idle``. Only once ``get_worker_heartbeats``
        subscribed: returns whether it did."""
        if self._monitor is None:
            return False
        self._monitor.on_worker_idle(pool, callback)
        return True

    def arrival_watch(self) -> ArrivalWatch:
        """The connection's arrival queues (``workers.arrivals``), created at first use."""
        if self._arrivals is None:
            connection, _ = self._require_connection()
            self._arrivals = ArrivalWatch(connection)
        return self._arrivals

    @property
    def heartbeats_since(self) -> float | None:
        """When the heartbeat subscription started (epoch seconds), or None."""
        return self._monitor.started_at if self._monitor is not None else None

    async def get_dlq_messages(self, limit: int = 100) -> list[dict[str, Any]]:
        """Dead-lettered jobs with their reasons, oldest first; they stay in the DLQ."""
        connection, _ = self._require_connection()
        return await dead_letters.peek(connection, limit)

    async def redrive_dlq(self, limit: int | None = None) -> int:
        """Moves dead-lettered jobs back to their queues (attempt reset to 1); returns the count."""
        connection, _ = self._require_connection()
        return await dead_letters.redrive(
            connection, limit, timeout=self._publish_timeout, queue_type=self.queue_type
        )

    async def wait_until_connected(self, timeout: float) -> bool:
        """Polls until the connection is back and answers (after a broker restart).

        The robust connection's state alone is not enough: a socket the restarting broker
        accepted and then dropped still reads as open until something is written to it, so
        the next publish would fail. A channel opened and closed is a round trip that
        surfaces such a socket (the robust connection then reconnects and we keep polling).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_connected and await self._answers(deadline - time.monotonic()):
                return True
            await asyncio.sleep(0.1)
        return False

    async def _answers(self, timeout: float) -> bool:
        connection, _ = self._require_connection()
        try:
            async with asyncio.timeout(max(timeout, 0.1)):
                channel = await connection.channel(publisher_confirms=False)
                await channel.close()
        except Exception:  # any failure means "not yet": the caller polls on
            return False
        return True
