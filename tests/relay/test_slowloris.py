"""Issue 10, item 5 (the relay's side): 48 senders dripping chunked bodies at 1 byte/s
are cut within the body timeout, and normal calls on the same entity stay fast."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time

import aiohttp
import pytest

from tests.conftest import RelayFactory
from tests.relay.test_front_hardening import head
from tests.support.raw_listener import RawListener

pytestmark = pytest.mark.timeout(90)
BODY_TIMEOUT = 2.0
DRIPPERS = 48


async def _drip(port: int, request: bytes, cut: list[float], start: float) -> None:
    """Send the head, then one byte of chunked body a second until the relay cuts us."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed = asyncio.ensure_future(reader.read())
    try:
        writer.write(request)
        while not closed.done():
            writer.write(b"1\r\nx\r\n")
            await asyncio.wait([closed], timeout=1.0)  # the drip's pace, and the cut's wait
        cut.append(time.monotonic() - start)
    except ConnectionError:
        cut.append(time.monotonic() - start)
    finally:
        writer.close()
        # the relay's close may reach us as a reset: that is the cut, not an error
        await asyncio.wait([closed], timeout=5.0)
        if closed.done() and not closed.cancelled():
            closed.exception()
        closed.cancel()


async def test_slow_bodies_are_cut_and_normal_calls_stay_fast(
    make_relay: RelayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    relay = await make_relay(body_timeout=BODY_TIMEOUT, min_body_rate=1000)
    token = relay.token("echo")
    async with RawListener(relay.ws_url, "echo", token), aiohttp.ClientSession() as http:
        auth = {"ServiceBusAuthorization": token}

        async def call() -> float:
            begun = time.monotonic()
            async with http.post(f"{relay.base_url}/echo", data=b"ping", headers=auth) as resp:
                assert resp.status == 200 and await resp.read() == b"ping"
            return time.monotonic() - begun

        quiet = [await call() for _ in range(20)]
        request = head(relay, "Transfer-Encoding: chunked")
        cut: list[float] = []
        start = time.monotonic()
        drippers = [asyncio.ensure_future(_drip(relay.port, request, cut, start))
                    for _ in range(DRIPPERS)]
        busy = []
        while len(cut) < DRIPPERS and time.monotonic() - start < 30:
            busy.append(await call())
        await asyncio.wait_for(asyncio.gather(*drippers), 30)
    assert len(cut) == DRIPPERS
    # Cut within the body timeout (plus 48 bytes of allowance and a sweep's slack).
    assert max(cut) < BODY_TIMEOUT + 3, sorted(cut)
    assert len(busy) >= 5 and max(busy) < 3.0, busy
    assert statistics.median(busy) < max(20 * statistics.median(quiet), 0.05), (quiet, busy)
    bad = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == []
