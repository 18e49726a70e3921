"""One test (or table) per rule of ``workerpool_operator.scaling.decide``."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.autoscaler.scaling_sim import hb, pods, policy, pool, step
from workerpool_operator import scaling

# --- the load formula ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ready", "busy", "expected"),
    [
        (40, {}, 10),  # KEDA docs' example shape: 40 / 4
        (41, {}, 10),  # tolerance: 41/40 = 1.025, within 10 %
        (45, {}, 12),  # ceil(45 / 4)
        (0, {"a": 4, "b": 4, "c": 4}, 3),  # nothing ready, all busy: keep them
        (8, {"a": 4, "b": 4}, 4),  # ready and in flight add up
    ],
)
def test_desired_is_ceil_of_ready_plus_in_flight_over_target(
    ready: int, busy: dict[str, int], expected: int
) -> None:
    obs = pool(busy, idle=10 - len(busy), ready=ready)
    decision = step(policy(max_replicas=20), obs)
    assert decision.recommended == expected


def test_in_flight_comes_from_heartbeats() -> None:
    decision = step(policy(), pool({"a": 3, "b": 1}))
    assert decision.in_flight == 4
    assert decision.in_flight_source == "heartbeats"


def test_consumers_without_heartbeat_count_as_full() -> None:
    """The AMQP prefetch bounds what a silent consumer holds: assume the worst."""
    obs = scaling.Observation(current_replicas=3, ready_messages=0, consumers=3)
    decision = step(policy(worker_capacity=4), obs)
    assert decision.in_flight == 12
    assert decision.in_flight_source == "consumers"
    assert decision.replicas == 3


def test_silent_consumers_and_heartbeats_mix() -> None:
    decision = step(policy(), pool({"a": 1}, extra_consumers=2))
    assert decision.in_flight == 1 + 2 * 4
    assert decision.in_flight_source == "mixed"


def test_stale_heartbeat_is_ignored() -> None:
    p = policy(heartbeat_stale_seconds=30)
    obs = scaling.Observation(
        current_replicas=1, consumers=0, heartbeats=(hb("a", 4, at=0.0),), pods=pods("a")
    )
    assert step(p, obs, now=10).in_flight == 4
    assert step(p, obs, now=31).in_flight == 0


def test_draining_worker_adds_no_demand_but_is_not_removable() -> None:
    obs = scaling.Observation(
        current_replicas=1, consumers=0, heartbeats=(hb("a", 4, draining=True),), pods=pods("a")
    )
    decision = step(policy(), obs)
    assert decision.in_flight == 0
    assert decision.busy_pods == ("a",)
    assert decision.replicas == 1


def test_draining_worker_does_not_hide_a_silent_consumer() -> None:
    """A draining worker has cancelled its consumer, so it does not explain one."""
    obs = scaling.Observation(
        current_replicas=2,
        consumers=1,
        heartbeats=(hb("a", 2, draining=True),),
        pods=pods("a", "b"),
    )
    assert step(policy(), obs).in_flight == 4


@pytest.mark.parametrize(("ready", "expected"), [(0, 2), (100, 5)])
def test_desired_is_clamped_to_min_and_max(ready: int, expected: int) -> None:
    decision = step(policy(min_replicas=2, max_replicas=5), pool(idle=3, ready=ready))
    assert decision.replicas == expected
    assert decision.scaling_limited.reason in {"TooFewReplicas", "TooManyReplicas"}


def test_current_above_max_comes_down_to_max() -> None:
    decision = step(policy(max_replicas=3), pool(idle=5, ready=20))
    assert decision.replicas == 3


# --- tolerance -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ready", "expected"),
    [
        (36, 5),  # 36/40 = 0.90: on the edge, hold
        (44, 5),  # 44/40 = 1.10: on the edge, hold
        (35, 9),  # 0.875: act (stabilization disabled here)
        (45, 12),  # 1.125: act
    ],
)
def test_tolerance_holds_small_deviations(ready: int, expected: int) -> None:
    obs = pool(busy={}, idle=10, ready=ready)
    obs = dataclasses.replace(obs, current_replicas=10)
    decision = step(policy(max_replicas=20, tolerance=0.1, target_jobs_per_replica=4), obs)
    assert decision.recommended == (10 if expected == 5 else expected)


# --- activation and cooldown -----------------------------------------------------------


def test_pool_at_zero_wakes_only_above_the_activation_threshold() -> None:
    p = policy(activation_threshold=5)
    empty = scaling.Observation(current_replicas=0, ready_messages=5)
    assert step(p, empty).replicas == 0
    woken = step(p, dataclasses.replace(empty, ready_messages=6))
    assert woken.replicas == 2
    assert woken.direction == "up"


def test_activation_threshold_does_not_apply_once_awake() -> None:
    p = policy(activation_threshold=5)
    assert step(p, pool(idle=1, ready=3)).replicas == 1


def test_scale_to_zero_waits_for_the_cooldown() -> None:
    p = policy(cooldown_seconds=300)
    history = step(p, pool({"a": 1}), now=0).history  # last activity at t=0
    at_299 = step(p, pool(idle=1, at=299), history, now=299)
    assert at_299.replicas == 1
    assert "cooldown (1s left)" in at_299.reason
    assert step(p, pool(idle=1, at=300), history, now=300).replicas == 0


def test_in_flight_work_blocks_scale_to_zero_forever() -> None:
    """KEDA's cooldown ignores unacked messages (keda #638 + #7204); ours cannot."""
    p = policy(cooldown_seconds=10)
    history = scaling.ScalingHistory()
    for now in range(0, 1000, 5):
        decision = step(p, pool({"a": 1}), history, now=now)
        history = decision.history
        assert decision.replicas == 1


