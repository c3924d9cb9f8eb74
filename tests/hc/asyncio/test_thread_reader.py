"""``ThreadReader``: whole binary messages read by another thread while the loop runs.

A real client WebSocket (``open_websocket``) against a bare server on 127.0.0.1 that
writes the exact bytes each test gives it (frames whole, split, or of any kind) and
keeps what the client sends back (its Pongs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from hc.asyncio.connection import WebSocketProtocol, open_websocket, tcp_connector
from hc.asyncio.thread_reader import ThreadReader
from hc.events import BinaryReceived, ConnectionClosed, PingReceived, PongReceived, TextReceived
from hc.frames import Opcode, serialize_frame
from hc.framing import Side, WebSocketEndpoint

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Server:
    """The server end: bytes to write, and the client's frames as parsed."""

    writer: asyncio.StreamWriter | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[object] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    clients: list[WebSocketProtocol] = field(default_factory=list)

    async def write(self, *chunks: bytes) -> None:
        assert self.writer is not None
        for chunk in chunks:
            self.writer.write(chunk)
            await self.writer.drain()


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    state = Server()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        state.writer = writer
        state.connected.set()
        parser = WebSocketEndpoint(Side.SERVER)
        while data := await reader.read(65536):
            parser.receive_data(data)
            state.received.extend(parser.events_received())
            state.got.set()
        writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with listening:
        port = listening.sockets[0].getsockname()[1]
        yield state, f"ws://127.0.0.1:{port}/"
        for client in state.clients:
            client.abort()
        if state.writer is not None:
            state.writer.close()
            with contextlib.suppress(ConnectionError):
                await state.writer.wait_closed()


async def _connect(server: tuple[Server, str], max_size: int = 1 << 20) -> WebSocketProtocol:
    state, url = server
    protocol = await open_websocket(url, WebSocketEndpoint(Side.CLIENT, max_message_size=max_size),
                                    connector=functools.partial(tcp_connector, proxy=False))
    state.clients.append(protocol)
    await asyncio.wait_for(state.connected.wait(), 5)
    return protocol


def _binary(data: bytes) -> bytes:
    return serialize_frame(Opcode.BINARY, data)


def _read_all(reader: ThreadReader, judge: Callable[[bytes], object | None] = bytes) -> list[object]:
    """In a thread: every message taken until reading goes back to the loop."""
    taken = []
    while (message := reader.next_message(judge)) is not None:
        taken.append(message)
    reader.close()
    return taken


async def _thread_reading(server: tuple[Server, str], max_size: int = 1 << 20,
                          judge: Callable[[bytes], object | None] = bytes,
                          ) -> tuple[WebSocketProtocol, ThreadReader, asyncio.Future[list[object]]]:
    """A connection whose reading a thread took: every message it takes, once it stops."""
    protocol = await _connect(server, max_size)
    reader = ThreadReader.open(protocol)
    assert reader is not None and protocol.reader is reader
    return protocol, reader, asyncio.get_running_loop().run_in_executor(None, _read_all, reader, judge)


async def _loop_events(protocol: WebSocketProtocol, count: int) -> list[object]:
    return [await asyncio.wait_for(protocol.next_event(), 5) for _ in range(count)]


async def test_whole_binary_messages_are_taken_by_the_thread_in_order(
        server: tuple[Server, str]) -> None:
    state, _ = server
    protocol, reader, reading = await _thread_reading(server)
    big = os.urandom(200_000)
    split = _binary(b"written a byte at a time")
    await state.write(_binary(b"one") + _binary(b"two"), *(split[i:i + 1] for i in range(len(split))))
    await state.write(_binary(big), _binary(b"last"))
    await state.write(serialize_frame(Opcode.PING, b"over"))  # the thread stops here
    assert await asyncio.wait_for(reading, 10) == [b"one", b"two", b"written a byte at a time",
                                                   big, b"last"]
    assert reader.taken == 5 and protocol.reader is None


