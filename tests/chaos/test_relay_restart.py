"""Scenario 2: the relay is stopped (SIGTERM) or killed (SIGKILL) under hosts and callers.

SIGTERM: the relay stops taking new calls (503 or a refused connection), lets the calls
in flight finish with the listener's own answer (never a 502 for a call the listener
ran: its caller would retry and run it twice), exits 0 within its grace period
(``shutdown_grace``, 30 s by default), and closes listeners with 1001.
SIGKILL: nothing is drained; a new relay on the same port gets every host back
(status ONLINE again, by the hosts' own reconnecting) and calls resume.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.chaos.calls import CallResult, Ledger, call, new_id, ran_on, runs_per_id
from tests.chaos.conftest import (
    ENTITY,
    assert_no_traceback,
    assert_serving,
    pick,
    record,
    start_echo,
)
from tests.support.procs import Child, Children, RelayProcess
from tests.support.relay import Relays

SHUTDOWN_GRACE = 30.0   # the relay's default shutdown_grace
RECONNECT = 30.0        # hosts are back ONLINE within this after the relay is back
IN_FLIGHT_DELAY = 3.0


@pytest.mark.timeout(pick(120, 180))
async def test_sigterm_drains_in_flight_calls_then_hosts_return_to_a_new_relay(
    relays: Relays, children: Children, relay: RelayProcess, tmp_path: Path
) -> None:
    records = {name: tmp_path / f"{name}.calls" for name in ("A", "B")}
    hosts = [start_echo(children, relay, name, record_to=path) for name, path in records.items()]
    url, token = f"{relay.base_url}/{ENTITY}", relay.token(ENTITY)
    ledger = Ledger()
    async with aiohttp.ClientSession() as session:
        ids = [new_id("drain") for _ in range(6)]
        in_flight = [asyncio.create_task(call(session, url, token, i, delay=IN_FLIGHT_DELAY,
                                              timeout=60)) for i in ids]
        for call_id in ids:
            await ran_on(records, call_id)
        termed = time.monotonic()
        relay.signal(signal.SIGTERM)
        refusal = await _first_refusal(session, url, token, ledger)
        for result in await asyncio.wait_for(asyncio.gather(*in_flight), 60):
            ledger.add(result)
        code = await asyncio.to_thread(relay.wait, SHUTDOWN_GRACE + 15)
        exited = time.monotonic() - termed

    drained = [r for r in ledger.results if r.call_id in ids]
    record("2 relay SIGTERM", in_flight=len(drained), answered=sum(r.ok for r in drained),
           statuses=dict(Counter(r.status for r in drained)),
           exit_code=code, exit_after_sigterm_s=round(exited, 2), refusal_status=refusal.status)
    assert all(r.ok for r in drained), f"in-flight calls lost on SIGTERM: {ledger.summary()}"
    assert refusal.status in (0, 503), f"a new call during shutdown got {refusal}"
    assert code == 0, f"the relay exited {code} on SIGTERM{relay.tail()}"
    assert exited < SHUTDOWN_GRACE, f"the relay took {exited:.1f} s to stop"
    assert not ledger.misrouted()
    assert all(n == 1 for n in runs_per_id(*records.values()).values()), "a call ran twice"
    assert_no_traceback(relay)

    for host in hosts:
        await asyncio.to_thread(host.wait_for, "STATUS CONNECTING", 15)
    again = relays.process("relay2", children=children, port=relay.port)
    back = await _reconnected(hosts, again, RECONNECT)
    await _calls_resume(again, pick(20, 100))
    assert_no_traceback(again)
    record("2 relay SIGTERM", hosts_online_after_restart_s=round(back, 2))


@pytest.mark.timeout(pick(90, 150))
async def test_sigkill_then_restart_on_the_same_port_brings_hosts_and_calls_back(
    relays: Relays, children: Children, relay: RelayProcess
) -> None:
    hosts = [start_echo(children, relay, name) for name in ("A", "B")]
    await assert_serving(relay)
    relay.signal(signal.SIGKILL)
    assert await asyncio.to_thread(relay.wait, 10) == -signal.SIGKILL
    for host in hosts:  # the kernel closed the relay's sockets: hosts see it at once
        await asyncio.to_thread(host.wait_for, "STATUS CONNECTING", 15)
    again = relays.process("relay2", children=children, port=relay.port)
    started = time.monotonic()
    back = await _reconnected(hosts, again, RECONNECT)
    await _calls_resume(again, pick(20, 100))
    first_call = time.monotonic() - started
    assert_no_traceback(again)
    record("2 relay SIGKILL", hosts_online_after_restart_s=round(back, 2),
           calls_resumed_after_restart_s=round(first_call, 2))


async def _first_refusal(session: aiohttp.ClientSession, url: str, token: str,
                         ledger: Ledger) -> CallResult:
    """Send new calls until one is refused (the relay began its shutdown); at most 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result = ledger.add(await call(session, url, token, timeout=10))
        if not result.ok:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("the relay still took new calls 10 s after SIGTERM")


async def _reconnected(hosts: list[Child], relay: RelayProcess, timeout: float) -> float:
    """Seconds until every host printed ``STATUS ONLINE`` again (after ``relay`` started)."""
    started = time.monotonic()
    for host in hosts:
        left = max(0.1, timeout - (time.monotonic() - started))
        await asyncio.to_thread(host.wait_for, "STATUS ONLINE", left)
    return time.monotonic() - started


async def _calls_resume(relay: RelayProcess, count: int) -> None:
    """``count`` calls through ``relay`` all come back with their own answer."""
    url, token = f"{relay.base_url}/{ENTITY}", relay.token(ENTITY)
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(call(session, url, token, timeout=30)
                                         for _ in range(count)))
    failed = [r for r in results if not r.ok]
    assert not failed, f"{len(failed)} of {count} calls failed after the restart: {failed[:3]}"
    assert {r.listener for r in results} == {"A", "B"} or count < 8, "one host never came back"
