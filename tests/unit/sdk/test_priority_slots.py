"""Slots shared by priority bands: the highest waiting band runs first, FIFO within a band."""

from __future__ import annotations

import asyncio

from itl_controlplane_sdk.workers.slots import PrioritySlots


async def test_a_freed_slot_goes_to_the_highest_band_then_in_arrival_order() -> None:
    slots = PrioritySlots(1, ranks=3)
    await slots.acquire(2)
    started: list[str] = []

    async def job(name: str, rank: int) -> None:
        await slots.acquire(rank)
        started.append(name)
        slots.release()

    tasks = [
        asyncio.create_task(job(name, rank))
        for name, rank in (
            ("low-1", 2),
            ("normal-1", 1),
            ("high-1", 0),
            ("low-2", 2),
            ("high-2", 0),
        )
    ]
    await asyncio.sleep(0)
    assert slots.waiting == 5
    slots.release()
    await asyncio.gather(*tasks)
    assert started == ["high-1", "high-2", "normal-1", "low-1", "low-2"]


async def test_a_cancelled_waiter_gives_up_its_place_and_loses_no_slot() -> None:
    slots = PrioritySlots(1, ranks=2)
    await slots.acquire(0)
    waiter = asyncio.create_task(slots.acquire(0))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.release()
    await asyncio.wait_for(slots.acquire(1), 1)
    assert slots.waiting == 0
