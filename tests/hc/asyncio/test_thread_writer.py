"""``ThreadWriter``: whole messages written from other threads while the loop writes too.

A real client WebSocket (``open_websocket``) against a websockets server on 127.0.0.1
that keeps every message it receives; the tests check what arrives, whole and in order.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import websockets

from hc.asyncio.connection import WebSocketProtocol, open_websocket, tcp_connector
from hc.asyncio.thread_writer import ThreadWriter
from hc.framing import Side, WebSocketEndpoint


@dataclass
class Peer:
    """The server end: every message it got, and a way to stop reading."""

    messages: list[bytes] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    want: int = 0


@pytest.fixture
async def peer() -> AsyncIterator[tuple[Peer, str]]:
    state = Peer()

    async def handler(ws: websockets.ServerConnection) -> None:
        async for message in ws:
            state.messages.append(message if isinstance(message, bytes) else message.encode())
            if len(state.messages) >= state.want:
                state.got.set()

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield state, f"ws://127.0.0.1:{port}/"


async def _connect(url: str) -> WebSocketProtocol:
    return await open_websocket(url, WebSocketEndpoint(Side.CLIENT),
                                connector=functools.partial(tcp_connector, proxy=False))


def _send_from_loop(protocol: WebSocketProtocol, data: bytes) -> None:
    endpoint = protocol.machine
    assert isinstance(endpoint, WebSocketEndpoint)
    protocol.send(lambda: endpoint.send_binary(data))


async def _in_thread(work: object) -> None:
    assert callable(work)
    await asyncio.get_running_loop().run_in_executor(None, work)


async def test_a_threads_messages_and_the_loops_arrive_whole_each_in_its_order(
        peer: tuple[Peer, str]) -> None:
    state, url = peer
    protocol = await _connect(url)
    writer = ThreadWriter.open(protocol)
    assert writer is not None and protocol.gate is writer
    loop = asyncio.get_running_loop()
    state.want = 410
    alone = [b"alone %d" % n for n in range(10)]
    assert await loop.run_in_executor(None, lambda: [writer.send(m) for m in alone]) == [True] * 10

    def worker() -> None:
        for n in range(200):
            data = b"thread %03d " % n + b"t" * (n * 97)
            if not writer.send(data):  # not now: the loop sends it, as a channel does
                done = threading.Event()
                loop.call_soon_threadsafe(lambda d=data, e=done: (_send_from_loop(protocol, d), e.set()))
                done.wait(10)

    async def from_loop() -> None:
        for n in range(200):
            _send_from_loop(protocol, b"loop %03d " % n + b"l" * (n * 89))
            await asyncio.sleep(0)

    await asyncio.gather(_in_thread(worker), from_loop())
    await asyncio.wait_for(state.got.wait(), 10)
    assert state.messages[:10] == alone
    from_thread = [m for m in state.messages if m.startswith(b"thread ")]
    from_the_loop = [m for m in state.messages if m.startswith(b"loop ")]
    assert from_thread == [b"thread %03d " % n + b"t" * (n * 97) for n in range(200)]
    assert from_the_loop == [b"loop %03d " % n + b"l" * (n * 89) for n in range(200)]
    await protocol.close()


async def test_a_message_larger_than_the_socket_buffer_arrives_whole_before_what_follows(
        peer: tuple[Peer, str]) -> None:
    state, url = peer
    protocol = await _connect(url)
    assert protocol.transport is not None
    protocol.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    writer = ThreadWriter.open(protocol)
    assert writer is not None
    big = bytes(range(256)) * 16384  # 4 MiB: the socket takes a part, the loop the rest
    state.want = 3
    # Sent in the loop's own step here, so that the loop writes while the rest of ``big``
    # still waits for its next step: that write is held, and follows ``big``.
    assert writer.send(big)
    endpoint = protocol.machine
    assert isinstance(endpoint, WebSocketEndpoint)
    protocol.send_now(lambda: endpoint.send_binary(b"after, from the loop"))
    assert writer.send(b"after, from a thread") is False  # busy: the loop sends it
    _send_from_loop(protocol, b"after, from a thread")
    await asyncio.wait_for(state.got.wait(), 20)
    assert state.messages == [big, b"after, from the loop", b"after, from a thread"]
    await protocol.close()


async def test_nothing_is_written_from_a_thread_once_the_connection_is_lost(
        peer: tuple[Peer, str]) -> None:
    _, url = peer
    protocol = await _connect(url)
    writer = ThreadWriter.open(protocol)
    assert writer is not None
    fd = writer.fd
    os.fstat(fd)  # its own descriptor, open
    await protocol.close()
    assert await asyncio.get_running_loop().run_in_executor(None, writer.send, b"late") is False
    await asyncio.wait_for(_closed(writer), 5)


async def _closed(writer: ThreadWriter) -> None:
    """Until the writer's descriptor is closed (``connection_lost``, a later loop step)."""
    while writer.fd != -1:
        await asyncio.sleep(0.01)