def test_cooldown_governs_only_the_last_step_to_zero() -> None:
    p = policy(cooldown_seconds=300)
    history = step(p, pool({"a": 1}), now=0).history
    assert step(p, pool(idle=5), history, now=10).replicas == 1


def test_first_decision_starts_the_cooldown() -> None:
    """After an operator restart the cooldown starts again rather than being skipped."""
    decision = step(policy(cooldown_seconds=60), pool(idle=2, at=1000), now=1000)
    assert decision.replicas == 1


# --- stabilization ---------------------------------------------------------------------


def _with_windows(up: int = 0, down: int = 0) -> scaling.ScalingPolicy:
    fast = scaling.RatePolicy(type="Pods", value=100, period_seconds=1)
    return policy(
        max_replicas=100,
        scale_up=scaling.ScalingRule(stabilization_window_seconds=up, policies=(fast,)),
        scale_down=scaling.ScalingRule(stabilization_window_seconds=down, policies=(fast,)),
    )


def _history(*recs: tuple[float, int], started_at: float = -10_000) -> scaling.ScalingHistory:
    return scaling.ScalingHistory(
        started_at=started_at,
        last_arrival_at=started_at,
        recommendations=tuple(scaling.Recommendation(at, r) for at, r in recs),
    )


def test_scale_down_takes_the_highest_recommendation_in_its_window() -> None:
    p = _with_windows(down=300)
    history = _history((-400, 20), (-200, 8), (-100, 6))
    decision = step(p, pool(idle=10, ready=8), history, now=0)
    assert decision.recommended == 2
    assert decision.replicas == 8  # the 20 fell out of the window, the 8 did not


def test_scale_up_takes_the_lowest_recommendation_in_its_window() -> None:
    p = _with_windows(up=60)
    history = _history((-30, 4), (-10, 9))
    decision = step(p, pool(idle=2, ready=40), history, now=0)
    assert decision.recommended == 10
    assert decision.replicas == 4


def test_scale_up_window_never_forces_a_scale_down() -> None:
    p = _with_windows(up=60)
    history = _history((-30, 1))
    assert step(p, pool(idle=3, ready=40), history, now=0).replicas == 3


