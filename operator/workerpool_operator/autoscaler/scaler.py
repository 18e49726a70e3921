"""One pool's poll: gather inputs, ``scaling.decide``, apply the decision, report it.

``PoolScaler.poll`` is the whole runtime path of one poll for one pool, in the order that
keeps busy workers safe:

1. Take the pool's latest body from the operator's cache, parsed once per version of
   the body (``pools.CachedPool``): spec and annotation changes take effect at the next
   poll, and a poll never re-validates an unchanged body. The policy
   (``policy.policy_from_spec``) is likewise rebuilt only for a new body.
2. Read the broker URL from the pool's Secret, then queue depth and heartbeats through
   the shared ``BrokerHub``.
3. ``scaling.decide``.
4. Patch ``pod-deletion-cost`` on the pods the decision names, **then** lower (or raise)
   ``spec.replicaCount``. If either write fails, the new history is dropped and the next
   poll decides again from the old one. The pool as written goes into the operator's
   cache at once, and then the Deployment's replicas are set through its scale
   subresource, so the pods change without waiting for the watch and a reconcile; the
   reconcile and the Deployment's watch event compare against that cached pool and find
   nothing to do. A failed Deployment write is only logged: the reconcile the pool's
   change triggers applies the same count.
   A poll whose body is older than the pool as our own last scale left it is skipped: the
   watch that feeds the cache can lag behind our write (under load, by seconds), and
   deciding from the old ``replicaCount`` would make the step just applied a second time.
5. Apply the autoscaler's status fields, post Events on transitions, and update the
   metrics. A new decision log entry, ``lastScaleTime`` or condition status/reason is
   written at once; a change of the queue numbers or a condition's message alone at most
   every ``QUEUE_STATUS_SECONDS``, so a busy pool does not cost a status write (and the
   watch event it causes) at every poll.

Collaborators are injected (``Cluster``, ``Broker``, an event poster, a clock), so unit
tests run this module against fakes. ``handlers`` wires in the real ones.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from itl_controlplane_sdk.contract.replication import QueueType
from workerpool_operator import api, conditions, kube, scaling
from workerpool_operator.autoscaler import observe, report
from workerpool_operator.autoscaler.broker import BrokerRead
from workerpool_operator.autoscaler.metrics import AutoscalerMetrics
from workerpool_operator.autoscaler.policy import policy_from_spec
from workerpool_operator.pools import CachedPool, EventPoster

logger = logging.getLogger(__name__)

QUEUE_STATUS_SECONDS = 10.0
"""Least time between two status writes that change only ``status.queue`` or the wording
of a condition.

The numbers move at every poll while a pool works; ``kubectl get wp`` showing them up to
10 s late is the price of not writing status (and receiving the watch event it causes)
every 2 s per pool. Metrics carry every poll's numbers."""


class Cluster(Protocol):
    """The Kubernetes side (``cluster.AutoscalerKube`` in production)."""

    async def broker_url(self, namespace: str, ref: api.SecretKeyRef) -> str | None: ...

    async def set_deletion_costs(
        self, namespace: str, costs: Sequence[scaling.DeletionCost]
    ) -> None: ...

    async def scale(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        """Set the pool's replicaCount; return the pool as written."""
        ...

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Set the replicas of the pool's Deployment."""
        ...

    async def apply_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]: ...


class Broker(Protocol):
    """The broker side (``broker.BrokerHub`` in production)."""

    async def read(
        self, url: str, *, queue: str, pool: str, queue_type: QueueType = "classic"
    ) -> BrokerRead: ...

    async def wake_on_arrival(
        self,
        url: str,
        *,
        key: str,
        bindings: Sequence[str],
        on_arrival: Callable[[], None],
        queue_type: QueueType = "classic",
    ) -> None: ...

    async def stop_waking(self, url: str, key: str) -> None: ...

    def wake_on_idle(self, url: str, *, pool: str, on_idle: Callable[[], None] | None) -> bool: ...


