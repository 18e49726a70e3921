"""Builders and a tiny simulated pool for the scaling tests (not collected by pytest).

The simulated pool stands in for a Deployment, its ReplicaSet and its workers: it turns
decisions into pod deletions the way the ReplicaSet does (lowest pod-deletion-cost
first), so tests can check that a scale-down never takes a busy pod.
"""

from __future__ import annotations

import dataclasses

from workerpool_operator import scaling

FAST = scaling.ScalingRule(
    stabilization_window_seconds=0,
    policies=(scaling.RatePolicy(type="Pods", value=1000, period_seconds=1),),
)
"""A rule that never limits: for tests about something else than rate or windows."""


def policy(**overrides: object) -> scaling.ScalingPolicy:
    """A policy with no windows, no limits and no cooldown unless a test asks."""
    base: dict[str, object] = {
        "min_replicas": 0,
        "max_replicas": 10,
        "target_jobs_per_replica": 4,
        "cooldown_seconds": 0,
        "scale_up": FAST,
        "scale_down": FAST,
    }
    base.update(overrides)
    return scaling.ScalingPolicy(**base)  # type: ignore[arg-type]


def hb(
    name: str, in_flight: int = 0, *, capacity: int = 4, draining: bool = False, at: float = 0.0
) -> scaling.WorkerHeartbeat:
    return scaling.WorkerHeartbeat(
        worker_id=name, in_flight=in_flight, capacity=capacity, draining=draining, timestamp=at
    )


def pods(*names: str, ready: bool = True) -> tuple[scaling.PodView, ...]:
    return tuple(scaling.PodView(name=n, ready=ready) for n in names)


def pool(
    busy: dict[str, int] | None = None,
    idle: int = 0,
    *,
    ready: int = 0,
    at: float = 0.0,
    extra_consumers: int = 0,
) -> scaling.Observation:
    """An observation of a pool whose pods all report: ``busy`` maps pod -> in-flight."""
    busy = busy or {}
    names = [*busy, *(f"idle-{i}" for i in range(idle))]
    beats = tuple(hb(n, busy.get(n, 0), at=at) for n in names)
    return scaling.Observation(
        current_replicas=len(names),
        ready_messages=ready,
        consumers=len(names) + extra_consumers,
        heartbeats=beats,
        pods=pods(*names),
    )


def step(
    p: scaling.ScalingPolicy,
    obs: scaling.Observation,
    history: scaling.ScalingHistory | None = None,
    now: float = 0.0,
) -> scaling.Decision:
    return scaling.decide(p, obs, history or scaling.ScalingHistory(), now)


@dataclasses.dataclass
class Pod:
    name: str
    capacity: int
    in_flight: int = 0
    ready: bool = True
    cost: int | None = None
    finished: int = 0


@dataclasses.dataclass
class SimPool:
    """A Deployment with workers: applies decisions like the ReplicaSet would."""

    capacity: int = 4
    pods: list[Pod] = dataclasses.field(default_factory=list)
    replicas: int = 0
    serial: int = 0
    killed_busy: int = 0

    def observe(self, *, ready: int, now: float) -> scaling.Observation:
        return scaling.Observation(
            current_replicas=self.replicas,
            ready_messages=ready,
            consumers=sum(1 for p in self.pods if p.ready),
            heartbeats=tuple(
                scaling.WorkerHeartbeat(
                    p.name, p.in_flight, p.capacity, False, now, jobs_finished=p.finished
                )
                for p in self.pods
                if p.ready
            ),
            pods=tuple(
                scaling.PodView(name=p.name, ready=p.ready, deletion_cost=p.cost) for p in self.pods
            ),
        )

    def apply(self, decision: scaling.Decision) -> list[Pod]:
        """Patch costs, then set replicas; return the pods the ReplicaSet deleted."""
        costs = {c.pod: c.cost for c in decision.deletion_costs}
        for pod in self.pods:
            pod.cost = costs.get(pod.name, pod.cost)
        self.replicas = decision.replicas
        deleted: list[Pod] = []
        while len(self.pods) > self.replicas:
            # ReplicaSet order: not ready first, then lowest deletion cost, then newest.
            victim = min(
                reversed(self.pods), key=lambda p: (p.ready, p.cost if p.cost is not None else 0)
            )
            self.pods.remove(victim)
            deleted.append(victim)
            if victim.in_flight:
                self.killed_busy += 1
        while len(self.pods) < self.replicas:
            self.serial += 1
            self.pods.append(Pod(name=f"pod-{self.serial}", capacity=self.capacity, ready=False))
        return deleted

    def start_pending(self) -> None:
        for pod in self.pods:
            pod.ready = True
