"""Inspecting and redriving the dead-letter queue.

Both operations take at most the number of messages present when they start, so a message
that cannot be redriven (it still does not decode) goes back to the DLQ without looping.
"""

from __future__ import annotations

import json
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from itl_controlplane_sdk.workers import amqp, topology
from itl_controlplane_sdk.workers.consumer import (
    HEADER_ATTEMPTS,
    HEADER_FAILED_AT,
    HEADER_QUEUE,
    HEADER_REASON,
    HEADER_ROUTING_KEY,
)
from itl_controlplane_sdk.workers.envelope import UndecodableJobError, decode_job

DEAD_LETTER_HEADERS = (
    HEADER_REASON,
    HEADER_QUEUE,
    HEADER_ROUTING_KEY,
    HEADER_ATTEMPTS,
    HEADER_FAILED_AT,
)


def describe(message: AbstractIncomingMessage) -> dict[str, Any]:
    headers = message.headers or {}
    try:
        body: Any = json.loads(message.body)
    except ValueError:
        body = message.body.decode(errors="replace")
    return {
        "job_id": message.message_id,
        "reason": headers.get(HEADER_REASON, "rejected by the broker (no reason recorded)"),
        "queue": headers.get(HEADER_QUEUE),
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


async def redrive(connection: AbstractConnection, limit: int | None, *, timeout: float) -> int:
    moved = 0
    async with connection.channel(publisher_confirms=True, on_return_raises=True) as channel:
        queue = await channel.declare_queue(topology.DEAD_LETTER_QUEUE, passive=True)
        available = queue.declaration_result.message_count or 0
        budget = available if limit is None else min(limit, available)
        for _ in range(budget):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            try:
                envelope = decode_job(message.body)
            except UndecodableJobError:
                await message.nack(requeue=True)
                continue
            headers = message.headers or {}
            origin = str(headers.get(HEADER_QUEUE) or topology.DEFAULT_JOB_QUEUE)
            fresh = envelope.model_copy(update={"attempt": 1})
            await amqp.publish_confirmed(
                channel.default_exchange,
                aio_pika.Message(
                    fresh.to_json(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    priority=envelope.priority,
                    message_id=envelope.job_id,
                    headers={k: v for k, v in headers.items() if k not in DEAD_LETTER_HEADERS},
                ),
                origin,
                timeout=timeout,
                what=f"redrive of job {envelope.job_id}",
            )
            await message.ack()
            moved += 1
    return moved
