"""Scenario 5: floods of idle, slow and oversized requests; a normal call must still pass.

- Idle connections (bounded 500, full 2,000) and slowloris heads (a header byte a
  second) are closed after the relay's ``header_timeout`` (10 s by default), with a
  408 or a plain close.
- Slow chunked bodies with a valid token (1 byte a second) are cut by the minimum body
  rate within ~10-20 s (408), without starving the entity's normal calls.
- Header floods (~1 MiB of headers, no token, 6 connections as fast as they go): each
  is refused with a 4xx, the relay's RSS stays within +100 MiB and returns near its
  baseline (it went from 44 to 853 MiB before the fix).
- Body floods (60 MiB bodies, no token, to an entity that requires one): 401 at once,
  the relay's RSS bounded.

- Clients that read nothing (bounded 8 s, full 20 s, at once): pipelined requests
  without a token, and listeners sending Pings on their control channels.  The relay
  stops reading each until it reads what it was sent; its RSS stays within +100 MiB
  (before, each of them grew it by about as much as it sent: 1.2 GB in 15 s).

Throughout each flood a normal call is made every half second; each must succeed
promptly.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections import Counter
from urllib.parse import quote

import aiohttp
import pytest

from tests.chaos import floods
from tests.chaos.calls import Ledger
from tests.chaos.conftest import (
    ENTITY,
    assert_no_traceback,
    assert_serving,
    pick,
    record,
    start_echo,
)
from tests.support.procs import Children, RelayProcess

HEADER_TIMEOUT = 10.0   # the relay's default header_timeout
SLACK = 8.0             # for a busy 2-core machine
BODY_CUT = 25.0         # a 1 byte/s body is cut by then
PROMPT = 5.0            # a normal call during a flood takes at most this
RSS_BOUND_MIB = 100.0   # a flood may raise the relay's RSS by at most this
BASELINE_MIB = 30.0     # ... and it comes back within this of where it was

IDLE = pick(500, 2000)
SLOWLORIS = pick(50, 200)
SLOW_BODIES = pick(48, 96)
HEADER_FLOOD_SECONDS = pick(8.0, 12.0)
BODY_FLOODS = pick(12, 60)
UNREAD_SECONDS = pick(8.0, 20.0)
#: What the relay may take from one client that reads nothing: kernel buffers, its read
#: mark and one write buffer (a few MiB).
UNREAD_BOUND_MIB = 32.0


@pytest.fixture
async def probed(children: Children, relay: RelayProcess) -> RelayProcess:
    """The relay with one echo listener, warmed up with a normal call."""
    start_echo(children, relay, "A")
    await assert_serving(relay)
    return relay


def _check_probes(ledger: Ledger, scenario: str) -> None:
    slowest = max((r.elapsed for r in ledger.results), default=0.0)
    record(scenario, normal_calls=len(ledger.results), normal_failed=len(ledger.failed),
           normal_slowest_s=round(slowest, 2))
    assert ledger.results, "no normal call was made during the flood"
    assert not ledger.failed, f"normal calls failed during the flood: {ledger.summary()}"
    assert not ledger.misrouted()
    assert slowest < PROMPT, f"a normal call took {slowest:.1f} s during the flood"


@pytest.mark.timeout(pick(120, 180))
async def test_idle_slowloris_and_slow_body_floods_are_cut_and_calls_still_pass(
    probed: RelayProcess
) -> None:
    relay, host, port = probed, probed.host, probed.port
    baseline = relay.rss_mib()
    relay.reset_peak()
    async with aiohttp.ClientSession() as session:
        prober = floods.Prober(session, f"{relay.base_url}/{ENTITY}", relay.token(ENTITY))
        prober.start()
        idle = await floods.open_idle(host, port, IDLE)
        idle_rss = relay.rss_mib()
        idle_endings = [asyncio.create_task(c.ending(40)) for c in idle]
        loris_head = f"GET /{ENTITY} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
        loris = [asyncio.create_task(floods.drip(host, port, loris_head, b"X-Slow: " + b"a" * 60,
                                                 40)) for _ in range(SLOWLORIS)]
        body_head = (f"POST /{ENTITY} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"ServiceBusAuthorization: {relay.token(ENTITY)}\r\n"
                     'Content-Type: text/xml; charset=utf-8\r\nSOAPAction: "Echo"\r\n'
                     "Transfer-Encoding: chunked\r\n\r\n").encode()
        bodies = [asyncio.create_task(floods.drip(host, port, body_head, b"1\r\na\r\n" * 10, 40))
                  for _ in range(SLOW_BODIES)]
        idle_done = await asyncio.gather(*idle_endings)
        loris_done = await asyncio.gather(*loris)
        bodies_done = await asyncio.gather(*bodies)
        probes = await prober.stop()
    peak = relay.peak_mib()
    record("5 idle/slowloris/slow-body floods", idle_connections=IDLE,
           idle_rss_kib_per_connection=round((idle_rss - baseline) * 1024 / IDLE, 1),
           idle_closed_after_s=_spread(idle_done), slowloris_closed_after_s=_spread(loris_done),
           slow_bodies_cut_after_s=_spread(bodies_done),
           slow_body_statuses=dict(Counter(e.status for e in bodies_done)),
           relay_rss_baseline_mib=round(baseline, 1), relay_rss_peak_mib=round(peak, 1))
    _check_probes(probes, "5 idle/slowloris/slow-body floods")
    _check_cut(idle_done, HEADER_TIMEOUT + SLACK, "idle connections", (0, 408))
    _check_cut(loris_done, HEADER_TIMEOUT + SLACK, "slowloris heads", (0, 408))
    _check_cut(bodies_done, BODY_CUT, "slow bodies", (0, 408))
    answered = sum(e.status == 408 for e in bodies_done)
    assert answered * 2 >= len(bodies_done), f"only {answered} slow bodies were answered 408"
    assert peak - baseline < RSS_BOUND_MIB
    await assert_serving(relay)
    assert_no_traceback(relay)


def _spread(endings: list[floods.Ending]) -> str:
    times = sorted(e.after for e in endings)
    return f"{times[0]:.1f}..{times[-1]:.1f}"


def _check_cut(endings: list[floods.Ending], bound: float, what: str,
               statuses: tuple[int, ...]) -> None:
    still_open = [e for e in endings if not e.closed and e.status == 0]
    assert not still_open, f"{len(still_open)} {what} were still open after 40 s"
    late = [e for e in endings if e.after > bound]
    assert not late, f"{len(late)} {what} lived past {bound:g} s (longest {late[0].after:.1f})"
    wrong = Counter(e.status for e in endings if e.status not in statuses)
    assert not wrong, f"{what} got statuses {dict(wrong)}, expected {statuses}"


@pytest.mark.timeout(pick(90, 120))
async def test_header_flood_is_refused_and_relay_memory_stays_bounded(
    probed: RelayProcess
) -> None:
    relay = probed
    baseline = relay.rss_mib()
    relay.reset_peak()
    until = time.monotonic() + HEADER_FLOOD_SECONDS
    async with aiohttp.ClientSession() as session:
        prober = floods.Prober(session, f"{relay.base_url}/{ENTITY}", relay.token(ENTITY))
        prober.start()
        runs = await asyncio.gather(*(floods.header_flood(relay.host, relay.port, ENTITY,
                                                          1024 * 1024, until) for _ in range(6)))
        probes = await prober.stop()
    peak = relay.peak_mib()
    settled = await _settle(relay, baseline, 15.0)
    statuses = Counter(s for run in runs for s in run)
    record("5 header flood", requests=sum(statuses.values()), statuses=dict(statuses),
           relay_rss_baseline_mib=round(baseline, 1), relay_rss_peak_mib=round(peak, 1),
           relay_rss_after_mib=round(settled, 1))
    _check_probes(probes, "5 header flood")
    assert not [s for s in statuses if not (s == 0 or 400 <= s < 500)], statuses
    assert any(400 <= s < 500 for s in statuses), f"no request was refused: {statuses}"
    assert peak - baseline < RSS_BOUND_MIB, f"relay RSS {baseline:.0f} -> {peak:.0f} MiB"
    assert settled - baseline < BASELINE_MIB, f"relay RSS stayed at {settled:.0f} MiB"
    await assert_serving(relay)
    assert_no_traceback(relay)


async def _settle(relay: RelayProcess, baseline: float, timeout: float) -> float:
    """The relay's RSS once within BASELINE_MIB of ``baseline``, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while relay.rss_mib() - baseline >= BASELINE_MIB and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    return relay.rss_mib()


