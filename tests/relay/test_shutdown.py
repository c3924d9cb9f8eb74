"""Graceful shutdown: calls in flight get their answers, new work gets 503, then 1001
(listeners and joined WebSocket streams)."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from hc.asyncio import HybridConnectionClient, HybridConnectionListener, TokenProvider
from relay import wire as relay_wire
from relay.accepts import JoinedStreams
from relay.namespace import EntityConfig
from tests.support.certs import self_signed
from tests.support.procs import RelayProcess
from tests.support.raw_listener import RawListener, Reply
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayHandle, Relays

PROVIDER = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Gated:
    """A listener's service that answers only once the test opens the gate."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.gate = asyncio.Event()

    async def __call__(self, command: dict[str, Any], body: bytes) -> Reply:
        self.arrived.set()
        await self.gate.wait()
        return 200, {}, b"answered: " + body


async def call(http: aiohttp.ClientSession, relay: RelayHandle | RelayProcess, path: str,
               body: bytes) -> tuple[int, bytes]:
    headers = {"ServiceBusAuthorization": relay.token(path)}
    async with http.post(f"{relay.base_url}/{path}", data=body, headers=headers) as resp:
        return resp.status, await resp.read()


async def test_a_call_in_flight_gets_its_answer_and_new_calls_get_503(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    relay = await make_relay(EntityConfig("pay"), shutdown_grace=30.0)
    service = Gated()
    async with RawListener(relay.ws_url, "pay", relay.token("pay"), serve=service) as lst:
        in_flight = asyncio.create_task(call(http, relay, "pay", b"big" * 30_000))  # rendezvous too
        await service.arrived.wait()
        stopping = asyncio.create_task(relay.server.stop())
        while relay.server.state.calls.state.value == "open":
            await asyncio.sleep(0)  # stop() has not run up to its drain yet
        async with aiohttp.ClientSession() as fresh:  # a new connection: the port still answers
            status, body = await call(fresh, relay, "pay", b"late")
        assert status == 503 and b"shutting down" in body
        assert not stopping.done()
        service.gate.set()
        assert await in_flight == (200, b"answered: " + b"big" * 30_000)
        await asyncio.wait_for(stopping, 10)
        assert lst.ws is not None
        await asyncio.wait_for(lst.ws.wait_closed(), 10)
        assert lst.ws.close_code == 1001


async def test_calls_past_the_grace_period_are_cut_off(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    relay = await make_relay(EntityConfig("pay"))
    service = Gated()
    async with RawListener(relay.ws_url, "pay", relay.token("pay"), serve=service):
        in_flight = asyncio.create_task(call(http, relay, "pay", b"x"))
        await service.arrived.wait()
        await asyncio.wait_for(relay.server.stop(grace=0.2), 10)
        status, _ = await asyncio.wait_for(in_flight, 10)
        assert status == 502  # the listener was closed under it


async def test_connections_past_their_deadline_are_ended_while_a_stop_waits_for_calls(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    """The port serves on while calls in flight finish, and so does the sweep: a
    connection that sends nothing is closed after ``header_timeout`` as ever (before,
    the stop ended the sweep first, and such connections waited for the whole grace)."""
    relay = await make_relay(EntityConfig("pay"), shutdown_grace=30.0, header_timeout=0.5)
    service = Gated()
    async with RawListener(relay.ws_url, "pay", relay.token("pay"), serve=service):
        in_flight = asyncio.create_task(call(http, relay, "pay", b"x"))
        await service.arrived.wait()
        stopping = asyncio.create_task(relay.server.stop())
        while relay.server.state.calls.state.value == "open":
            await asyncio.sleep(0)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert not stopping.done()
        writer.close()
        service.gate.set()
        assert await in_flight == (200, b"answered: x")
        await asyncio.wait_for(stopping, 10)


async def test_a_connection_accepted_once_the_relay_has_stopped_is_closed(arelay: RelayHandle) -> None:
    """The listening socket's last accepts may reach the front after it closed its
    connections: each is closed at once, not left open (and unclosed at the loop's end)."""
    front = arelay.server.front
    assert front is not None
    await arelay.server.stop()
    ours, theirs = socket.socketpair()
    with theirs:
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(front, ours)
        assert transport.is_closing()
        theirs.settimeout(5)
        assert await asyncio.to_thread(theirs.recv, 1) == b""
    assert not front.connections


async def test_no_connection_reaches_aiohttp_once_it_is_shutting_down(
    make_relay: Any, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp's shutdown closes the connections it had when the shutdown began; one
    handed to it later would be left open.  So the front closes its own connections
    and hands nothing more over before aiohttp shuts down (before, a head completed
    then was handed over)."""
    relay = await make_relay(EntityConfig("pay"), shutdown_grace=30.0)
    server = relay.server
    front = server.front
    aiohttp_server = server.web_server
    assert front is not None and aiohttp_server is not None
    handed: list[object] = []
    fallback = front.fallback
    def recorded() -> asyncio.Protocol:
        handed.append(1)
        return fallback()

    monkeypatch.setattr(front, "fallback", recorded)
    late: list[bytes] = []

    async def shutdown(timeout: float | None, original: Any = aiohttp_server.shutdown) -> None:
        # aiohttp's shutdown begins: the rest of a head the front was reading arrives.
        try:
            writer.write(b"Sec-WebSocket-Version: 13\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            pass  # already closed: what this test wants
        late.append(await asyncio.wait_for(reader.read(), 5))
        await original(timeout)

    monkeypatch.setattr(aiohttp_server, "shutdown", shutdown)
    service = Gated()
    async with RawListener(relay.ws_url, "pay", relay.token("pay"), serve=service):
        in_flight = asyncio.create_task(call(http, relay, "pay", b"x"))
        await service.arrived.wait()
        stopping = asyncio.create_task(server.stop())
        while server.state.calls.state.value == "open":
            await asyncio.sleep(0)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"GET /$hc/pay?sb-hc-action=listen HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
        await writer.drain()
        handed.clear()  # (the listener's own connection was handed over)
        service.gate.set()
        assert await in_flight == (200, b"answered: x")
        await asyncio.wait_for(stopping, 10)
        writer.close()
    assert late == [b""] and not handed  # closed before aiohttp's shutdown, never handed over
    assert not front.connections


async def test_a_stop_returns_with_every_socket_closed_though_tls_peers_keep_theirs_open(
    tmp_path: Path, make_relay: Any
) -> None:
    """Closing a TLS connection waits for the peer's close_notify; peers that never send
    it (one idle, one whose request aiohttp answered) have their sockets dropped before
    stop() returns (before, stop() returned with both open, left after the loop ended)."""
    cert, key = self_signed(tmp_path)
    relay = await make_relay(tls_cert=cert, tls_key=key)
    front = relay.server.front
    assert front is not None
    trust = ssl.create_default_context(cafile=cert)
    release = threading.Event()

    def peer(request: bytes, ready: threading.Event) -> None:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as raw, \
                trust.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            if request:
                tls.sendall(request)
                tls.recv(65536)  # its answer (kept alive); then nothing more is read
            ready.set()
            release.wait(10)

    ready = [threading.Event(), threading.Event()]
    peers = [threading.Thread(target=peer, args=(b"", ready[0])),
             threading.Thread(target=peer, args=(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", ready[1]))]
    for thread in peers:
        thread.start()
    try:
        for event in ready:
            assert await asyncio.to_thread(event.wait, 10)
        while len(front.alive) < 2:
            await asyncio.sleep(0.01)
        assert len(front.connections) == 1  # the idle one; the other is aiohttp's
        sockets = [conn.transport.get_extra_info("socket") for conn in front.alive if conn.transport]
        await asyncio.wait_for(relay.server.stop(), 10)
        assert [raw.fileno() for raw in sockets] == [-1, -1]
        assert not front.alive
    finally:
        release.set()
        for thread in peers:
            await asyncio.to_thread(thread.join, 10)


async def test_a_stop_ends_each_listener_on_its_close_not_on_a_timeout(
    make_relay: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener answers the relay's 1001 with its Close, then waits for the relay to
    close the TCP connection (RFC 6455 §7.1.1), as websockets does.  The relay reads that
    Close before aiohttp's shutdown begins: from then on aiohttp drops what its
    connections send, and the relay waited out its close timeout (5 s) for each."""
    monkeypatch.setattr(relay_wire, "CLOSE_TIMEOUT", 60.0)  # (the pure build: no way out but the Close)
    relay = await make_relay(EntityConfig("pay"))
    async with RawListener(relay.ws_url, "pay", relay.token("pay")) as lst:
        await asyncio.wait_for(relay.server.stop(), 10)
        assert lst.ws is not None
        await asyncio.wait_for(lst.ws.wait_closed(), 5)
        assert lst.ws.close_code == 1001


async def test_soaprelay_serve_drains_on_sigterm(relays: Relays, http: aiohttp.ClientSession) -> None:
    served = relays.process("drain")
    service = Gated()
    async with RawListener(served.ws_url, "pay", served.token("pay"), serve=service):
        in_flight = asyncio.create_task(call(http, served, "pay", b"salary run"))
        await service.arrived.wait()
        served.signal(signal.SIGTERM)
        # the relay waits for the call; the listener still answers it
        while "calls in flight" not in served.stderr_text():
            await asyncio.sleep(0.02)
        service.gate.set()
        assert await in_flight == (200, b"answered: salary run")
        assert await asyncio.to_thread(served.wait, 20) == 0
    assert "Traceback" not in served.stderr_text()


async def test_a_stop_closes_joined_websocket_streams_on_both_sides_with_1001(
    arelay: RelayHandle,
) -> None:
    listener = HybridConnectionListener(f"{arelay.base_url}/echo", PROVIDER)
    await listener.open()
    try:
        sent = await HybridConnectionClient(f"{arelay.base_url}/echo", PROVIDER).create_connection()
        taken = await asyncio.wait_for(listener.accept_connection(), 5)
        assert taken is not None
        await sent.write(b"ping")
        assert await taken.read() == b"ping"
        assert len(arelay.server.state.streams) == 1
        # Before, the pair stayed open through aiohttp's shutdown timeout and then both
        # peers saw their TCP connection dropped (1006), 10 s after the stop began.
        await asyncio.wait_for(arelay.server.stop(grace=5.0), 10)
        assert await asyncio.wait_for(sent.read(), 5) == b""
        assert await asyncio.wait_for(taken.read(), 5) == b""
        assert (sent.close_code, taken.close_code) == (1001, 1001)
        assert len(arelay.server.state.streams) == 0
    finally:
        await listener.close()


async def test_a_pair_joined_once_the_streams_are_closing_is_refused() -> None:
    streams = JoinedStreams()
    assert await streams.close_all(1001, "stopping") == 0
    assert streams.add(cast(Any, ("sender", "listener"))) is False
    assert len(streams) == 0
