"""Scenario 4: a soak, many clients calling through the relay to two listener processes.

Bounded: 20 clients for 20 s; full (``SOAPRELAY_CHAOS=full``): 200 clients for 3
minutes.  Every answer is checked against its request, the service's record shows each
call ran exactly once, and the relay's RSS at the end is about what it was at the start.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.chaos.calls import Ledger, call, percentile, runs_per_id
from tests.chaos.conftest import (
    ENTITY,
    assert_no_traceback,
    assert_serving,
    pick,
    record,
    start_echo,
)
from tests.support.procs import Children, RelayProcess

CLIENTS = pick(20, 200)
DURATION = pick(20.0, 180.0)
RSS_GROWTH_MIB = 32.0   # "flat": the relay may grow by at most this over the soak
P99_BOUND = 10.0        # no call waits this long on a healthy relay, however loaded


@pytest.mark.timeout(pick(90, 400))
async def test_soak_every_body_checked_and_relay_memory_flat(
    children: Children, relay: RelayProcess, tmp_path: Path
) -> None:
    records = [tmp_path / f"{name}.calls" for name in ("A", "B")]
    for name, path in zip(("A", "B"), records, strict=True):
        start_echo(children, relay, name, record_to=path)
    url, token = f"{relay.base_url}/{ENTITY}", relay.token(ENTITY)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm = await asyncio.gather(*(call(session, url, token) for _ in range(CLIENTS)))
        assert all(r.ok for r in warm), [r for r in warm if not r.ok][:2]
        rss_start = relay.rss_mib()
        relay.reset_peak()
        ledger = Ledger()
        deadline = time.monotonic() + DURATION
        await asyncio.wait_for(
            asyncio.gather(*(_client(session, url, token, deadline, ledger)
                             for _ in range(CLIENTS))),
            DURATION + 60)
    rss_end, rss_peak = relay.rss_mib(), relay.peak_mib()
    latencies = ledger.latencies()
    figures = {
        "clients": CLIENTS, "seconds": DURATION, "calls": len(ledger.results),
        "errors": len(ledger.failed), "calls_per_s": round(len(ledger.results) / DURATION),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "relay_rss_start_mib": round(rss_start, 1), "relay_rss_end_mib": round(rss_end, 1),
        "relay_rss_peak_mib": round(rss_peak, 1),
    }
    record("4 soak", **figures)
    assert not ledger.failed, ledger.summary()
    assert not ledger.misrouted()
    runs = runs_per_id(*records)
    assert all(runs[r.call_id] == 1 for r in ledger.results), "a call ran twice or never"
    assert len(ledger.results) > CLIENTS, f"hardly any calls went through: {figures}"
    assert percentile(latencies, 0.99) < P99_BOUND, figures
    assert rss_end - rss_start < RSS_GROWTH_MIB, f"relay memory grew: {figures}"
    await assert_serving(relay)
    assert_no_traceback(relay)


async def _client(session: aiohttp.ClientSession, url: str, token: str, deadline: float,
                  ledger: Ledger) -> None:
    while time.monotonic() < deadline:
        ledger.add(await call(session, url, token, timeout=60))
