"""An event's fan-out (relay.http_senders multicast on hc.fanout): every subscriber
gets its own request id and rendezvous, acknowledgements are counted whichever
way they come, and a failing or silent subscriber is not counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from hc.entities import EntityKind
from relay.namespace import EntityConfig
from tests.support.raw_listener import RawListener, Reply


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _answering(status: int, body: bytes = b"") -> Any:
    async def serve(command: dict[str, Any], received: bytes) -> Reply:
        return status, {}, body
    return serve


async def _silent(command: dict[str, Any], received: bytes) -> Reply:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_each_subscriber_gets_its_own_ids_and_acknowledgements_count_every_way(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    relay = await make_relay(EntityConfig.for_kind("news", EntityKind.EVENT, timeout=2))
    auth = {"ServiceBusAuthorization": relay.token(""), "X-Tag": 'quoted "value" \\ end'}
    big = b"b" * (64 * 1024 + 1)  # acknowledged with a body over 64 KiB: on the rendezvous
    subscribers = [
        RawListener(relay.ws_url, "news", relay.token("news"), serve)
        for serve in (_answering(202), _answering(200, b"ok"), _answering(202, big),
                      _answering(500), _silent)
    ]
    for sub in subscribers:
        await sub.__aenter__()
    try:
        async with http.post(f"{relay.base_url}/news?x=1", data=b"<e/>", headers=auth) as resp:
            assert resp.status == 202
            assert resp.headers["Relay-Delivered"] == "3"  # not the 500, not the silent one
    finally:
        for sub in subscribers:
            await sub.__aexit__()
    commands = [sub.announced[0] for sub in subscribers]
    assert all(len(sub.announced) == 1 for sub in subscribers)
    assert [sub.received[0].body for sub in subscribers] == [b"<e/>"] * 5
    assert len({c["id"] for c in commands}) == 5
    rendezvous = [parse_qs(urlsplit(c["address"]).query)["sb-hc-id"][0] for c in commands]
    assert len(set(rendezvous)) == 5 and all(len(r) >= 22 for r in rendezvous)
    for command in commands:
        assert urlsplit(command["address"]).path == "/$hc/news"
        assert command["requestTarget"] == "/news?x=1" and command["method"] == "POST"
        assert command["body"] is True
        assert command["requestHeaders"]["X-Tag"] == 'quoted "value" \\ end'


async def test_a_rendezvous_id_of_an_event_is_single_use_and_gone_after_it(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    relay = await make_relay(EntityConfig.for_kind("news", EntityKind.EVENT))
    auth = {"ServiceBusAuthorization": relay.token("")}
    async with RawListener(relay.ws_url, "news", relay.token("news"), _answering(202)) as sub:
        async with http.post(f"{relay.base_url}/news", data=b"e", headers=auth) as resp:
            assert resp.headers["Relay-Delivered"] == "1"
    address = sub.announced[0]["address"].replace("ws://", "http://", 1)
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with http.get(address, headers=headers) as resp:
        assert resp.status == 403  # the event is over: its rendezvous ids are void