def test_fresh_history_holds_the_current_count_for_one_down_window() -> None:
    """An operator restart forgets the window; it must not read as permission to shrink."""
    p = _with_windows(down=300)
    first = step(p, pool(idle=6), now=0)
    assert first.replicas == 6
    almost = step(p, pool(idle=6, at=299), first.history, now=299)
    assert almost.replicas == 6
    later = step(p, pool(idle=6, at=300), almost.history, now=300)
    assert later.replicas == 0


def test_history_is_pruned_to_the_longest_window() -> None:
    p = _with_windows(up=10, down=100)
    history = scaling.ScalingHistory()
    for now in range(0, 10_000, 5):
        history = step(p, pool(idle=1, ready=1), history, now=now).history
    assert len(history.recommendations) <= 100 // 5 + 1


# --- rate policies ---------------------------------------------------------------------


def _rates(*rates: scaling.RatePolicy, select: scaling.SelectPolicy = "Max") -> scaling.ScalingRule:
    return scaling.ScalingRule(stabilization_window_seconds=0, select_policy=select, policies=rates)


PODS_4 = scaling.RatePolicy(type="Pods", value=4, period_seconds=15)
PERCENT_100 = scaling.RatePolicy(type="Percent", value=100, period_seconds=15)
PERCENT_50 = scaling.RatePolicy(type="Percent", value=50, period_seconds=60)


@pytest.mark.parametrize(
    ("rule", "current", "expected"),
    [
        (_rates(PODS_4, PERCENT_100), 2, 6),  # Max: +4 beats +100 % of 2
        (_rates(PODS_4, PERCENT_100), 10, 20),  # Max: +100 % beats +4
        (_rates(PODS_4, PERCENT_100, select="Min"), 10, 14),
        (_rates(select="Disabled"), 3, 3),
        (_rates(PERCENT_100), 0, 1),  # any percentage of zero is zero: wake to one anyway
        (_rates(PODS_4), 0, 4),
    ],
)
def test_scale_up_rate_policies(rule: scaling.ScalingRule, current: int, expected: int) -> None:
    p = policy(max_replicas=100, scale_up=rule)
    obs = dataclasses.replace(pool(idle=current, ready=400), current_replicas=current)
    assert step(p, obs).replicas == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (_rates(scaling.RatePolicy(type="Pods", value=2, period_seconds=60)), 8),
        (_rates(PERCENT_50), 5),
        (
            _rates(
                scaling.RatePolicy(type="Pods", value=2, period_seconds=60),
                PERCENT_50,
                select="Min",
            ),
            8,
        ),
        (_rates(select="Disabled"), 10),
    ],
)
def test_scale_down_rate_policies(rule: scaling.ScalingRule, expected: int) -> None:
    p = policy(scale_down=rule)
    decision = step(p, pool(idle=10), _history(), now=0)
    assert decision.replicas == expected


def test_rate_policies_count_changes_already_made_in_the_period() -> None:
    """HPA getReplicasChangePerPeriod: the limit is relative to the period's start."""
    p = policy(max_replicas=100, scale_up=_rates(PODS_4))
    history = step(p, dataclasses.replace(pool(idle=2, ready=400)), now=0).history
    assert history.scale_events == (scaling.ScaleEvent(0, 4),)
    at_six = dataclasses.replace(pool(idle=6, ready=400))
    assert step(p, at_six, history, now=10).replicas == 6  # +4 already used
    assert step(p, at_six, history, now=15).replicas == 10  # period over


# --- drain-aware scale-down ------------------------------------------------------------


def test_scale_down_never_removes_more_than_the_idle_workers() -> None:
    obs = pool({"busy-a": 4, "busy-b": 1}, idle=3)
    decision = step(policy(), obs)
    assert decision.recommended == 2
    assert decision.replicas == 2
    assert set(decision.victims) == {"idle-0", "idle-1", "idle-2"}


def test_busy_workers_are_kept_even_above_the_recommendation() -> None:
    obs = pool({"a": 1, "b": 1, "c": 1}, idle=2)
    decision = step(policy(target_jobs_per_replica=10), obs)
    assert decision.recommended == 1
    assert decision.replicas == 3
    assert decision.scaling_limited.reason == "BusyWorkers"
    assert set(decision.victims) == {"idle-0", "idle-1"}