@dataclasses.dataclass
class PoolState:
    """What one pool's poller remembers between polls (in memory only)."""

    history: scaling.ScalingHistory = dataclasses.field(default_factory=scaling.ScalingHistory)
    previous: scaling.Decision | None = None
    log: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    last_queue: dict[str, int] | None = None
    last_scale_time: str | None = None
    applied_status: dict[str, Any] | None = None
    applied_at: float = 0.0
    conditions: list[api.Condition] | None = None
    """The autoscaler's conditions as last written: fresher than a body the watch has not
    delivered yet, so an unchanged condition is never rewritten with a new time."""
    scaled_version: str | None = None
    """The pool's resourceVersion right after our last scale."""
    settled: tuple[Any, ...] | None = None
    """What the last poll had to report (``_report_key``), once status showed all of it.
    A poll with the same key has nothing to write and no Event to post, and skips
    building the status fields: that is most polls of most pools."""


def predates(body: Mapping[str, Any], version: str | None) -> bool:
    """Whether ``body`` is older than ``version`` of the same pool.

    resourceVersions are compared as integers, as ``pools.PoolCache`` does (etcd-backed
    servers); when either is not a number the body counts as fresh.
    """
    seen = str((body.get("metadata") or {}).get("resourceVersion", ""))
    return version is not None and seen.isdigit() and version.isdigit() and int(seen) < int(version)


def _status_log(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The decision log already in status, so a restarted operator continues it."""
    entries = (body.get("status") or {}).get("decisions") or []
    return [dict(e) for e in entries if isinstance(e, Mapping)]


class PoolScaler:
    """Polls and scales one WorkerPool."""

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        cluster: Cluster,
        broker: Broker,
        metrics: AutoscalerMetrics,
        post_event: EventPoster,
        clock: Callable[[], float] = time.time,
        remember: Callable[[Mapping[str, Any]], None] = lambda body: None,
        on_arrival: Callable[[], None] | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        """``remember`` puts the pool as our scale wrote it into the operator's cache;
        ``on_arrival`` (the poll loop's wake-up) is called when a job reaches the pool while
        it is at zero replicas, and ``on_idle`` when one of its workers turns idle while only
        busy workers keep it above its target; never when None."""
        self.namespace = namespace
        self.name = name
        self._cluster = cluster
        self._broker = broker
        self._metrics = metrics
        self._post_event = post_event
        self._clock = clock
        self._remember = remember
        self._on_arrival = on_arrival
        self._on_idle = on_idle
        self._idle_watched: str | None = None
        """The pool identity whose idle workers wake this poller, at ``_url``."""
        self._url: str | None = None
        """The broker URL of the last read, where the pool's arrival queue lives."""
        self.state = PoolState()
        self._started = False
        self._unreadable: CachedPool | None = None
        self._policy_of: tuple[CachedPool, scaling.ScalingPolicy] | None = None

    async def poll(
        self, cached: CachedPool, pods: Iterable[scaling.PodView]
    ) -> scaling.Decision | None:
        """One poll. Returns the decision, or None when the body is unusable or stale."""
        started = time.perf_counter()
        pool, body = cached.pool, cached.body
        if predates(body, self.state.scaled_version):
            logger.debug(
                "%s/%s: cached body older than our scale to resourceVersion %s; skipping poll",
                self.namespace,
                self.name,
                self.state.scaled_version,
            )
            return None
        if pool is None:
            if self._unreadable is not cached:
                self._unreadable = cached
                logger.warning("WorkerPool %s/%s unreadable: invalid spec", *self._key)
            return None
        if not self._started:
            self.state.log = _status_log(body)
            status = body.get("status") or {}
            self.state.last_scale_time = status.get("lastScaleTime")
            self._started = True

        seen = list(pods)
        decision = await self._decide(cached, pool, seen)
        try:
            await self._apply(pool, decision)
        except kube.KubeError as exc:
            logger.warning("scaling %s/%s failed: %s", self.namespace, self.name, exc)
            return decision
        await self._report(body, pool, decision)
        await self._arm_wake(pool, decision)
        self._arm_idle_wake(pool, decision)
        self._metrics.record(
            self.namespace,
            self.name,
            decision,
            ready_replicas=sum(1 for pod in seen if pod.ready and not pod.terminating),
            max_capacity=pool.spec.autoscaling.max_replicas * pool.spec.max_concurrent_jobs,
        )
        self._metrics.poll_duration.observe(time.perf_counter() - started)
        return decision

    @property
    def _key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def _arrival_key(self) -> str:
        """The pool's name for its arrival queue on the shared connection."""
        return f"{self.namespace}/{self.name}"

    def _policy(self, cached: CachedPool, pool: api.WorkerPool) -> scaling.ScalingPolicy:
        """The pool's policy, rebuilt only when the cache holds a new body."""
        if self._policy_of is None or self._policy_of[0] is not cached:
            self._policy_of = (cached, policy_from_spec(pool.spec, pool.metadata.annotations))
        return self._policy_of[1]

    async def _decide(
        self, cached: CachedPool, pool: api.WorkerPool, pods: list[scaling.PodView]
    ) -> scaling.Decision:
        policy = self._policy(cached, pool)
        current = api.desired_replicas(pool.spec)
        read = await self._read_broker(pool)
        observation = observe.observation(
            current_replicas=current, reading=read.reading, beats=read.heartbeats, pods=pods
        )
        return scaling.decide(policy, observation, self.state.history, self._clock())

    async def _read_broker(self, pool: api.WorkerPool) -> BrokerRead:
        try:
            url = await self._cluster.broker_url(self.namespace, pool.spec.rabbitmq.secret_ref)
        except kube.KubeError as exc:
            return BrokerRead(
                scaling.ObservationFailure(observe.BROKER_SECRET_MISSING, exc.message)
            )
        if url is None:
            ref = pool.spec.rabbitmq.secret_ref
            message = f"Secret {ref.name!r} has no key {ref.key!r} (or does not exist)"
            return BrokerRead(scaling.ObservationFailure(observe.BROKER_SECRET_MISSING, message))
        if url != self._url:
            await self.stop_waking()
            self._url = url
        return await self._broker.read(
            url,
            queue=api.effective_queue(pool),
            pool=api.pool_identity(pool),
            queue_type=pool.spec.rabbitmq.queue_type,
        )

    async def _apply(self, pool: api.WorkerPool, decision: scaling.Decision) -> None:
        """Deletion costs first, replicas second; commit the history only after both."""
        if decision.deletion_costs:
            await self._cluster.set_deletion_costs(self.namespace, decision.deletion_costs)
        if decision.replicas != decision.current_replicas:
            written = await self._cluster.scale(self.namespace, self.name, decision.replicas)
            version = (written.get("metadata") or {}).get("resourceVersion")
            self.state.scaled_version = str(version) if version is not None else None
            self._remember(written)
            now = datetime.fromtimestamp(self._clock(), UTC)
            self.state.last_scale_time = conditions.format_time(now)
            spec = pool.spec.model_copy(update={"replica_count": decision.replicas})
            await self._scale_deployment(api.desired_replicas(spec))

    async def _scale_deployment(self, replicas: int) -> None:
        """The Deployment's replicas, ahead of the reconcile (which repeats a failed write)."""
        try:
            await self._cluster.scale_deployment(self.namespace, self.name, replicas)
        except kube.NotFound:
            logger.debug("%s/%s: no Deployment yet; the reconcile creates it", *self._key)
        except kube.KubeError as exc:
            logger.info(
                "Deployment of %s/%s not scaled ahead of the reconcile: %s", *self._key, exc
            )

    async def _arm_wake(self, pool: api.WorkerPool, decision: scaling.Decision) -> None:
        """Keep an arrival queue while the pool stays at zero after a good read; else none.

        The read must have succeeded this poll: it shows the pool's queue exists, and an
        arrival queue bound without it would take the pool's jobs from the alternate
        exchange. A busy pool has none, so its jobs cost the broker nothing extra.
        """
        if self._url is None:
            return
        if self._on_arrival is None or decision.replicas > 0 or decision.failure is not None:
            await self._stop_arrival_wake()
            return
        await self._broker.wake_on_arrival(
            self._url,
            key=self._arrival_key,
            bindings=api.job_bindings(pool.spec),
            on_arrival=self._on_arrival,
            queue_type=pool.spec.rabbitmq.queue_type,
        )

    def _arm_idle_wake(self, pool: api.WorkerPool, decision: scaling.Decision) -> None:
        """Poll again as soon as a worker turns idle, while only busy workers hold the pool
        above what the decision wanted (a quiet pool's tail, a pin, a scale-down): that
        worker can then go within a fraction of a second of its last job, not a poll and a
        heartbeat later. Any other pool gains nothing from it and is not woken."""
        if self._url is None or self._on_idle is None:
            return
        held = decision.held_by_busy_workers and decision.failure is None
        if held and self._idle_watched is None:
            identity = api.pool_identity(pool)
            if self._broker.wake_on_idle(self._url, pool=identity, on_idle=self._on_idle):
                self._idle_watched = identity
        elif not held:
            self._stop_idle_wake()

    def _stop_idle_wake(self) -> None:
        if self._url is not None and self._idle_watched is not None:
            self._broker.wake_on_idle(self._url, pool=self._idle_watched, on_idle=None)
        self._idle_watched = None

    async def stop_waking(self) -> None:
        """Drop the pool's arrival queue and idle wake (the poller stops, or the pool is
        busy)."""
        self._stop_idle_wake()
        await self._stop_arrival_wake()

    async def _stop_arrival_wake(self) -> None:
        if self._url is not None:
            await self._broker.stop_waking(self._url, self._arrival_key)

    async def _report(
        self, body: Mapping[str, Any], pool: api.WorkerPool, decision: scaling.Decision
    ) -> None:
        state = self.state
        now = datetime.fromtimestamp(self._clock(), UTC)
        state.log = report.updated_log(state.log, decision, state.previous, now)
        state.last_queue = report.queue_status(decision) or state.last_queue
        key = _report_key(state, decision, pool.metadata.generation)
        if key == state.settled:
            state.history, state.previous = decision.history, decision
            return
        state.settled = None
        existing = state.conditions if state.conditions is not None else pool.status.conditions
        fields = report.status_fields(
            decision=decision,
            existing_conditions=existing,
            log=state.log,
            last_queue=state.last_queue,
            last_scale_time=state.last_scale_time,
            generation=pool.metadata.generation,
            now=now,
        )
        for event in report.events(decision, state.previous):
            self._post_event(body, event.type, event.reason, event.message)
        state.history = decision.history
        state.previous = decision
        if fields == state.applied_status:
            state.settled = key
            return
        if not self._worth_writing(fields):
            return
        try:
            await self._cluster.apply_status(self.namespace, self.name, fields)
        except kube.KubeError as exc:
            logger.warning("status of %s/%s not written: %s", self.namespace, self.name, exc)
            return
        state.applied_status, state.applied_at = fields, self._clock()
        state.conditions = [api.Condition.model_validate(c) for c in fields["conditions"]]
        state.settled = key

    def _worth_writing(self, fields: Mapping[str, Any]) -> bool:
        """Changed, and either in substance or not written for ``QUEUE_STATUS_SECONDS``."""
        applied = self.state.applied_status
        if fields == applied:
            return False
        if applied is None or _substance(fields) != _substance(applied):
            return True
        return self._clock() - self.state.applied_at >= QUEUE_STATUS_SECONDS


def _report_key(state: PoolState, decision: scaling.Decision, generation: int) -> tuple[Any, ...]:
    """Everything a poll's status fields and Events depend on, cheap to compare.

    The decision log only grows by appending (its newest entry then changes), the queue
    numbers and scale time are the state's, and the conditions are the decision's; the
    time a condition would carry only matters when one of these changed.
    """
    queue = state.last_queue
    return (
        decision.scaling_active,
        decision.scaling_limited,
        decision.replicas != decision.current_replicas,
        tuple(queue.values()) if queue is not None else None,
        state.last_scale_time,
        generation,
        len(state.log),
        tuple(state.log[-1].values()) if state.log else None,
    )


def _substance(fields: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must reach status at once: the log, the scale time, each condition's state."""
    states = [
        (c.get("type"), c.get("status"), c.get("reason"), c.get("observedGeneration"))
        for c in fields.get("conditions", ())
    ]
    return fields.get("decisions"), fields.get("lastScaleTime"), states
