"""A session channel under bad input, driven by a raw Hybrid Connections WebSocket (the SDK's),
through a real relay to a real host: faults, close codes, bounds (priority 5)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
from lxml import etree

from bindings import NetTcpRelayBinding, RelayServiceHost
from bindings.nettcp.framing import (
    SESSION_ACTION,
    ChannelMessage,
    parse_message,
    reply_message,
    request_message,
)
from bindings.nettcp.host import SessionHost
from hc import asyncio as sdk
from soap.quotas import ReaderQuotas
from tests.bindings.nettcp.conftest import PROVIDER
from tests.bindings.nettcp.services import TNS, Board, session_app
from tests.support.relay import RelayHandle

Opener = Callable[[], Awaitable[sdk.HybridConnectionStream]]


class Tokens(sdk.TokenProvider):
    async def get_token(self, audience: str, ttl: float = 3600.0) -> sdk.SecurityToken:
        token = PROVIDER.get_token(audience)
        return sdk.SecurityToken(token.text, token.expires_at, audience)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def start(arelay: RelayHandle, stack: AsyncExitStack, board: Board,
                **binding: object) -> tuple[RelayServiceHost, Opener]:
    address = f"{arelay.base_url}/bad"
    host = RelayServiceHost(session_app(board), address,
                            binding=NetTcpRelayBinding(**binding),  # type: ignore[arg-type]
                            token_provider=PROVIDER, close_timeout=2)
    await stack.enter_async_context(host)
    client = sdk.HybridConnectionClient(address, Tokens())

    async def open_stream() -> sdk.HybridConnectionStream:
        stream = await client.create_connection()
        stack.push_async_callback(stream.close)
        greeting = await receive(stream)
        assert greeting is not None and greeting.headers.action == SESSION_ACTION
        return stream

    return host, open_stream


async def receive(stream: sdk.HybridConnectionStream) -> ChannelMessage | None:
    data = await asyncio.wait_for(stream.receive(), 10)
    return None if data is None else parse_message(data, ReaderQuotas(), 1 << 20)


def call(operation: str, message_id: str, text: str, address: str) -> bytes:
    body = etree.Element(f"{{{TNS}}}{operation}", nsmap={"t": TNS})
    etree.SubElement(body, f"{{{TNS}}}text").text = text
    return request_message(f"{TNS}/{operation}", message_id, [body], to=address)


def text_of(message: ChannelMessage) -> str:
    return " ".join(t.strip() for t in message.envelope.body.itertext() if t.strip())


async def test_a_malformed_message_gets_a_fault_and_the_session_stays_up(
        arelay: RelayHandle, stack: AsyncExitStack, caplog: pytest.LogCaptureFixture) -> None:
    host, open_stream = await start(arelay, stack, Board())
    stream = await open_stream()
    await stream.write(b"<not-closed>")
    fault = await receive(stream)
    assert fault is not None and fault.is_fault and fault.headers.relates_to is None
    assert "Malformed message: not well-formed XML" in text_of(fault)
    await stream.write(call("Echo", "urn:uuid:e1", "alive", host.public_address))
    reply = await receive(stream)
    assert reply is not None and reply.headers.relates_to == "urn:uuid:e1"
    assert "alive" in text_of(reply)
    await stream.write(b"<still-not-closed>")  # warned once per session, then counted
    assert (await receive(stream)).is_fault  # type: ignore[union-attr]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "a malformed message: not well-formed XML" in warnings[0]
    assert not any(r.exc_info for r in caplog.records)


async def test_a_request_without_message_id_closes_the_session_with_1008(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    _, open_stream = await start(arelay, stack, Board())
    stream = await open_stream()
    await stream.write(request_message("urn:x/Echo", "urn:uuid:1").replace(b"MessageID", b"Foo"))
    assert await receive(stream) is None
    assert (stream.close_code, stream.close_reason) == (1008, "a request without wsa:MessageID")


async def test_a_reply_for_no_call_in_flight_is_dropped_and_logged(
        arelay: RelayHandle, stack: AsyncExitStack, caplog: pytest.LogCaptureFixture) -> None:
    host, open_stream = await start(arelay, stack, Board())
    stream = await open_stream()
    await stream.write(reply_message("urn:x/Response", "urn:uuid:nobody"))
    await stream.write(call("Echo", "urn:uuid:e2", "still", host.public_address))
    reply = await receive(stream)
    assert reply is not None and reply.headers.relates_to == "urn:uuid:e2"
    assert any("a reply for no call in flight (urn:uuid:nobody) dropped" in r.getMessage()
               for r in caplog.records)


async def test_calls_over_the_bound_get_server_too_busy_then_a_flood_is_closed(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    board = Board()
    board.gate.clear()
    stack.callback(board.gate.set)
    host, open_stream = await start(arelay, stack, board, max_calls_per_session=2,
                                    concurrency_mode="multiple")
    stream = await open_stream()
    for i in range(2):
        await stream.write(call("Gated", f"urn:uuid:g{i}", "x", host.public_address))
    for _ in range(2):
        assert await asyncio.to_thread(board.entered.acquire, True, 10)
    for i in range(2):  # refused, the session stays up
        await stream.write(call("Gated", f"urn:uuid:over{i}", "x", host.public_address))
        fault = await receive(stream)
        assert fault is not None and fault.is_fault and fault.headers.relates_to == f"urn:uuid:over{i}"
        assert "the session already has 2 calls in flight (its limit)" in text_of(fault)
        assert "ServerTooBusy" in etree.tostring(fault.envelope.root).decode()
    await stream.write(call("Gated", "urn:uuid:flood", "x", host.public_address))
    assert await receive(stream) is None
    assert (stream.close_code, stream.close_reason) == (1008, "too many calls refused in a row (flood)")


async def test_sessions_over_the_hosts_bound_are_closed_with_4013(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    host, open_stream = await start(arelay, stack, Board(), max_sessions=1)
    first = await open_stream()
    client = sdk.HybridConnectionClient(host.public_address, Tokens())
    second = await client.create_connection()
    stack.push_async_callback(second.close)
    assert await asyncio.wait_for(second.receive(), 10) is None
    assert (second.close_code, second.close_reason) == (4013, "too many sessions (the limit is 1)")
    await first.write(call("Echo", "urn:uuid:e3", "first", host.public_address))
    reply = await receive(first)
    assert reply is not None and "first" in text_of(reply)
    assert isinstance(host.sessions, SessionHost) and len(host.sessions.sessions) == 1


async def test_a_peer_that_does_not_answer_keep_alive_is_closed(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    board = Board()
    _, open_stream = await start(arelay, stack, board, keepalive_interval=0.2, keepalive_timeout=0.3)
    stream = await open_stream()
    keepalive = await receive(stream)  # not answered
    assert keepalive is not None and keepalive.headers.action == "urn:soap-relay:nettcp/KeepAlive"
    assert await receive(stream) is None
    assert (stream.close_code, stream.close_reason) == (1001, "no keep-alive answer within 0.3 s")
    assert board.wait_for(lambda b: [kind for kind, _ in b.events] == ["open", "close"])