def test_deletion_costs_mark_victims_cheap_and_everything_else_expensive() -> None:
    decision = step(policy(target_jobs_per_replica=10), pool({"a": 1, "b": 1}, idle=2))
    costs = {c.pod: c.cost for c in decision.deletion_costs}
    assert costs == {
        "idle-0": scaling.IDLE_DELETION_COST,
        "idle-1": scaling.IDLE_DELETION_COST,
        "a": scaling.BUSY_DELETION_COST,
        "b": scaling.BUSY_DELETION_COST,
    }
    assert [c.cost for c in decision.deletion_costs[:2]] == [scaling.IDLE_DELETION_COST] * 2


def test_deletion_costs_already_in_place_are_not_patched_again() -> None:
    obs = pool({"a": 1}, idle=1)
    obs = dataclasses.replace(
        obs,
        pods=(
            scaling.PodView("a", ready=True, deletion_cost=scaling.BUSY_DELETION_COST),
            scaling.PodView("idle-0", ready=True, deletion_cost=scaling.BUSY_DELETION_COST),
        ),
    )
    decision = step(policy(target_jobs_per_replica=10), obs)
    assert decision.deletion_costs == (scaling.DeletionCost("idle-0", scaling.IDLE_DELETION_COST),)


def test_no_deletion_costs_without_a_scale_down() -> None:
    assert step(policy(), pool({"a": 4}, ready=100)).deletion_costs == ()


def test_ready_pod_without_heartbeat_counts_as_busy() -> None:
    obs = scaling.Observation(current_replicas=2, consumers=0, pods=pods("a", "b"))
    decision = step(policy(), obs)
    assert decision.replicas == 2
    assert decision.busy_pods == ("a", "b")


def test_unready_pod_that_never_reported_is_removed_first() -> None:
    obs = scaling.Observation(
        current_replicas=3,
        consumers=2,
        heartbeats=(hb("a"), hb("b")),
        pods=(
            scaling.PodView("a", ready=True, created_at=1),
            scaling.PodView("b", ready=True, created_at=2),
            scaling.PodView("starting", ready=False, created_at=0),
        ),
    )
    decision = step(policy(), obs)
    assert decision.idle_pods == ("starting", "b", "a")  # unready, then youngest first
    assert decision.replicas == 0


def test_replicas_without_pods_are_removed_before_any_pod() -> None:
    obs = dataclasses.replace(pool({"a": 4}), current_replicas=3)
    decision = step(policy(), obs)
    assert decision.replicas == 1
    assert decision.victims == ()
    assert decision.deletion_costs == ()


def test_terminating_pods_are_neither_replicas_nor_victims() -> None:
    obs = scaling.Observation(
        current_replicas=1,
        consumers=1,
        heartbeats=(hb("a"),),
        pods=(scaling.PodView("a", ready=True), scaling.PodView("old", True, terminating=True)),
    )
    decision = step(policy(), obs)
    assert decision.victims == ("a",)
    assert all(c.pod != "old" for c in decision.deletion_costs)


# --- missing data ----------------------------------------------------------------------

BROKER_DOWN = scaling.ObservationFailure("BrokerUnreachable", "connection refused")


def _failed(replicas: int) -> scaling.Observation:
    return scaling.Observation(current_replicas=replicas, failure=BROKER_DOWN)


def test_missing_data_holds_and_reports_why() -> None:
    decision = step(policy(), _failed(4))
    assert decision.replicas == 4
    assert decision.mode == "hold"
    assert decision.scaling_active == scaling.ConditionInfo(
        "ScalingActive", "False", "BrokerUnreachable", "connection refused"
    )
    assert decision.ready_messages is None
    assert decision.in_flight is None


