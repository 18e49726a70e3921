"""Raw inputs (pod bodies, SDK heartbeat dicts, queue statistics) to ``scaling`` types.

The poll loop (``autoscaler.scaler``) gathers dicts from Kubernetes and from the SDK's
``JobQueue``; this module reads them defensively into the frozen types ``scaling.decide``
takes. Every way the statistics can be unusable becomes an ``ObservationFailure`` with a
CamelCase reason, because the ``ScalingActive`` condition shows that reason to users.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from workerpool_operator import scaling

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

BROKER_UNREACHABLE = "BrokerUnreachable"
QUEUE_NOT_FOUND = "QueueNotFound"
STATS_TIMEOUT = "StatsTimeout"
STATS_INVALID = "StatsInvalid"
BROKER_SECRET_MISSING = "BrokerSecretMissing"


@dataclasses.dataclass(frozen=True, slots=True)
class QueueReading:
    """The numbers one poll read for a pool's queue."""

    ready: int
    consumers: int
    dead_letters: int | None


def _epoch(timestamp: object) -> float | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def pod_view(pod: Mapping[str, Any]) -> scaling.PodView:
    """What the decision needs to know about one pod body."""
    meta: Mapping[str, Any] = pod.get("metadata") or {}
    status: Mapping[str, Any] = pod.get("status") or {}
    ready = status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    annotations: Mapping[str, Any] = meta.get("annotations") or {}
    return scaling.PodView(
        name=str(meta.get("name", "")),
        ready=ready,
        terminating=meta.get("deletionTimestamp") is not None,
        created_at=_epoch(meta.get("creationTimestamp")),
        deletion_cost=_int(annotations.get(DELETION_COST_ANNOTATION)),
    )


def heartbeats(
    raw: Iterable[Mapping[str, Any]], *, queue: str
) -> tuple[scaling.WorkerHeartbeat, ...]:
    """Heartbeats of workers consuming ``queue``; malformed entries are skipped.

    The SDK filters by pool name already. Filtering by queue too keeps a worker that
    serves another queue under the same pool name from adding phantom in-flight work.
    """
    beats = []
    for entry in raw:
        if entry.get("queue", queue) != queue:
            continue
        in_flight, capacity = _int(entry.get("in_flight")), _int(entry.get("capacity"))
        timestamp = entry.get("timestamp")
        if in_flight is None or capacity is None or not isinstance(timestamp, int | float):
            continue
        processed, failed = _int(entry.get("jobs_processed")), _int(entry.get("jobs_failed"))
        finished = None if processed is None or failed is None else processed + failed
        beats.append(
            scaling.WorkerHeartbeat(
                worker_id=str(entry.get("worker_id", "")),
                in_flight=max(in_flight, 0),
                capacity=max(capacity, 0),
                draining=bool(entry.get("draining", False)),
                timestamp=float(timestamp),
                jobs_finished=finished,
            )
        )
    return tuple(beats)


def queue_reading(
    stats: Mapping[str, Any], *, queue: str, dead_letter_queue: str | None
) -> QueueReading | scaling.ObservationFailure:
    """Read ``JobQueue.get_queue_stats()`` output for one queue, or say why not."""
    if not stats.get("connected"):
        error = str(stats.get("error") or "not connected to RabbitMQ")
        return scaling.ObservationFailure(BROKER_UNREACHABLE, error)
    queues: Mapping[str, Any] = stats.get("queues") or {}
    entry: Mapping[str, Any] | None = queues.get(queue)
    if entry is None or entry.get("exists") is False:
        error = str((entry or {}).get("error") or f"queue {queue!r} not found")
        return scaling.ObservationFailure(QUEUE_NOT_FOUND, error)
    ready, consumers = _int(entry.get("message_count")), _int(entry.get("consumer_count"))
    if ready is None or consumers is None or ready < 0 or consumers < 0:
        return scaling.ObservationFailure(STATS_INVALID, f"unreadable statistics for {queue!r}")
    dead_letters = None
    if dead_letter_queue is not None:
        dlq: Mapping[str, Any] = queues.get(dead_letter_queue) or {}
        dead_letters = _int(dlq.get("message_count"))
    return QueueReading(ready=ready, consumers=consumers, dead_letters=dead_letters)


def observation(
    *,
    current_replicas: int,
    reading: QueueReading | scaling.ObservationFailure,
    beats: tuple[scaling.WorkerHeartbeat, ...],
    pods: Iterable[scaling.PodView],
) -> scaling.Observation:
    """One ``scaling.Observation`` from the parts of a poll."""
    pod_views = tuple(sorted(pods, key=lambda p: p.name))
    if isinstance(reading, scaling.ObservationFailure):
        return scaling.Observation(
            current_replicas=current_replicas, pods=pod_views, heartbeats=beats, failure=reading
        )
    return scaling.Observation(
        current_replicas=current_replicas,
        ready_messages=reading.ready,
        consumers=reading.consumers,
        heartbeats=beats,
        pods=pod_views,
        dead_letters=reading.dead_letters,
    )
