"""Slots: the places of a client's calls in flight (taken at once, or waited for in turn)."""

from __future__ import annotations

import asyncio

import pytest

from bindings.nettcp.slots import Slots


def test_places_are_taken_at_once_until_none_is_free() -> None:
    slots = Slots(2)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    slots.give()
    assert slots.try_take()


async def test_waiters_get_places_in_turn_and_nobody_jumps_the_queue() -> None:
    slots = Slots(1)
    await slots.take()
    order: list[int] = []

    async def wait(n: int) -> None:
        await slots.take()
        order.append(n)

    first = asyncio.create_task(wait(1))
    second = asyncio.create_task(wait(2))
    await asyncio.sleep(0)
    assert not slots.try_take()  # a place freed now goes to a waiter, not to a newcomer
    slots.give()
    await first
    assert order == [1] and not second.done()
    slots.give()
    await second
    assert order == [1, 2] and slots.free == 0
    slots.give()
    assert slots.free == 1


async def test_a_cancelled_waiter_leaves_the_queue_and_passes_on_a_place_it_was_given() -> None:
    slots = Slots(1)
    await slots.take()
    leaving = asyncio.create_task(slots.take())
    staying = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give()  # handed to ``leaving``...
    leaving.cancel()  # ...which is cancelled before it runs: the place goes on to ``staying``
    with pytest.raises(asyncio.CancelledError):
        await leaving
    await asyncio.wait_for(staying, 5)
    assert slots.free == 0
    gone = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    gone.cancel()  # cancelled while still waiting: it just leaves the queue
    with pytest.raises(asyncio.CancelledError):
        await gone
    slots.give()
    assert slots.free == 1 and slots.try_take()
