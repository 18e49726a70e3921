"""The ack plan: which frames acknowledge a worker's finished deliveries (pure, no broker)."""

from __future__ import annotations

import random

from itl_controlplane_sdk.workers.acks import plan_acks


def acked_by(frames: list[tuple[int, bool]], unsettled: dict[int, bool]) -> set[int]:
    """The tags the broker would consider acked after these frames."""
    acked: set[int] = set()
    for tag, multiple in frames:
        acked |= {t for t in unsettled if t <= tag} if multiple else {tag}
    return acked


def test_finished_jobs_at_the_front_share_one_multiple_ack() -> None:
    assert plan_acks({1: True, 2: True, 3: True}) == [(3, True)]


def test_a_single_finished_job_gets_a_plain_ack() -> None:
    assert plan_acks({4: True, 5: False}) == [(4, False)]


def test_jobs_behind_a_running_one_are_acked_one_by_one() -> None:
    assert plan_acks({1: True, 2: True, 3: False, 4: True, 6: True}) == [
        (2, True),
        (4, False),
        (6, False),
    ]


def test_nothing_finished_sends_nothing() -> None:
    assert plan_acks({7: False, 8: False}) == []
    assert plan_acks({}) == []


def test_order_of_insertion_does_not_matter() -> None:
    assert plan_acks({3: True, 1: True, 2: False}) == [(1, False), (3, False)]


def test_never_acks_a_running_job_and_always_acks_every_finished_one() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        tags = rng.sample(range(1, 60), rng.randint(0, 20))
        unsettled = {tag: rng.random() < 0.7 for tag in tags}
        acked = acked_by(plan_acks(unsettled), unsettled)
        assert acked == {tag for tag, finished in unsettled.items() if finished}
