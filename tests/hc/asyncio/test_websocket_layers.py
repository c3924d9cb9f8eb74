"""The listener's two WebSocket layers on a real socket, against a relay that breaks the rules.

The same tests for :mod:`hc.framing` parsing the bytes and for picows parsing them
(:mod:`hc.asyncio.fastws`): the rules are judged by the same machine either way, so
both must answer a hostile relay alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hc.asyncio import HybridConnectionListener, RelayedHttpListenerContext, fastws
from hc.asyncio.connection import WebSocketProtocol
from hc.asyncio.exchange import COMMAND_LIMIT
from hc.events import ConnectionClosed, PongReceived, ResponseReceived
from hc.frames import Opcode, serialize_frame
from hc.handshake import accept_response, parse_request_head
from hc.messages import RequestCommand
from hc.protocol import ControlChannel, Role
from tests.hc.asyncio.memory_relay import RelaySide, SocketRelay

LIMIT = 64 * 1024  # the listener's max_message_size in these tests


@pytest.fixture
async def relay(picows: bool) -> AsyncIterator[SocketRelay]:
    relay = SocketRelay()
    relay.picows = picows
    await relay.start()
    yield relay
    await relay.stop()


async def shout(context: RelayedHttpListenerContext) -> None:
    await context.response.write((await context.request.read()).upper())


@pytest.fixture
async def listener(relay: SocketRelay) -> AsyncIterator[HybridConnectionListener]:
    listener = HybridConnectionListener("http://relay.test/echo", connector=relay.connector,
                                        picows=relay.picows, max_message_size=LIMIT,
                                        sleep=lambda _: asyncio.sleep(0))
    listener.request_handler = shout
    await listener.open()
    yield listener
    await listener.close(timeout=1)


def control_of(side: RelaySide) -> ControlChannel:
    assert isinstance(side.channel, ControlChannel)
    return side.channel


def request(n: int = 0) -> str:
    return RequestCommand(f"ws://relay.test/$hc/echo?sb-hc-id=r{n}", f"r{n}", "/echo", "POST",
                          (), True).serialize()


async def test_the_chosen_layer_reads_the_control_channel(
    relay: SocketRelay, listener: HybridConnectionListener
) -> None:
    control = listener._control
    assert isinstance(control, WebSocketProtocol) and control.transport is not None
    reader = type(control.transport.get_protocol()).__name__
    assert (reader == "WSProtocol") is relay.picows


async def test_a_request_in_fragments_is_joined_and_answered(
    relay: SocketRelay, listener: HybridConnectionListener
) -> None:
    side = await relay.next_socket()
    text = request(1).encode()
    side.peer.write(serialize_frame(Opcode.TEXT, text[:10], fin=False)
                    + serialize_frame(Opcode.PING, b"between")  # control frames may come between
                    + serialize_frame(Opcode.CONT, text[10:])
                    + serialize_frame(Opcode.BINARY, b"hel", fin=False)
                    + serialize_frame(Opcode.CONT, b"lo"))
    pong = await side.next_event()
    assert isinstance(pong, PongReceived) and pong.data == b"between"  # answered once, by us
    answer = await side.next_event()
    assert isinstance(answer, ResponseReceived)
    assert (answer.command.request_id, answer.body) == ("r1", b"HELLO")


@pytest.mark.parametrize(("frame", "code"), [
    (b"\xc1\x02{}", 1002),  # RSV1 with no extension negotiated
    (serialize_frame(Opcode.TEXT, b"\xff\xfe"), 1007),  # not UTF-8
    (serialize_frame(Opcode.BINARY, b"body"), 1008),  # a body where a command is due
    (serialize_frame(Opcode.TEXT, b"x" * 100, fin=False)
     + serialize_frame(Opcode.TEXT, b"y"), 1002),  # a new message inside a fragmented one
    (serialize_frame(Opcode.PING, b"p", fin=False), 1002),  # a fragmented control frame
], ids=["rsv1", "utf8", "body-first", "interleaved", "fragmented-ping"])
async def test_a_broken_rule_closes_with_its_code_and_the_listener_reconnects(
    relay: SocketRelay, listener: HybridConnectionListener, frame: bytes, code: int
) -> None:
    side = await relay.next_socket()
    side.peer.write(frame)
    closed = await side.next_event()
    assert isinstance(closed, ConnectionClosed) and closed.code == code
    again = await relay.next_socket()
    assert again.query["sb-hc-action"] == ["listen"]


async def test_a_message_over_the_limit_in_many_small_frames_is_refused_1009(
    relay: SocketRelay, listener: HybridConnectionListener
) -> None:
    side = await relay.next_socket()
    piece = b"x" * 16 * 1024
    over = (LIMIT + COMMAND_LIMIT) // len(piece) + 1  # each frame small, the message not
    frames = [serialize_frame(Opcode.TEXT if n == 0 else Opcode.CONT, piece, fin=False)
              for n in range(over)]
    side.peer.write(b"".join(frames))
    closed = await side.next_event()
    assert isinstance(closed, ConnectionClosed) and closed.code == 1009
    await relay.next_socket()  # and back


async def test_one_frame_over_the_limit_is_refused_before_it_is_all_read(
    relay: SocketRelay, listener: HybridConnectionListener
) -> None:
    side = await relay.next_socket()
    huge = 1 << 40  # announced, never sent: the refusal cannot wait for it
    side.peer.write(b"\x82\x7f" + huge.to_bytes(8, "big") + b"x" * 1024)
    closed = await side.next_event()
    assert isinstance(closed, ConnectionClosed) and closed.code == 1009
    await relay.next_socket()


async def test_commands_in_the_same_read_as_the_101_are_answered(picows: bool) -> None:
    """Frames that come with the handshake's answer: parsed after it, answered by us."""
    seen: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        _, _, headers = parse_request_head(head[:-4])
        key = next(v for k, v in headers if k == "Sec-WebSocket-Key")
        writer.write(accept_response(key) + serialize_frame(Opcode.PING, b"early")
                     + serialize_frame(Opcode.TEXT, request(7).encode())
                     + serialize_frame(Opcode.BINARY, b"first"))
        relay_end, events = ControlChannel(Role.RELAY), []
        while not any(isinstance(event, ResponseReceived) for event in events):
            relay_end.receive_data(await reader.read(4096))
            events += relay_end.events_received()
        seen.set_result(events)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    listener = HybridConnectionListener(f"http://127.0.0.1:{port}/echo", picows=picows)
    listener.request_handler = shout
    try:
        await listener.open()
        pong, answer = await asyncio.wait_for(seen, 5)
        assert isinstance(pong, PongReceived) and pong.data == b"early"
        assert isinstance(answer, ResponseReceived) and answer.body == b"FIRST"
    finally:
        await listener.close(timeout=1)
        server.close()


def test_picows_true_without_picows_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastws, "AVAILABLE", False)
    with pytest.raises(ValueError, match="picows is not installed"):
        HybridConnectionListener("http://127.0.0.1:1/echo", picows=True)
    assert not HybridConnectionListener("http://127.0.0.1:1/echo").picows
