"""A listener that stops answering is found out in seconds, and calls avoid it.

The "silent" listener here completes its WebSocket handshake and then never
reads again: no pong, no answer, no FIN, as after a network cut or a hung
process.  (tests/chaos cuts a real link in a network namespace.)
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Self

import aiohttp
import pytest

from relay.listeners import ListenerConnection
from relay.namespace import EntityConfig
from tests.support.raw_listener import RawListener
from tests.support.relay import RelayHandle


class FirstListener:
    """An rng whose random choice is always the first listener (the silent one)."""

    def randrange(self, n: int) -> int:
        return 0


class SilentListener:
    """A listener that completes its handshake and then never reads its socket again."""

    def __init__(self, relay: RelayHandle, path: str) -> None:
        self.relay, self.path = relay, path
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", self.relay.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (f"GET /$hc/{self.path}?sb-hc-action=listen HTTP/1.1\r\n"
             f"Host: 127.0.0.1:{self.relay.port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             f"ServiceBusAuthorization: {self.relay.token(self.path)}\r\n\r\n").encode()
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.writer is not None
        self.writer.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Readiness wait: poll ``predicate`` on the loop until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def listeners(relay: RelayHandle, path: str) -> list[ListenerConnection]:
    state = relay.server.state.registry.get(path)
    assert state is not None
    return list(state.listeners)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, relay: RelayHandle, path: str, body: bytes
) -> tuple[int, bytes, float]:
    started = time.monotonic()
    headers = {"ServiceBusAuthorization": relay.token(path)}
    async with http.post(f"{relay.base_url}/{path}", data=body, headers=headers) as resp:
        return resp.status, await resp.read(), time.monotonic() - started


async def test_a_call_sent_to_a_silent_listener_fails_in_seconds_not_45(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    relay = await make_relay(EntityConfig("cut"), ping_interval=1.0, pong_timeout=1.0)
    async with SilentListener(relay, "cut"):
        status, body, elapsed = await post(http, relay, "cut", b"small, so it goes inline")
    # Its bytes may have reached the listener: it cannot be sent again, only failed fast.
    assert status == 502
    assert b"did not answer a ping within 1 s" in body
    assert elapsed < 5.0  # ping after 1 s of silence, dropped 1 s later (was 30 s + 15 s)
    assert listeners(relay, "cut") == []


async def test_a_rendezvous_never_opened_is_retried_on_a_healthy_listener(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    relay = await make_relay(EntityConfig("cut"), ping_interval=1.0, pong_timeout=1.0)
    relay.server.state.rng = FirstListener()
    big = os.urandom(100_000)  # over 64 KiB: announced address-only, no byte sent yet
    async with SilentListener(relay, "cut"), RawListener(relay.ws_url, "cut", relay.token("cut")) as healthy:
        await wait_until(lambda: len(listeners(relay, "cut")) == 2)
        status, body, elapsed = await post(http, relay, "cut", big)
        assert (status, body) == (200, big)
        assert elapsed < 5.0
        assert [r.body for r in healthy.received] == [big]
        assert len(listeners(relay, "cut")) == 1  # the silent one was dropped


async def test_new_calls_avoid_a_listener_with_an_unanswered_ping(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    # A long pong_timeout: the silent listener stays connected, but suspect.
    relay = await make_relay(EntityConfig("cut"), ping_interval=0.2, pong_timeout=60.0)
    relay.server.state.rng = FirstListener()
    async with SilentListener(relay, "cut"), RawListener(relay.ws_url, "cut", relay.token("cut")) as healthy:
        await wait_until(lambda: len(listeners(relay, "cut")) == 2)
        silent = listeners(relay, "cut")[0]
        loop = asyncio.get_running_loop()
        await wait_until(lambda: silent.suspect(loop.time()))
        results = await asyncio.gather(*(post(http, relay, "cut", b"%d" % i) for i in range(20)))
        assert [(status, body) for status, body, _ in results] == [(200, b"%d" % i) for i in range(20)]
        assert len(healthy.received) == 20
        assert listeners(relay, "cut")[0] is silent  # still there, just not chosen


async def test_a_listener_that_answers_pings_is_kept_while_idle(make_relay: Any) -> None:
    relay = await make_relay(EntityConfig("idle"), ping_interval=0.2, pong_timeout=0.3)
    async with RawListener(relay.ws_url, "idle", relay.token("idle")):
        await wait_until(lambda: len(listeners(relay, "idle")) == 1)
        listener = listeners(relay, "idle")[0]
        first = listener.last_heard
        # websockets answers the relay's pings: the listener is heard from again and again
        await wait_until(lambda: listener.last_heard > first + 0.5)
        assert listeners(relay, "idle") == [listener]


async def test_the_relay_answers_a_listeners_ping(make_relay: Any) -> None:
    import websockets

    relay = await make_relay(EntityConfig("p"))
    url = f"{relay.ws_url}/$hc/p?sb-hc-action=listen"
    async with websockets.connect(url, additional_headers={"ServiceBusAuthorization": relay.token("p")}) as ws:
        latency = await asyncio.wait_for(await ws.ping(), 5)
        assert latency >= 0


async def test_a_websocket_sender_meant_for_a_silent_listener_is_accepted_by_another(
    make_relay: Any,
) -> None:
    import websockets

    from tests.relay.test_server_websockets import accepting_listener

    relay = await make_relay(EntityConfig("chat"), ping_interval=1.0, pong_timeout=1.0)
    relay.server.state.rng = FirstListener()
    async with SilentListener(relay, "chat"):
        task, seen = await accepting_listener(relay, "chat")
        await wait_until(lambda: len(listeners(relay, "chat")) == 2)
        started = time.monotonic()
        url = f"{relay.ws_url}/$hc/chat?sb-hc-action=connect"
        async with websockets.connect(
            url, additional_headers={"ServiceBusAuthorization": relay.token("chat")}
        ) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
        assert time.monotonic() - started < 5.0  # not the 30 s rendezvous timeout
        await asyncio.wait_for(task, 10)
        assert "accept" in seen