async def test_a_ping_goes_back_to_the_loop_with_what_follows_it_and_is_answered(
        server: tuple[Server, str]) -> None:
    state, _ = server
    protocol, _, reading = await _thread_reading(server)
    await state.write(_binary(b"thread's") + serialize_frame(Opcode.PING, b"p1")
                      + _binary(b"after the ping") + serialize_frame(Opcode.TEXT, b"text"))
    assert await asyncio.wait_for(reading, 10) == [b"thread's"]
    events = await _loop_events(protocol, 3)
    assert events == [PingReceived(b"p1"), BinaryReceived(b"after the ping"), TextReceived("text")]
    await asyncio.wait_for(state.got.wait(), 5)
    assert state.received == [PongReceived(b"p1")]  # the loop's endpoint answered it
    await state.write(_binary(b"the loop reads again"))
    assert await _loop_events(protocol, 1) == [BinaryReceived(b"the loop reads again")]


async def test_a_message_the_judge_leaves_goes_to_the_loop_with_the_rest_in_order(
        server: tuple[Server, str]) -> None:
    state, _ = server

    def judge(data: bytes) -> bytes | None:
        return None if data.startswith(b"loop") else data

    protocol, _, reading = await _thread_reading(server, judge=judge)
    await state.write(_binary(b"t1"), _binary(b"t2") + _binary(b"loop 1") + _binary(b"t3"))
    assert await asyncio.wait_for(reading, 10) == [b"t1", b"t2"]
    assert await _loop_events(protocol, 2) == [BinaryReceived(b"loop 1"), BinaryReceived(b"t3")]


async def test_fragments_and_oversized_messages_are_left_to_the_loops_rules(
        server: tuple[Server, str]) -> None:
    state, _ = server
    protocol, _, reading = await _thread_reading(server, max_size=1000)
    await state.write(serialize_frame(Opcode.BINARY, b"frag", fin=False)
                      + serialize_frame(Opcode.CONT, b"ments"))
    assert await asyncio.wait_for(reading, 10) == []
    assert await _loop_events(protocol, 1) == [BinaryReceived(b"fragments")]

    again = ThreadReader.open(protocol)  # the loop is between frames again
    assert again is not None
    reading = asyncio.get_running_loop().run_in_executor(None, _read_all, again)
    await state.write(_binary(b"x" * 1001))  # over the endpoint's limit: 1009
    assert await asyncio.wait_for(reading, 10) == []
    closed = await _loop_events(protocol, 1)
    assert isinstance(closed[0], ConnectionClosed)
    assert protocol.error is not None and protocol.error.close_code == 1009  # the loop's judgement


async def test_the_loop_takes_reading_back_from_a_waiting_thread(
        server: tuple[Server, str]) -> None:
    state, _ = server
    protocol, reader, reading = await _thread_reading(server)
    await state.write(_binary(b"before"))
    while reader.taken < 1:
        await asyncio.sleep(0.01)
    reader.take_over()
    assert await asyncio.wait_for(reading, 10) == [b"before"]
    assert not reader.reading and protocol.reader is None
    await state.write(_binary(b"after"))
    assert await _loop_events(protocol, 1) == [BinaryReceived(b"after")]
    await protocol.close()


async def test_the_peers_end_goes_back_to_the_loop(server: tuple[Server, str]) -> None:
    state, _ = server
    protocol, _, reading = await _thread_reading(server)
    await state.write(_binary(b"last words"))
    assert state.writer is not None
    state.writer.close()  # no Close frame: the socket just ends
    assert await asyncio.wait_for(reading, 10) == [b"last words"]
    closed = await _loop_events(protocol, 1)
    assert isinstance(closed[0], ConnectionClosed) and closed[0].code == 1006


async def test_closing_the_connection_takes_reading_back_first(server: tuple[Server, str]) -> None:
    protocol, _, reading = await _thread_reading(server)
    protocol.abort()
    assert await asyncio.wait_for(reading, 10) == []
    assert protocol.reader is None


async def test_reading_is_not_taken_while_the_loop_holds_part_of_a_frame(
        server: tuple[Server, str]) -> None:
    state, _ = server
    protocol = await _connect(server)
    endpoint = protocol.machine
    assert isinstance(endpoint, WebSocketEndpoint)
    await state.write(_binary(b"half a frame")[:5])
    while endpoint.between_frames:
        await asyncio.sleep(0.01)
    assert ThreadReader.open(protocol) is None
    await state.write(_binary(b"half a frame")[5:])
    assert await _loop_events(protocol, 1) == [BinaryReceived(b"half a frame")]
    reader = ThreadReader.open(protocol)
    assert reader is not None
    assert ThreadReader.open(protocol) is None  # one reader at a time
    reader.take_over()
    reader.close()
