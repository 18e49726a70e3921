"""Queue types: classic single-node queues, or queues replicated across a RabbitMQ cluster.

``classic`` is the original topology: one classic queue per pool with ``x-max-priority`` 10.
Its messages live on one node; when that node dies they wait for it (or die with its disk).

``replicated`` keeps every message on a quorum of the cluster's nodes: pool queues, retry queues
and the dead-letter queue are quorum queues, and the results and cancellations streams are
replicated to ``DEFAULT_REPLICAS`` nodes. Quorum queues have no message priorities in RabbitMQ
3.10, so a pool's queue becomes three *priority bands*, each a quorum queue of its own fed by an
exchange of its own with the same routing keys and bindings:

========  ==========  =====================  ==========================
band      priorities  queue                  exchange (alternate)
========  ==========  =====================  ==========================
high      7-10        ``{queue}.high``       ``provider.exchange.high``
normal    4-6         ``{queue}``            ``provider.exchange``
low       0-3         ``{queue}.low``        ``provider.exchange.low``
========  ==========  =====================  ==========================

Workers consume the three bands and start the waiting job of the highest band first; within a
band, jobs run in arrival order whatever their exact priority (``docs/queue-topology.md`` states
the guarantee). The normal band keeps the pool's queue name, so a dead letter's original queue
and a redrive behave as in classic mode.

This module only names things and builds declaration arguments: it imports no broker client.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

from itl_controlplane_sdk.contract import topology

QueueType = Literal["classic", "replicated"]
QUEUE_TYPES: tuple[QueueType, ...] = ("classic", "replicated")

DEFAULT_REPLICAS = 3
"""Nodes holding each stream (``x-initial-cluster-size``) in replicated mode; quorum queues
use the broker's default (``quorum_cluster_size``, 3)."""

DELIVERY_LIMIT = 10
"""Deliveries of one job a quorum queue allows before it dead-letters the job (reason
``delivery_limit``): a job that kills every worker that takes it stops after ten workers."""


@dataclasses.dataclass(frozen=True, slots=True)
class Band:
    name: str
    lowest: int
    highest: int
    suffix: str

    def queue(self, job_queue: str) -> str:
        return f"{job_queue}{self.suffix}"

    @property
    def exchange(self) -> str:
        return f"{topology.JOB_EXCHANGE}{self.suffix}"

    @property
    def unrouted_exchange(self) -> str:
        return f"{topology.UNROUTED_EXCHANGE}{self.suffix}"

    def routes(self, bindings: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """(exchange, routing key) pairs a pool queue of this band is bound with: each
        pattern on the band's job exchange, or, for the catch-all queue (no bindings), the
        band's alternate exchange, which receives every job no bound queue claims."""
        if bindings:
            return tuple((self.exchange, pattern) for pattern in bindings)
        return ((self.unrouted_exchange, ""),)


HIGH = Band("high", 7, topology.MAX_PRIORITY, ".high")
NORMAL = Band("normal", 4, 6, "")
LOW = Band("low", 0, 3, ".low")
BANDS = (HIGH, NORMAL, LOW)
"""Highest first: the order workers start waiting jobs in."""


def bands(queue_type: QueueType) -> tuple[Band, ...]:
    """The bands of a pool queue: one (the queue itself) in classic mode."""
    return BANDS if queue_type == "replicated" else (NORMAL,)


def band_of(priority: int, queue_type: QueueType) -> Band:
    """The band a job of ``priority`` (0-10, checked by the caller) waits in."""
    if queue_type == "classic":
        return NORMAL
    return next(band for band in BANDS if priority >= band.lowest)


def band_queues(job_queue: str, queue_type: QueueType) -> list[str]:
    """Every queue a pool's jobs wait in, highest band first."""
    return [band.queue(job_queue) for band in bands(queue_type)]


def is_job_queue(name: str) -> bool:
    """False for the shared objects (results, cancellations, DLQ) that are never banded."""
    return name not in (
        topology.RESULTS_STREAM,
        topology.DEAD_LETTER_QUEUE,
        topology.CANCELLATIONS_STREAM,
    )


def job_queue_arguments(queue_type: QueueType) -> dict[str, Any]:
    """Arguments of a pool queue (every band); failed jobs go to the DLQ through the DLX."""
    dead_letters = {
        "x-dead-letter-exchange": topology.DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": topology.DEAD_LETTER_ROUTING_KEY,
    }
    if queue_type == "classic":
        return {"x-max-priority": topology.MAX_PRIORITY, **dead_letters}
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        **dead_letters,
        **AT_LEAST_ONCE_DEAD_LETTERING,
    }


AT_LEAST_ONCE_DEAD_LETTERING = {
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}
"""A quorum queue then keeps a dead-lettered message until the target queue confirms it
(the default, at-most-once, drops it if the target is unavailable)."""


def retry_queue_arguments(job_queue: str, delay_ms: int, queue_type: QueueType) -> dict[str, Any]:
    """A delay queue: messages expire after ``delay_ms`` back into ``job_queue``."""
    arguments: dict[str, Any] = {
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": job_queue,
    }
    if queue_type == "replicated":
        arguments.update({"x-queue-type": "quorum", **AT_LEAST_ONCE_DEAD_LETTERING})
    return arguments


def dead_letter_queue_arguments(queue_type: QueueType) -> dict[str, Any]:
    return {"x-queue-type": "quorum"} if queue_type == "replicated" else {}


def stream_arguments(queue_type: QueueType, replicas: int = DEFAULT_REPLICAS) -> dict[str, Any]:
    """Extra arguments of the results and cancellations streams."""
    return {"x-initial-cluster-size": replicas} if queue_type == "replicated" else {}


def summed_stats(stats: dict[str, Any], job_queue: str, queue_type: QueueType) -> dict[str, Any]:
    """One ``get_queue_stats`` entry for a pool queue from the entries of its bands.

    Counts are summed; if any band is missing, the pool queue is reported missing (with the
    band's error), never as a smaller depth. ``bands`` keeps each band's count.
    """
    names = band_queues(job_queue, queue_type)
    counts: dict[str, int] = {}
    consumers: list[int] = []
    for name in names:
        entry = stats.get(name) or {}
        if not entry.get("exists"):
            error = entry.get("error") or f"queue {name!r} not read"
            return {"exists": False, "message_count": None, "consumer_count": None, "error": error}
        counts[name] = int(entry["message_count"])
        consumers.append(int(entry["consumer_count"]))
    return {
        "exists": True,
        "message_count": sum(counts.values()),
        "consumer_count": min(consumers),
        "bands": counts,
    }
