"""Issue 10, item 1: a flood of bad requests does not grow a ``soaprelay serve`` process.

Six connections send requests with a 1 MiB header as fast as the relay answers
them, for a bounded time, on both paths (the front's first head, and heads on
connections aiohttp owns).  Before the fix 12 s of this took the process (which
raises the cyclic GC's threshold) from 44 to 853 MiB, and it stayed there.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.support.procs import RelayProcess
from tests.support.relay import Relays

pytestmark = pytest.mark.timeout(120)

FLOOD_SECONDS = 4.0
#: Growth allowed over the idle baseline during and after the flood.
PEAK_BOUND_MIB = 40
AFTER_BOUND_MIB = 20
BIG = b"X-Big: " + b"a" * (1024 * 1024) + b"\r\n"


async def _flood_one(port: int, deadline: float, handed_off: bool, statuses: list[int]) -> None:
    while time.monotonic() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            if handed_off:  # the feed: aiohttp owns the connection from here on
                writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                await _skip_response(reader)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + BIG + b"\r\n")
            status_line = await asyncio.wait_for(reader.readline(), 10)
            if status_line:
                statuses.append(int(status_line.split()[1]))
        except ConnectionError:
            statuses.append(0)  # reset before the answer was read: counted, not an error
        finally:
            writer.close()


async def _skip_response(reader: asyncio.StreamReader) -> None:
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)


async def _flood(relay: RelayProcess, handed_off: bool) -> tuple[list[int], float]:
    port = relay.port
    statuses: list[int] = []
    deadline = time.monotonic() + FLOOD_SECONDS
    flood = asyncio.gather(*(_flood_one(port, deadline, handed_off, statuses) for _ in range(6)))
    peak = 0.0
    while not flood.done():
        peak = max(peak, relay.rss_mib())
        await asyncio.sleep(0.1)  # sampling RSS, not waiting for readiness
    await flood
    return statuses, peak


async def test_a_flood_of_oversized_heads_keeps_rss_bounded(relays: Relays) -> None:
    relay = relays.process("flood")
    baseline = relay.rss_mib()
    for handed_off in (False, True):
        statuses, peak = await _flood(relay, handed_off)
        answered = [s for s in statuses if s]
        assert len(answered) > 100, statuses[:20]  # the flood really flowed
        assert set(answered) <= {400, 431}
        assert peak - baseline < PEAK_BOUND_MIB, (handed_off, baseline, peak)
    after = relay.rss_mib()
    assert after - baseline < AFTER_BOUND_MIB, (baseline, after)
    relay.signal(signal.SIGTERM)
    assert await asyncio.to_thread(relay.wait, 30) == 0
    log = relay.stderr_text()
    assert "Traceback" not in log and " ERROR " not in log
    # Rate-limited: at most 10 lines per 10 s, whatever the number of refusals.
    refusals = [line for line in log.splitlines() if " WARNING " in line]
    assert 1 <= len(refusals) <= 2 * 10 * (2 * FLOOD_SECONDS / 10 + 1)
