"""Inspecting and redriving the dead-letter queue.

Both operations take at most the number of messages present when they start, so a message
that cannot be redriven (it still does not decode) goes back to the DLQ without looping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from itl_controlplane_sdk.contract import replication, topology
from itl_controlplane_sdk.errors import JobSubmissionError, UndecodableJobError
from itl_controlplane_sdk.workers import amqp
from itl_controlplane_sdk.workers.consumer import (
    HEADER_ATTEMPTS,
    HEADER_FAILED_AT,
    HEADER_QUEUE,
    HEADER_REASON,
    HEADER_ROUTING_KEY,
)
from itl_controlplane_sdk.workers.envelope import JobEnvelope, decode_job

DEAD_LETTER_HEADERS = (
    HEADER_REASON,
    HEADER_QUEUE,
    HEADER_ROUTING_KEY,
    HEADER_ATTEMPTS,
    HEADER_FAILED_AT,
)


BROKER_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-delivery-count",
    }
)
"""Headers the broker adds on dead-lettering and redelivery; a redriven job starts clean."""


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def broker_death(headers: Mapping[str, Any]) -> dict[str, Any] | None:
    """The newest ``x-death`` record: present when the broker itself dead-lettered the job
    (a quorum queue's delivery limit, or a worker's reject), not the worker."""
    deaths = headers.get("x-death")
    if not isinstance(deaths, list) or not deaths or not isinstance(deaths[0], Mapping):
        return None
    death = deaths[0]
    reason = _text(death.get("reason", "rejected"))
    queue = _text(death.get("queue", "?"))
    if reason == "delivery_limit":
        why = (
            f"delivery limit reached in {queue}: the job was delivered "
            f"{replication.DELIVERY_LIMIT} times and never settled (each worker that took it "
            "died or gave it back)"
        )
    else:
        why = f"dead-lettered by the broker from {queue} ({reason})"
    return {"reason": why, "queue": queue}


def describe(message: AbstractIncomingMessage) -> dict[str, Any]:
    headers = message.headers or {}
    death = broker_death(headers) if HEADER_REASON not in headers else None
    try:
        body: Any = json.loads(message.body)
    except (ValueError, RecursionError):  # poison stays readable: deep nesting shows as text
        body = message.body.decode(errors="replace")
    return {
        "job_id": message.message_id,
        "reason": death["reason"]
        if death
        else headers.get(HEADER_REASON, "rejected by the broker (no reason recorded)"),
        "queue": death["queue"] if death else headers.get(HEADER_QUEUE),
        "routing_key": headers.get(HEADER_ROUTING_KEY),
        "attempts": headers.get(HEADER_ATTEMPTS),
        "failed_at": headers.get(HEADER_FAILED_AT),
        "body": body,
    }


async def peek(connection: AbstractConnection, limit: int) -> list[dict[str, Any]]:
    async with connection.channel() as channel:
        queue = await channel.declare_queue(topology.DEAD_LETTER_QUEUE, passive=True)
        taken: list[AbstractIncomingMessage] = []
        for _ in range(min(limit, queue.declaration_result.message_count or 0)):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(message)
        described = [describe(m) for m in taken]
        for message in reversed(taken):
            await message.nack(requeue=True)
    return described


async def redrive(
    connection: AbstractConnection,
    limit: int | None,
    *,
    timeout: float,
    queue_type: replication.QueueType = "classic",
) -> int:
    moved = 0
    # Messages that stay are held unacked until the end: requeued at once, each would come
    # straight back from the next get and use up the budget, hiding the jobs behind it.
    kept: list[AbstractIncomingMessage] = []
    async with connection.channel(publisher_confirms=True, on_return_raises=True) as channel:
        queue = await channel.declare_queue(topology.DEAD_LETTER_QUEUE, passive=True)
        available = queue.declaration_result.message_count or 0
        budget = available if limit is None else min(limit, available)
        try:
            for _ in range(budget):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                try:
                    envelope = decode_job(message.body)
                except UndecodableJobError:
                    kept.append(message)
                    continue
                if await _republish(
                    channel, message, envelope, timeout=timeout, queue_type=queue_type
                ):
                    await message.ack()
                    moved += 1
                else:
                    kept.append(message)
        finally:
            for message in reversed(kept):
                await message.nack(requeue=True)
    return moved


async def _republish(
    channel: AbstractChannel,
    message: AbstractIncomingMessage,
    envelope: JobEnvelope,
    *,
    timeout: float,
    queue_type: replication.QueueType,
) -> bool:
    """Back to the original queue; if that queue is gone, to whichever queue now serves the
    job's provider (through the job exchange). False when neither accepts it."""
    headers = message.headers or {}
    death = broker_death(headers) if HEADER_QUEUE not in headers else None
    original = headers.get(HEADER_QUEUE) or (death["queue"] if death else None)
    fresh = envelope.model_copy(update={"attempt": 1})
    routes = [
        ("", str(original or topology.DEFAULT_JOB_QUEUE)),
        (
            replication.band_of(envelope.priority, queue_type).exchange,
            topology.job_routing_key(
                envelope.provider_namespace, envelope.resource_type, envelope.operation
            ),
        ),
    ]
    for exchange_name, routing_key in routes:
        try:
            await amqp.publish_confirmed(
                channel,
                exchange_name,
                fresh.to_json(),
                amqp.persistent_properties(
                    envelope.job_id,
                    priority=envelope.priority,
                    headers={
                        k: v
                        for k, v in headers.items()
                        if k not in DEAD_LETTER_HEADERS and k not in BROKER_HEADERS
                    },
                ),
                routing_key,
                timeout=timeout,
                what=f"redrive of job {envelope.job_id}",
            )
        except JobSubmissionError:
            continue
        return True
    return False
