"""Least-privilege RabbitMQ permissions per role, as configure/write/read regular expressions.

RabbitMQ checks three permissions per virtual host against the name of the queue or exchange
an operation touches: **configure** (declare, delete), **write** (publish to an exchange,
bind a queue: write on the queue), **read** (consume, get, purge a queue; bind from an
exchange: read on the exchange). Passive declares, which the SDK uses for queue statistics,
need none. The regexes below name exactly the objects of ``contract.topology`` each role
uses, so one pool's workers cannot consume another pool's queue and a submitter can read
nothing but results (so it cannot purge, or read, any job queue).

Workers declare the shared topology idempotently on connect (whoever comes first creates it),
so they get *configure* on the shared objects; RabbitMQ cannot grant "declare" without
"delete", so a worker could also delete them. Submitters declare nothing. Publishing to the
default exchange (results, retries and cancels go there) needs write on ``amq.default``, which
RabbitMQ does not narrow by target queue; results over the stream protocol need write on the
results stream itself. docs/security.md lists both as known limits.

Pure module: no broker client; ``tools/rabbitmq/broker_users.py`` applies these with
``rabbitmqctl``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from itl_controlplane_sdk.contract import replication, topology
from itl_controlplane_sdk.contract.topology import CANCELLATIONS_STREAM

DEFAULT_EXCHANGE = "amq.default"
HEARTBEAT_READERS = re.escape(topology.HEARTBEAT_SUBSCRIPTION_PREFIX) + "[0-9a-f]+"
"""The exclusive queues ``get_worker_heartbeats`` reads heartbeats through."""
ARRIVAL_WATCHERS = re.escape(topology.ARRIVAL_WATCH_PREFIX) + "[0-9a-f]+"
"""The capped queues the autoscaler binds like an idle pool's queue (``workers.arrivals``)."""
JOB_EXCHANGES = tuple(
    re.escape(exchange)
    for band in replication.BANDS
    for exchange in (band.exchange, band.unrouted_exchange)
)
"""Every band's job exchange and alternate exchange: what a pool's queue is bound to."""

ROLES = ("submitter", "worker", "autoscaler", "admin")


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str
    tags: tuple[str, ...] = ()


def _names(*names: str) -> str:
    """An anchored regex matching exactly these names (already-escaped patterns allowed)."""
    return "^(" + "|".join(names) + ")$"


def _q(name: str) -> str:
    return re.escape(name)


SHARED_TOPOLOGY = tuple(
    _q(name)
    for name in (
        topology.JOB_EXCHANGE,
        topology.UNROUTED_EXCHANGE,
        topology.DEAD_LETTER_EXCHANGE,
        topology.DEAD_LETTER_QUEUE,
        topology.HEARTBEAT_EXCHANGE,
        topology.RESULTS_STREAM,
        CANCELLATIONS_STREAM,
    )
)
"""What ``JobQueue.connect`` declares besides its own queue."""


def submitter() -> Permissions:
    """An API replica or SDK producer: publishes jobs and cancels, reads results.

    Nothing to configure and no job queue to read: a producer with these permissions runs
    with ``declare_topology=False`` (the API's ``API_DECLARE_TOPOLOGY=false``) and relies on
    the workers (or an admin) having declared the topology. Declaring a job queue would need
    read on it (RabbitMQ checks read on a queue that dead-letters), and read allows a purge.
    """
    return Permissions(
        configure="^$",
        write=_names(_q(topology.JOB_EXCHANGE), _q(DEFAULT_EXCHANGE), _q(topology.RESULTS_STREAM)),
        read=_names(_q(topology.RESULTS_STREAM)),
    )


def worker(job_queue: str) -> Permissions:
    """A worker of the pool whose queue is ``job_queue``: consumes it and nothing else."""
    queue = _q(job_queue)
    retries = _q(job_queue) + r"\.retry\.[0-9]+ms"
    return Permissions(
        configure=_names(*SHARED_TOPOLOGY, queue, retries),
        write=_names(
            queue,
            retries,
            _q(DEFAULT_EXCHANGE),
            _q(topology.JOB_EXCHANGE),
            _q(topology.UNROUTED_EXCHANGE),
            _q(topology.DEAD_LETTER_EXCHANGE),
            _q(topology.DEAD_LETTER_QUEUE),
            _q(topology.HEARTBEAT_EXCHANGE),
            _q(topology.RESULTS_STREAM),
        ),
        read=_names(
            queue,
            retries,
            _q(topology.JOB_EXCHANGE),
            _q(topology.UNROUTED_EXCHANGE),
            _q(topology.DEAD_LETTER_EXCHANGE),
            _q(CANCELLATIONS_STREAM),
        ),
    )


def autoscaler() -> Permissions:
    """The operator's autoscaler: queue depths (passive declares), worker heartbeats, and
    the arrival queues that wake an idle pool.

    Binding an arrival queue to the job exchanges needs read on them. That lets this user
    bind only its own arrival queues (the only queues it may write), so what it can receive
    is a copy of the jobs of pools it watches, at most two at a time per pool; it still
    cannot consume, purge or publish to any job queue.
    """
    return Permissions(
        configure=_names(HEARTBEAT_READERS, ARRIVAL_WATCHERS, _q(topology.HEARTBEAT_EXCHANGE)),
        write=_names(HEARTBEAT_READERS, ARRIVAL_WATCHERS),
        read=_names(
            HEARTBEAT_READERS, ARRIVAL_WATCHERS, _q(topology.HEARTBEAT_EXCHANGE), *JOB_EXCHANGES
        ),
        tags=("monitoring",),
    )


def admin() -> Permissions:
    """Topology changes, DLQ listing and redrive, queue deletion: everything in the vhost."""
    return Permissions(configure=".*", write=".*", read=".*", tags=("administrator",))


def for_role(role: str, job_queue: str | None = None) -> Permissions:
    match role:
        case "submitter":
            return submitter()
        case "worker":
            if not job_queue:
                raise ValueError("a worker's permissions need its pool's queue")
            return worker(job_queue)
        case "autoscaler":
            return autoscaler()
        case "admin":
            return admin()
    raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
