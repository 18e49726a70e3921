"""``decide`` over simulated time: worked scenarios, no flapping, and invariants.

The property tests use seeded ``random`` sequences (no extra test dependency): each
seed is a reproducible run of a few hundred polls against ``scaling_sim.SimPool``.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from tests.unit.autoscaler.scaling_sim import Pod, SimPool
from workerpool_operator import scaling

POLL = 5.0


def _run_constant_load(policy: scaling.ScalingPolicy, loads: list[int]) -> list[int]:
    """Replicas after each poll for a pool whose load is spread evenly over its workers.

    The jobs are shorter than a poll: every job in flight finishes before the next poll
    and the load is carried by new arrivals.
    """
    sim = SimPool(capacity=policy.target_jobs_per_replica)
    history = scaling.ScalingHistory()
    replicas = []
    for i, load in enumerate(loads):
        now = i * POLL
        sim.start_pending()
        # Busy slots first, the rest waits in the queue.
        remaining = load
        for pod in sim.pods:
            taken = min(pod.capacity, remaining)
            pod.finished += pod.in_flight
            pod.in_flight = taken
            remaining -= taken
        decision = scaling.decide(policy, sim.observe(ready=remaining, now=now), history, now)
        history = decision.history
        sim.apply(decision)
        replicas.append(sim.replicas)
    return replicas


def _changes(series: list[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(series) if a != b)


def test_worked_example_burst_then_drain_to_zero() -> None:
    """The example in docs/autoscaling.md, with the default (HPA) behaviour."""
    policy = scaling.ScalingPolicy(target_jobs_per_replica=4, max_replicas=10, cooldown_seconds=60)
    loads = [0] * 2 + [40] * 10 + [0] * 120
    replicas = _run_constant_load(policy, loads)
    assert replicas[:2] == [0, 0]
    assert replicas[2] == 4  # 0 -> 4: the Pods policy (+4 per 15 s) bounds the first step
    assert replicas[5] == 8  # 15 s later: +100 %
    assert replicas[8] == 10  # capped at max
    # The load stops at poll 12 (t=60 s). Scale-down waits for the 300 s window, then
    # drops to 1 at once (Percent 100); zero follows once the 60 s cooldown has passed
    # (it already has), i.e. at the same moment.
    first_down = next(i for i, r in enumerate(replicas) if i > 12 and r < 10)
    assert (first_down - 12) * POLL == pytest.approx(300, abs=POLL)
    assert replicas[-1] == 0
    assert _changes(replicas) <= 5


def test_no_flapping_under_steady_load_near_a_threshold() -> None:
    """Load noise around 5 x 4 jobs never makes replicas oscillate."""
    policy = scaling.ScalingPolicy(target_jobs_per_replica=4, max_replicas=20)
    rng = random.Random(7)
    loads = [20 + rng.choice([-3, -2, -1, 0, 1, 2, 3]) for _ in range(720)]  # one hour
    replicas = _run_constant_load(policy, loads)
    settled = replicas[10:]
    assert _changes(settled) <= 1, settled
    assert min(settled) >= 5


@pytest.mark.parametrize(
    ("jobs", "reverses"),
    [
        # 3.6 jobs on average: 90 % of 2 replicas' 4 slots. Nothing waits at 2 replicas.
        ((3, 4, 4, 3, 4, 4, 3, 4, 4, 3), False),
        # 4.1: just over 4 slots (each job holds its slot a little longer than it runs).
        # Now and then one waits at 2 replicas, which takes the pool to 3, and a window
        # without a wait later it goes back to 2: a load that fills the slots has no slack.
        ((4, 4, 4, 4, 4, 4, 4, 4, 4, 5), True),
    ],
)
def test_a_steady_load_below_the_slots_of_two_replicas_holds_them(
    jobs: tuple[int, ...], reverses: bool
) -> None:
    """The integration test's steady-load scenario, over an hour: 2-slot workers, a 10 s
    (two-poll) scale-down window, and a steady stream whose in-flight count moves by one."""
    policy = scaling.ScalingPolicy(
        target_jobs_per_replica=2,
        max_replicas=6,
        scale_down=scaling.ScalingRule(
            stabilization_window_seconds=10, policies=scaling.DEFAULT_SCALE_DOWN_POLICIES
        ),
    )
    loads = [jobs[i % len(jobs)] for i in range(720)]
    settled = _run_constant_load(policy, loads)[10:]
    turns = [b for a, b in itertools.pairwise(settled) if a != b]
    assert (len(turns) > 1) is reverses, settled
    assert set(settled) <= {2, 3}


def test_no_flapping_when_load_hovers_at_the_cooldown_edge() -> None:
    """A trickle every few minutes keeps one worker instead of 0 -> 1 -> 0 churn."""
    policy = scaling.ScalingPolicy(target_jobs_per_replica=4, cooldown_seconds=300)
    loads = [1 if i % 40 == 0 else 0 for i in range(720)]  # one job every 200 s
    replicas = _run_constant_load(policy, loads)
    assert set(replicas) == {1}  # woke at the first job, never went back to zero


# --- property-style runs ---------------------------------------------------------------


def _random_policy(rng: random.Random) -> scaling.ScalingPolicy:
    min_r = rng.choice([0, 0, 1, 2])
    rules = [
        scaling.ScalingRule(
            stabilization_window_seconds=rng.choice([0, 15, 60]),
            select_policy=rng.choice(["Max", "Min"]),
            policies=(
                scaling.RatePolicy("Pods", rng.randint(1, 5), rng.choice([5, 15, 60])),
                scaling.RatePolicy("Percent", rng.choice([10, 50, 100]), rng.choice([15, 60])),
            ),
        )
        for _ in range(2)
    ]
    return scaling.ScalingPolicy(
        min_replicas=min_r,
        max_replicas=rng.randint(max(min_r, 1), 12),
        target_jobs_per_replica=rng.choice([1, 2, 4, 10]),
        activation_threshold=rng.choice([0, 0, 3]),
        cooldown_seconds=rng.choice([0, 30, 120]),
        tolerance=rng.choice([0.0, 0.1, 0.2]),
        scale_up=rules[0],
        scale_down=rules[1],
        fallback_failure_threshold=rng.randint(1, 4),
        fallback_replicas=rng.choice([None, 0, 3]),
    )


@pytest.mark.parametrize("seed", range(60))
def test_invariants_hold_over_random_runs(seed: int) -> None:
    rng = random.Random(seed)
    policy = _random_policy(rng)
    sim = SimPool(capacity=rng.choice([1, 2, 4]))
    sim.replicas = rng.randint(0, 14)
    for _ in range(sim.replicas):
        sim.serial += 1
        sim.pods.append(Pod(name=f"pod-{sim.serial}", capacity=sim.capacity))
    history = scaling.ScalingHistory()
    ready = rng.randint(0, 30)
    last_arrival = 0.0
    failing = False
    pause: tuple[bool, int | None] = (False, None)
    for i in range(300):
        now = i * POLL
        # The world moves: jobs arrive, workers pick up and finish, pods get ready.
        ready = max(
            0, ready + rng.choice([-8, -3, -1, 0, 0, 0, 1, 2, 5, 20]) * (rng.random() < 0.3)
        )
        delivered = 0
        for pod in sim.pods:
            if pod.ready:
                take = min(pod.capacity - pod.in_flight, ready)
                pod.in_flight += take
                ready -= take
                delivered += take
                done = rng.randint(0, pod.in_flight)
                pod.in_flight -= done
                pod.finished += done
        if rng.random() < 0.5:
            sim.start_pending()
        if rng.random() < 0.05:
            failing = not failing
        if rng.random() < 0.02:
            pause = rng.choice([(False, None), (True, None), (False, rng.randint(0, 6))])
        run_policy = dataclasses.replace(policy, paused=pause[0], paused_replicas=pause[1])
        obs = sim.observe(ready=ready, now=now)
        if failing:
            failure = scaling.ObservationFailure("BrokerUnreachable", "down")
            obs = dataclasses.replace(obs, failure=failure, heartbeats=(), consumers=0)
        in_flight = sum(p.in_flight for p in sim.pods if p.ready)
        if failing or ready or delivered:
            last_arrival = now

        decision = scaling.decide(run_policy, obs, history, now)
        current = sim.replicas
        busy_before = {p.name for p in sim.pods if p.in_flight}
        deleted = sim.apply(decision)
        history = decision.history

        # 1. A busy worker is never removed, whatever the mode.
        assert not busy_before & {p.name for p in deleted}, decision
        assert sim.killed_busy == 0
        # 2. Missing data never lowers replicas, and is reported once it lasts.
        if failing and decision.mode in ("hold", "fallback"):
            assert decision.replicas >= current
            if history.consecutive_failures >= run_policy.fallback_failure_threshold:
                assert decision.scaling_active.status == "False"
        # 3. In auto mode replicas stay in [min, max] or move toward that range.
        if decision.mode == "auto":
            low, high = policy.min_replicas, policy.max_replicas
            if low <= current <= high:
                assert low <= decision.replicas <= high, decision
            elif current > high:
                assert decision.replicas <= current
            else:
                assert decision.replicas >= current
            # 4. Zero only with nothing ready, nothing in flight and nothing arrived for
            # the cooldown.
            if decision.replicas == 0 < current:
                assert ready == 0
                assert in_flight == 0
                assert now - last_arrival >= policy.cooldown_seconds
        # 5. Paused holds; pinned only moves toward the pin.
        if decision.mode == "paused":
            assert decision.replicas == current
        if decision.mode == "pinned":
            assert pause[1] is not None
            assert min(current, pause[1]) <= decision.replicas <= max(current, pause[1])
        # 6. History stays bounded.
        assert len(history.recommendations) <= 60 / POLL + 1
        assert len(history.scale_events) <= 60 / POLL + 1


@pytest.mark.parametrize("seed", range(20))
def test_auto_scale_ups_respect_the_rate_policies(seed: int) -> None:
    """With a single Pods policy, no period ever sees more than ``value`` added."""
    rng = random.Random(1000 + seed)
    value, period = rng.randint(1, 4), rng.choice([15, 30, 60])
    policy = scaling.ScalingPolicy(
        target_jobs_per_replica=2,
        max_replicas=50,
        scale_up=scaling.ScalingRule(0, "Max", (scaling.RatePolicy("Pods", value, period),)),
    )
    loads = [rng.randint(0, 100) for _ in range(200)]
    replicas = _run_constant_load(policy, loads)
    times = [i * POLL for i in range(len(replicas))]
    previous = [0, *replicas[:-1]]
    for i, now in enumerate(times):
        added = sum(
            max(0, replicas[j] - previous[j])
            for j in range(len(times))
            if now - period < times[j] <= now
        )
        assert added <= value, (i, replicas)