@pytest.mark.timeout(pick(90, 180))
async def test_body_flood_without_token_is_refused_at_once_and_memory_stays_bounded(
    probed: RelayProcess
) -> None:
    relay = probed
    baseline = relay.rss_mib()
    relay.reset_peak()
    size, endings = 60 * 1024 * 1024, []
    async with aiohttp.ClientSession() as session:
        prober = floods.Prober(session, f"{relay.base_url}/{ENTITY}", relay.token(ENTITY))
        prober.start()
        for _ in range(BODY_FLOODS // 4):
            endings += await asyncio.gather(*(floods.body_flood_request(
                relay.host, relay.port, ENTITY, size) for _ in range(4)))
        probes = await prober.stop()
    peak = relay.peak_mib()
    statuses = Counter(e.status for e in endings)
    slowest = max(e.after for e in endings)
    record("5 body flood", requests=len(endings), statuses=dict(statuses),
           slowest_answer_s=round(slowest, 2), relay_rss_baseline_mib=round(baseline, 1),
           relay_rss_peak_mib=round(peak, 1))
    _check_probes(probes, "5 body flood")
    # 401 (no token), or 413 when the entity's limit is below the body (the host's
    # 2 MiB binding made the dynamic entity): either way refused before any body is read.
    assert set(statuses) <= {401, 413} and sum(statuses.values()) == len(endings), statuses
    assert slowest < PROMPT, f"a refusal took {slowest:.1f} s"
    assert peak - baseline < RSS_BOUND_MIB, f"relay RSS {baseline:.0f} -> {peak:.0f} MiB"
    await assert_serving(relay)
    assert_no_traceback(relay)


@pytest.mark.timeout(pick(90, 120))
async def test_clients_that_read_nothing_are_held_and_memory_stays_bounded(
    probed: RelayProcess
) -> None:
    relay = probed
    baseline = relay.rss_mib()
    relay.reset_peak()
    host, port = relay.host, relay.port
    pipelined = f"GET /nowhere HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    token = quote(relay.token("pinger"), safe="")
    key = base64.b64encode(os.urandom(16)).decode()
    listen = (f"GET /$hc/pinger?sb-hc-action=listen&sb-hc-token={token} HTTP/1.1\r\n"
              f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n").encode()
    until = time.monotonic() + UNREAD_SECONDS
    async with aiohttp.ClientSession() as session:
        prober = floods.Prober(session, f"{relay.base_url}/{ENTITY}", relay.token(ENTITY))
        prober.start()
        taken = await asyncio.gather(
            *(floods.unread_flood(host, port, b"", pipelined, until) for _ in range(4)),
            *(floods.unread_flood(host, port, listen, floods.PING, until) for _ in range(2)),
        )
        probes = await prober.stop()
    peak = relay.peak_mib()
    taken_mib = [round(t / 2**20, 1) for t in taken]
    record("5 unread answers", pipelining_taken_mib=taken_mib[:4], pinging_taken_mib=taken_mib[4:],
           relay_rss_baseline_mib=round(baseline, 1), relay_rss_peak_mib=round(peak, 1))
    _check_probes(probes, "5 unread answers")
    assert max(taken_mib) < UNREAD_BOUND_MIB, f"the relay read on from clients that read nothing: {taken_mib} MiB"
    assert peak - baseline < RSS_BOUND_MIB, f"relay RSS {baseline:.0f} -> {peak:.0f} MiB"
    await assert_serving(relay)
    assert_no_traceback(relay)
