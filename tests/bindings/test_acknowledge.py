"""One-way hosting: 202 first, the handler after."""

from __future__ import annotations

import asyncio

import pytest

from bindings.acknowledge import Acknowledging
from bindings.handler import RelayedRequest, RelayedResponse, iter_bytes


def request(body: bytes = b"<event/>", method: str = "POST") -> RelayedRequest:
    return RelayedRequest(method, "/events", (), iter_bytes(body), "http://relay:1", "events")


async def test_answers_202_before_the_handler_finishes() -> None:
    release, seen = asyncio.Event(), asyncio.Queue[bytes]()

    async def slow(req: RelayedRequest) -> RelayedResponse:
        await release.wait()
        await seen.put(await req.read())
        return RelayedResponse(200)

    handler = Acknowledging(slow)
    response = await handler(request())
    assert (response.status, response.body) == (202, b"")
    assert handler.pending == 1
    release.set()
    assert await asyncio.wait_for(seen.get(), 5) == b"<event/>"  # the body survived
    await handler.aclose()
    assert handler.pending == 0


async def test_failures_are_logged_not_lost(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(req: RelayedRequest) -> RelayedResponse:
        raise ValueError("handler bug")

    async def refusing(req: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(500, "Internal Server Error")

    for inner in (broken, refusing):
        handler = Acknowledging(inner)
        assert (await handler(request())).status == 202
        await handler.aclose()
    assert "handler bug" in caplog.text and "already has 202" in caplog.text


async def test_aclose_cancels_runs_past_the_timeout() -> None:
    async def forever(req: RelayedRequest) -> RelayedResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    handler = Acknowledging(forever)
    await handler(request())
    await handler.aclose(timeout=0.01)
    assert handler.pending == 0


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_metadata_fetches_are_answered_by_the_handler(method: str) -> None:
    async def wsdl(req: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, "OK", (("Content-Type", "text/xml"),), b"<definitions/>")

    handler = Acknowledging(wsdl)
    response = await handler(request(b"", method=method))
    assert (response.status, response.body) == (200, b"<definitions/>") and handler.pending == 0
