"""A request rendezvous socket, in memory: the relay's RendezvousSocket against the
core's ControlChannel(Role.LISTENER, stream_bodies=True), no socket, no aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hc.events import BodyChunk, ConnectionClosed, RequestReceived
from hc.framing import Opcode, serialize_frame
from hc.messages import RequestCommand, ResponseCommand
from hc.protocol import ControlChannel, Role
from relay.exceptions import ProtocolViolation
from relay.rendezvous_socket import RendezvousSocket
from tests.relay.memory import MemoryTransport, turn


class Pair:
    def __init__(self, request_id: str = "7") -> None:
        self.listener = ControlChannel(Role.LISTENER, stream_bodies=True)
        self.transport = MemoryTransport(self.listener)
        self.socket = RendezvousSocket(request_id, self.transport)

    def feed(self, data: bytes | None = None) -> None:
        self.socket.wire.feed_data(b"".join(self.listener.data_to_send()) if data is None else data)

    def respond(self, status: int = 200, *, request_id: str = "7", body: bool = True) -> None:
        self.listener.send_response(ResponseCommand(request_id, status, "", (), body), streamed=body)
        self.feed()

    def closes(self) -> list[ConnectionClosed]:
        return [e for e in self.listener.events_received() if isinstance(e, ConnectionClosed)]


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def command(body: bool = True) -> RequestCommand:
    return RequestCommand("ws://h/$hc/e?sb-hc-id=x", "7", "/e", "POST", body=body)


async def test_the_request_body_leaves_in_pieces_as_one_message() -> None:
    pair = Pair()
    await pair.socket.send_request(command())
    sent = await pair.socket.send_body(chunks(b"a" * 1000, b"", b"b" * 2000))
    events = pair.listener.events_received()
    assert isinstance(events[0], RequestReceived) and events[0].command.id == "7"
    pieces = [e for e in events[1:] if isinstance(e, BodyChunk)]
    assert sent == 3000 and b"".join(p.data for p in pieces) == b"a" * 1000 + b"b" * 2000
    assert [p.end for p in pieces][-1] is True


async def test_the_response_body_comes_in_pieces_and_reading_pauses_while_they_wait() -> None:
    pair = Pair()
    pair.respond()
    answer = await pair.socket.response()
    assert (answer.status_code, answer.body) == (200, True)
    for n in range(20):
        pair.listener.send_body_chunk(bytes([n]) * 100)
        pair.feed()
    assert pair.transport.paused  # nobody reads: the relay stops reading the listener
    pair.listener.send_body_chunk(b"", end=True)
    pair.feed()
    got = [piece async for piece in pair.socket.body()]
    assert b"".join(got) == b"".join(bytes([n]) * 100 for n in range(20))
    assert not pair.transport.paused


async def test_a_bodiless_response_ends_at_once() -> None:
    pair = Pair()
    pair.respond(204, body=False)
    assert (await pair.socket.response()).status_code == 204
    assert [piece async for piece in pair.socket.body()] == []


@pytest.mark.parametrize(
    "status, request_id, reason",
    [
        (200, "8", "rendezvous carried a response for another request"),
        (100, "7", "status 100 is not a final answer"),
    ],
)
async def test_a_response_the_relay_cannot_use_closes_with_1008(
    status: int, request_id: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    pair = Pair()
    pair.respond(status, request_id=request_id, body=False)
    with pytest.raises(ProtocolViolation, match=reason):
        await pair.socket.response()
    assert [(c.code, c.reason) for c in pair.closes()] == [(1008, reason)]
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


async def test_a_second_response_closes_with_1008() -> None:
    pair = Pair()
    pair.respond(body=False)
    pair.respond(body=False)
    assert [(c.code, c.reason) for c in pair.closes()] == [
        (1008, "a second response on one rendezvous socket")
    ]


async def test_a_command_over_the_limit_closes_with_1009() -> None:
    pair = Pair()
    pair.feed(serialize_frame(Opcode.TEXT, b"x" * (256 * 1024 + 1), mask_key=b"abcd"))
    with pytest.raises(ProtocolViolation, match="longer than"):
        await pair.socket.response()
    assert [c.code for c in pair.closes()] == [1009]


async def test_a_socket_lost_in_the_middle_of_the_body_is_an_error_for_the_reader() -> None:
    pair = Pair()
    pair.respond()
    await pair.socket.response()
    pair.listener.send_body_chunk(b"half")
    pair.feed()
    pair.socket.wire.feed_eof()
    body = pair.socket.body()
    assert await anext(body) == b"half"
    with pytest.raises(ConnectionResetError, match="in the middle of a message"):
        await anext(body)


async def test_an_early_answer_leaves_the_request_body_unfinished_and_close_still_works() -> None:
    pair = Pair()
    more = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"part"
        await more.wait()  # the sender's body stalls: the listener answers first
        yield b"never sent"

    await pair.socket.send_request(command())
    sending = asyncio.create_task(pair.socket.send_body(slow_body()))
    await turn()
    pair.respond(413, body=False)
    assert (await pair.socket.response()).status_code == 413
    sending.cancel()
    closing = asyncio.create_task(pair.socket.close(1000))
    await turn()
    assert [c.code for c in pair.closes()] == [1000]  # a Close may cut the unfinished message
    assert not closing.done()  # waiting for the listener's Close
    pair.feed()
    await closing
    assert pair.transport.closed and not pair.transport.aborted
