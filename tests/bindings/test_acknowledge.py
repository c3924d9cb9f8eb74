"""One-way hosting: 202 first, the handler after (once the 202 was sent)."""

from __future__ import annotations

import asyncio

import pytest

from bindings.acknowledge import Acknowledging
from bindings.handler import RelayedRequest, RelayedResponse, iter_bytes, settle

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network


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
    assert handler.pending == 0  # nothing runs before the 202 is sent
    await settle(response, sent=True)
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
        response = await handler(request())
        assert response.status == 202
        await settle(response, sent=True)
        await handler.aclose()
    assert "handler bug" in caplog.text and "already has 202" in caplog.text


async def test_aclose_cancels_runs_past_the_timeout() -> None:
    async def forever(req: RelayedRequest) -> RelayedResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    handler = Acknowledging(forever)
    await settle(await handler(request()), sent=True)
    assert handler.pending == 1
    await handler.aclose(timeout=0.01)
    assert handler.pending == 0


async def test_a_202_that_was_not_sent_runs_nothing() -> None:
    ran: list[bytes] = []

    async def record(req: RelayedRequest) -> RelayedResponse:
        ran.append(await req.read())
        return RelayedResponse(200)

    handler = Acknowledging(record)
    response = await handler(request())
    await settle(response, sent=False)
    await settle(response, sent=True)  # a response is settled once: this is a no-op
    await handler.aclose()
    assert ran == [] and handler.pending == 0


async def test_the_inner_responses_hook_runs_when_the_handler_is_done() -> None:
    finished = asyncio.Event()

    async def with_hook(req: RelayedRequest) -> RelayedResponse:
        async def after_sent() -> None:
            finished.set()
        return RelayedResponse(200, after_sent=after_sent)

    handler = Acknowledging(with_hook)
    await settle(await handler(request()), sent=True)
    await asyncio.wait_for(finished.wait(), 5)
    await handler.aclose()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_metadata_fetches_are_answered_by_the_handler(method: str) -> None:
    async def wsdl(req: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, "OK", (("Content-Type", "text/xml"),), b"<definitions/>")

    handler = Acknowledging(wsdl)
    response = await handler(request(b"", method=method))
    assert (response.status, response.body) == (200, b"<definitions/>") and handler.pending == 0