def test_a_blip_below_the_failure_threshold_keeps_scaling_active_true() -> None:
    p = policy(fallback_failure_threshold=3)
    good = step(p, pool({"a": 4}, idle=4), now=0)
    assert good.scaling_active.status == "True"
    history = good.history
    for now in (2, 4):
        held = step(p, _failed(1), history, now=now)
        history = held.history
        assert (held.replicas, held.mode) == (1, "hold")
        assert held.scaling_active == good.scaling_active
        assert held.failure == BROKER_DOWN
    third = step(p, _failed(1), history, now=6)
    assert (third.scaling_active.status, third.scaling_active.reason) == (
        "False",
        "BrokerUnreachable",
    )
    # A good read in between starts the count again.
    again = step(p, pool({"a": 4}, idle=4), history, now=8)
    assert step(p, _failed(1), again.history, now=10).scaling_active.status == "True"


def test_missing_data_never_scales_down_even_with_a_lower_fallback() -> None:
    p = policy(fallback_failure_threshold=1, fallback_replicas=1)
    assert step(p, _failed(4)).replicas == 4


def test_fallback_raises_after_consecutive_failures_and_recovery_resets() -> None:
    p = policy(fallback_failure_threshold=3, fallback_replicas=5)
    history = scaling.ScalingHistory()
    for now, expected in [(0, 1), (5, 1), (10, 5)]:
        decision = step(p, _failed(1), history, now=now)
        history = decision.history
        assert decision.replicas == expected
    assert history.consecutive_failures == 3
    recovered = step(p, pool({"a": 4}, idle=4), history, now=15)
    assert recovered.history.consecutive_failures == 0
    assert recovered.scaling_active.status == "True"


def test_fallback_respects_max_replicas() -> None:
    p = policy(max_replicas=3, fallback_failure_threshold=1, fallback_replicas=8)
    assert step(p, _failed(1)).replicas == 3


def test_outage_restarts_the_cooldown() -> None:
    p = policy(cooldown_seconds=60)
    history = step(p, pool(idle=1), now=0).history
    history = step(p, _failed(1), history, now=100).history
    assert step(p, pool(idle=1, at=120), history, now=120).replicas == 1
    assert step(p, pool(idle=1, at=160), history, now=160).replicas == 0


def test_failed_polls_record_no_recommendation() -> None:
    history = step(policy(), _failed(2)).history
    assert history.recommendations == ()


# --- pause -----------------------------------------------------------------------------


def test_pause_holds_whatever_the_queue_says() -> None:
    decision = step(policy(paused=True), pool(idle=2, ready=1000))
    assert decision.replicas == 2
    assert decision.mode == "paused"
    assert decision.scaling_active.reason == "ScalingPaused"


def test_pause_ignores_missing_data() -> None:
    assert step(policy(paused=True), _failed(2)).mode == "paused"


def test_pinned_replicas_are_reached_without_removing_busy_workers() -> None:
    p = policy(paused_replicas=1)
    decision = step(p, pool({"a": 1, "b": 1}, idle=2))
    assert decision.replicas == 2
    assert decision.mode == "pinned"
    assert set(decision.victims) == {"idle-0", "idle-1"}
    assert decision.held_by_busy_workers  # the next worker to finish can go at once
    assert not step(p, pool({"a": 1}, idle=2)).held_by_busy_workers
    assert step(policy(paused_replicas=7), pool(idle=2)).replicas == 7


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"min_replicas": -1},
        {"min_replicas": 5, "max_replicas": 4},
        {"max_replicas": 0},
        {"target_jobs_per_replica": 0},
        {"tolerance": 1.0},
        {"fallback_failure_threshold": 0},
        {"paused_replicas": -1},
    ],
)
def test_invalid_policies_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        policy(**overrides)


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one rate policy"):
        scaling.ScalingRule(stabilization_window_seconds=0, policies=())
    with pytest.raises(ValueError, match="Pods or Percent"):
        scaling.RatePolicy(type="Replicas", value=1, period_seconds=1)  # type: ignore[arg-type]


def test_hpa_defaults() -> None:
    p = scaling.ScalingPolicy()
    assert p.scale_up.stabilization_window_seconds == 0
    assert p.scale_down.stabilization_window_seconds == 300
    assert {(r.type, r.value, r.period_seconds) for r in p.scale_up.policies} == {
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    }


