"""Scenario 1: a listener process is killed (SIGKILL) while it runs calls.

Two listener processes serve one entity; slow calls are in flight on both.  Killing one
must turn its callers' calls into a prompt 502 (well before the call would have ended
and far from the entity's 60 s timeout), let the survivor finish its own calls, and
send every later call to the survivor: none lost, none doubled, none misrouted.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.chaos.calls import Ledger, call, new_id, ran_on, runs_per_id
from tests.chaos.conftest import (
    ENTITY,
    assert_no_traceback,
    assert_serving,
    pick,
    record,
    start_echo,
)
from tests.support.procs import Children, RelayProcess

SLOW = 12.0        # seconds each in-flight call would take
PROMPT = 6.0       # a killed listener's callers hear 502 within this (vs. SLOW and 60 s)


@pytest.mark.timeout(pick(90, 150))
async def test_kill9_mid_call_gives_prompt_502_and_the_survivor_takes_over(
    children: Children, relay: RelayProcess, tmp_path: Path
) -> None:
    records = {name: tmp_path / f"{name}.calls" for name in ("A", "B")}
    listeners = {name: start_echo(children, relay, name, record_to=path)
                 for name, path in records.items()}
    url, token = f"{relay.base_url}/{ENTITY}", relay.token(ENTITY)
    ledger = Ledger()
    async with aiohttp.ClientSession() as session:
        in_flight, placed = await _slow_calls_on_both(session, url, token, records)
        victim = placed[in_flight[0][0]]
        survivor = "B" if victim == "A" else "A"
        killed_at = time.monotonic()
        listeners[victim].signal(signal.SIGKILL)
        done = await asyncio.wait_for(asyncio.gather(*(task for _, task in in_flight)), SLOW + 30)
        for result in done:
            ledger.add(result)
        after = [ledger.add(await call(session, url, token, timeout=30))
                 for _ in range(pick(20, 100))]

    on_victim = [r for r in done if placed[r.call_id] == victim]
    on_survivor = [r for r in done if placed[r.call_id] == survivor]
    assert on_victim and on_survivor
    for result in on_victim:
        assert result.status == 502, result
        assert result.started + result.elapsed - killed_at < PROMPT, result
    assert all(r.ok and r.listener == survivor for r in on_survivor), on_survivor
    assert all(r.ok and r.listener == survivor for r in after), ledger.summary()
    assert not ledger.misrouted()
    runs = runs_per_id(*records.values())
    assert all(runs[r.call_id] == 1 for r in ledger.results), "a call ran twice"
    record("1 listener kill -9",
           time_to_502_s=round(max(r.started + r.elapsed - killed_at for r in on_victim), 3),
           in_flight_on_victim=len(on_victim), in_flight_on_survivor=len(on_survivor),
           calls_after=len(after), failed_after=sum(not r.ok for r in after))
    await assert_serving(relay)
    assert_no_traceback(relay)


async def _slow_calls_on_both(
    session: aiohttp.ClientSession, url: str, token: str, records: dict[str, Path]
) -> tuple[list[tuple[str, asyncio.Task]], dict[str, str]]:
    """Start slow calls one by one until each listener runs at least two of them."""
    in_flight: list[tuple[str, asyncio.Task]] = []
    placed: dict[str, str] = {}
    for _ in range(40):
        call_id = new_id("slow")
        task = asyncio.create_task(call(session, url, token, call_id, delay=SLOW, timeout=90))
        in_flight.append((call_id, task))
        placed[call_id] = await ran_on(records, call_id)
        if all(list(placed.values()).count(name) >= 2 for name in records):
            return in_flight, placed
    raise AssertionError(f"40 calls did not reach both listeners: {placed}")