# --- delivery accounting ---------------------------------------------------------------


def _counted(
    busy: dict[str, int], finished: int = 0, *, ready: int, at: float
) -> scaling.Observation:
    """A pool whose heartbeats carry the jobs-finished counter."""
    beats = tuple(
        scaling.WorkerHeartbeat(n, f, 4, False, at, jobs_finished=finished) for n, f in busy.items()
    )
    return scaling.Observation(
        current_replicas=len(busy),
        ready_messages=ready,
        consumers=len(busy),
        heartbeats=beats,
        pods=pods(*busy),
    )


def test_deliveries_the_heartbeats_do_not_show_yet_keep_workers() -> None:
    """Jobs left the queue, yet every heartbeat still says idle: they are in flight somewhere.

    This is the startup race the integration test found: workers report idle, then take
    the jobs waiting for them, and the next heartbeat is up to one interval away.
    """
    p = policy(target_jobs_per_replica=1)
    history = step(p, _counted(dict.fromkeys("abcd", 0), ready=4, at=0), now=0).history
    idle_looking = _counted(dict.fromkeys("abcd", 0), ready=0, at=1)
    decision = step(p, idle_looking, history, now=1)
    assert decision.in_flight == 4
    assert decision.replicas == 4
    assert decision.victims == ()
    assert "4 not in heartbeats yet" in decision.reason
    # One heartbeat later they show: two busy, two done already. Now the idle two can go.
    caught_up = _counted({"a": 1, "b": 1, "c": 0, "d": 0}, ready=0, at=2)
    caught_up = dataclasses.replace(
        caught_up,
        heartbeats=tuple(
            dataclasses.replace(h, jobs_finished=1 if h.worker_id in "cd" else 0)
            for h in caught_up.heartbeats
        ),
    )
    later = step(p, caught_up, decision.history, now=2)
    assert later.history.unseen_deliveries == 0
    assert later.replicas == 2
    assert set(later.victims) == {"c", "d"}


def test_unseen_deliveries_carry_over_until_the_heartbeats_catch_up() -> None:
    p = policy(target_jobs_per_replica=1, heartbeat_stale_seconds=30)
    history = step(p, _counted(dict.fromkeys("ab", 0), ready=2, at=0), now=0).history
    for now in (1, 2, 3):  # polls faster than heartbeats: still nothing to see
        decision = step(p, _counted(dict.fromkeys("ab", 0), ready=0, at=0), history, now=now)
        history = decision.history
        assert decision.history.unseen_deliveries == 2
        assert decision.replicas == 2
    # A purge (nothing was ever delivered) stops counting after heartbeat_stale_seconds.
    beats = _counted(dict.fromkeys("ab", 0), ready=0, at=40)
    assert step(p, beats, history, now=40).history.unseen_deliveries == 0


def test_heartbeats_without_counters_skip_the_accounting() -> None:
    p = policy()
    history = step(p, pool(idle=2, ready=8), now=0).history
    assert step(p, pool(idle=2, ready=0), history, now=1).history.unseen_deliveries == 0


# --- a quiet pool's tail ---------------------------------------------------------------


def _tail_policy() -> scaling.ScalingPolicy:
    """HPA-like scale-down: a 30 s window and a 30 s cooldown."""
    down = scaling.ScalingRule(
        stabilization_window_seconds=30,
        policies=(scaling.RatePolicy(type="Percent", value=100, period_seconds=15),),
    )
    return policy(cooldown_seconds=30, scale_down=down)


def _long_jobs(
    p: scaling.ScalingPolicy, finished_at: dict[str, float], until: float
) -> list[tuple[float, int, tuple[str, ...], bool]]:
    """Four workers take four long jobs each at t=0, then nothing arrives; worker w's
    jobs end at ``finished_at[w]``. Polls every 2 s; returns (t, replicas, victims, held by
    busy workers)."""
    history = scaling.ScalingHistory()
    series = []
    alive = dict.fromkeys(finished_at, True)
    for now in range(0, int(until), 2):
        beats = tuple(
            scaling.WorkerHeartbeat(
                w,
                0 if now >= end else 4,
                4,
                False,
                now,
                jobs_finished=4 if now >= end else 0,
            )
            for w, end in finished_at.items()
            if alive[w]
        )
        obs = scaling.Observation(
            current_replicas=len(beats),
            ready_messages=0,
            consumers=len(beats),
            heartbeats=beats,
            pods=pods(*(b.worker_id for b in beats)),
        )
        decision = step(p, obs, history, now=now)
        history = decision.history
        for victim in decision.victims:
            alive[victim] = False
        series.append(
            (float(now), decision.replicas, decision.victims, decision.held_by_busy_workers)
        )
    return series


def test_once_nothing_arrived_for_a_window_each_worker_goes_when_its_jobs_end() -> None:
    """Long jobs, then quiet: no idle pod waits a further window after its last job (the
    replica-seconds KEDA saves by stopping busy workers), and no busy pod is stopped."""
    ends = {"a": 60, "b": 60, "c": 70, "d": 80}
    series = _long_jobs(_tail_policy(), ends, until=100)
    replicas = {t: r for t, r, _, _ in series}
    assert replicas[58] == 4  # every worker busy: kept although the window has passed
    assert replicas[60] == 2  # a and b finished: gone at once
    assert replicas[70] == 1
    assert replicas[80] == 0  # the cooldown counts from the last arrival (t=0)
    stopped_at = {v: t for t, _, victims, _ in series for v in victims}
    assert all(stopped_at[w] >= end for w, end in ends.items())


def test_a_tail_says_when_only_busy_workers_hold_it_up() -> None:
    """The runtime polls again as soon as a worker turns idle only while this holds: from
    the end of the window until the last busy worker has gone, and not before or after."""
    series = _long_jobs(_tail_policy(), {"a": 60, "b": 60, "c": 70, "d": 80}, until=100)
    held = {t: h for t, _, _, h in series}
    assert not any(h for t, h in held.items() if t < 30)  # within the window: it wants 4
    assert all(h for t, h in held.items() if 30 <= t < 80)
    assert not any(h for t, h in held.items() if t >= 80)


def test_a_new_arrival_restarts_the_quiet_window() -> None:
    p = _tail_policy()
    history = step(p, _counted(dict.fromkeys("ab", 4), ready=0, at=0), now=0).history
    history = step(p, _counted(dict.fromkeys("ab", 4), ready=0, at=20), history, now=20).history
    # At 25 s worker a has finished its 4 jobs and taken one new one: a delivery.
    arrived = _counted({"a": 1, "b": 4}, ready=0, at=25)
    arrived = dataclasses.replace(
        arrived,
        heartbeats=tuple(
            dataclasses.replace(h, jobs_finished=4 if h.worker_id == "a" else 0)
            for h in arrived.heartbeats
        ),
    )
    history = step(p, arrived, history, now=25).history
    assert history.last_arrival_at == 25
    # b finishes at 40 s: 40 s after the first jobs, but only 15 s after the arrival.
    done = _counted({"a": 1, "b": 0}, ready=0, at=40)
    done = dataclasses.replace(
        done,
        heartbeats=tuple(dataclasses.replace(h, jobs_finished=4) for h in done.heartbeats),
    )
    decision = step(p, done, history, now=40)
    assert decision.replicas == 2
    assert "nothing arrived" not in decision.reason


def test_without_delivery_counters_work_in_flight_counts_as_arriving() -> None:
    """Older workers' heartbeats cannot show a delivery: a pool running their jobs is never
    quiet, and scales down a window after its jobs end, as before."""
    p = _tail_policy()
    history = scaling.ScalingHistory()
    for now in range(0, 60, 2):
        history = step(p, pool({"a": 4, "b": 4}, at=now), history, now=now).history
    decision = step(p, pool({"a": 4}, idle=1, at=60), history, now=60)
    assert decision.replicas == 2
    assert history.last_arrival_at == 58
