"""Streamed binary messages and bodies (hc.framing ``stream_binary``, hc.protocol
``stream_bodies``): pieces as they arrive, nothing held whole. No sockets, no loop."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hc.events import (
    BinaryFragment,
    BodyChunk,
    ConnectionClosed,
    Event,
    PingReceived,
    PongReceived,
    RequestReceived,
    ResponseReceived,
    TextReceived,
)
from hc.exceptions import LocalProtocolError, RemoteProtocolError
from hc.framing import Opcode, Side, WebSocketEndpoint, serialize_frame
from hc.messages import RequestCommand, ResponseCommand
from hc.protocol import ControlChannel, Role, State

KEY = b"\x37\xfa\x21\x3d"
ADDRESS = "ws://relay.test/$hc/p?sb-hc-action=request&sb-hc-id=abc"
POST = RequestCommand(ADDRESS, "r1", "/p", "POST", (("Content-Type", "text/xml"),), body=True)
OK = ResponseCommand("r1", 200, "OK", (("Content-Type", "text/xml"),), body=True)
EMPTY = ResponseCommand("r1", 204, "No Content")


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def streaming_server() -> WebSocketEndpoint:
    return WebSocketEndpoint(Side.SERVER, stream_binary=True, max_message_size=16)


def joined(events: Sequence[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BinaryFragment))


# -- hc.framing --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(max_size=600),
    sizes=st.lists(st.integers(0, 200), max_size=5),
    cuts=st.lists(st.integers(0, 2000), max_size=12),
)
def test_a_message_in_any_frames_and_reads_comes_out_whole_and_in_order(
    payload: bytes, sizes: list[int], cuts: list[int]
) -> None:
    # The sender's fragments, masked (a client's frames), cut into arbitrary reads.
    pieces, at = [], 0
    for size in sizes:
        pieces.append(payload[at : at + size])
        at += size
    pieces.append(payload[at:])
    frames = [
        serialize_frame(Opcode.CONT if i else Opcode.BINARY, piece,
                        fin=i == len(pieces) - 1, mask_key=KEY)
        for i, piece in enumerate(pieces)
    ]
    endpoint = streaming_server()  # max_message_size=16 does not bound binary messages
    for chunk in split(b"".join(frames), cuts):
        endpoint.receive_data(chunk)
        assert endpoint.buffered <= 14  # at most a frame header is ever held
    events = endpoint.events_received()
    assert joined(events) == payload
    assert [e.fin for e in events] == [False] * (len(events) - 1) + [True]


def test_one_large_frame_is_passed_on_as_its_bytes_arrive() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB in a single frame
    endpoint = streaming_server()
    data = serialize_frame(Opcode.BINARY, payload, mask_key=KEY)
    seen = []
    for at in range(0, len(data), 65536):
        endpoint.receive_data(data[at : at + 65536])
        seen += endpoint.events_received()
        assert endpoint.buffered == 0
    assert len(seen) == 17 and joined(seen) == payload and seen[-1].fin


def test_control_frames_between_pieces_and_text_messages_still_whole() -> None:
    endpoint = streaming_server()
    endpoint.receive_data(
        serialize_frame(Opcode.TEXT, b"cmd", mask_key=KEY)
        + serialize_frame(Opcode.BINARY, b"ab", fin=False, mask_key=KEY)
        + serialize_frame(Opcode.PING, b"p", mask_key=KEY)
        + serialize_frame(Opcode.CONT, b"", fin=True, mask_key=KEY)
    )
    assert endpoint.events_received() == [
        TextReceived("cmd"), BinaryFragment(b"ab", False), PingReceived(b"p"), BinaryFragment(b"", True),
    ]
    with pytest.raises(RemoteProtocolError) as caught:  # text is still bounded
        endpoint.receive_data(serialize_frame(Opcode.TEXT, b"x" * 17, mask_key=KEY))
    assert caught.value.close_code == 1009


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        (Opcode.BINARY, "new data frame before the previous message ended"),
        (Opcode.TEXT, "new data frame before the previous message ended"),
    ],
)
def test_a_new_message_inside_a_streamed_one_is_1002(second: Opcode, reason: str) -> None:
    endpoint = streaming_server()
    endpoint.receive_data(serialize_frame(Opcode.BINARY, b"ab", fin=False, mask_key=KEY))
    with pytest.raises(RemoteProtocolError) as caught:
        endpoint.receive_data(serialize_frame(second, b"cd", mask_key=KEY))
    assert (caught.value.close_code, caught.value.reason) == (1002, reason)
    assert endpoint.events_received() == [BinaryFragment(b"ab", False)]


def test_sending_in_pieces_keeps_other_data_out_until_the_last() -> None:
    sender = WebSocketEndpoint(Side.SERVER)
    sender.send_binary_fragment(b"ab", fin=False)
    sender.send_ping(b"1")  # control frames may come between
    with pytest.raises(LocalProtocolError, match="being sent in pieces"):
        sender.send_text("no")
    assert sender.sending_fragments
    sender.send_binary_fragment(b"cd", fin=True)
    sender.send_text("yes")
    receiver = WebSocketEndpoint(Side.CLIENT)
    for chunk in sender.data_to_send():
        receiver.receive_data(chunk)
    events = receiver.events_received()
    assert [type(e).__name__ for e in events] == ["PingReceived", "BinaryReceived", "TextReceived"]
    assert events[1].data == b"abcd"  # type: ignore[union-attr]


# -- hc.protocol -------------------------------------------------------------------------------


def pair() -> tuple[ControlChannel, ControlChannel]:
    return (
        ControlChannel(Role.RELAY, stream_bodies=True, max_message_size=4096),
        ControlChannel(Role.LISTENER, stream_bodies=True, mask_key=lambda: KEY, max_message_size=4096),
    )


def move(source: ControlChannel, target: ControlChannel, cuts: Sequence[int] = ()) -> list[Event]:
    for chunk in split(b"".join(source.data_to_send()), cuts):
        target.receive_data(chunk)
    return target.events_received()


@settings(max_examples=100, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=3000), max_size=6),
    cuts=st.lists(st.integers(0, 20000), max_size=10),
)
def test_streamed_request_and_response_bodies_both_ways(chunks: list[bytes], cuts: list[int]) -> None:
    relay, listener = pair()
    relay.send_request(POST, streamed=True)
    for chunk in chunks:
        relay.send_body_chunk(chunk)
    relay.send_body_chunk(b"", end=True)
    events = move(relay, listener, cuts)
    assert events[0] == RequestReceived(POST)
    assert all(isinstance(e, BodyChunk) for e in events[1:]) and events[-1].end  # type: ignore[union-attr]
    assert b"".join(e.data for e in events[1:]) == b"".join(chunks)  # type: ignore[union-attr]
    assert listener.state is State.OPEN

    listener.send_response(OK, streamed=True)
    for chunk in chunks:
        listener.send_body_chunk(chunk)
    listener.send_body_chunk(b"!", end=True)
    events = move(listener, relay, cuts)
    assert events[0] == ResponseReceived(OK)
    assert b"".join(e.data for e in events[1:]) == b"".join(chunks) + b"!"  # type: ignore[union-attr]


def test_a_body_given_whole_is_still_reported_in_pieces() -> None:
    relay, listener = pair()
    relay.send_request(POST, b"x" * 10000)  # one frame, longer than max_message_size
    events = move(relay, listener)
    assert events == [RequestReceived(POST), BodyChunk(b"x" * 10000, True)]


def test_awaiting_body_until_the_last_piece() -> None:
    relay, listener = pair()
    relay.send_request(POST, streamed=True)
    relay.send_body_chunk(b"a")
    move(relay, listener)
    assert listener.state is State.AWAITING_BODY
    relay.send_body_chunk(b"", end=True)
    assert move(relay, listener) == [BodyChunk(b"", True)]
    assert listener.state is State.OPEN


def test_no_command_while_a_body_is_being_sent_but_pings_pass() -> None:
    relay, listener = pair()
    relay.send_request(POST, streamed=True)
    assert relay.sending_body
    with pytest.raises(LocalProtocolError, match="still being sent"):
        relay.send_request(POST, b"x")
    relay.send_ping(b"k")
    relay.send_body_chunk(b"z", end=True)
    assert not relay.sending_body
    assert move(relay, listener) == [RequestReceived(POST), PingReceived(b"k"), BodyChunk(b"z", True)]
    assert move(listener, relay) == [PongReceived(b"k")]


@pytest.mark.parametrize(
    ("act", "message"),
    [
        (lambda c: c.send_body_chunk(b"x"), "no body is being sent"),
        (lambda c: c.send_request(RequestCommand(ADDRESS, "r2", "/p", "GET"), streamed=True),
         'needs "body": true'),
        (lambda c: c.send_request(POST, b"x", streamed=True), "no body bytes"),
    ],
)
def test_streaming_misuse_is_our_bug(act: object, message: str) -> None:
    relay, _ = pair()
    with pytest.raises(LocalProtocolError, match=message):
        act(relay)  # type: ignore[operator]


def test_the_zero_byte_message_after_a_bodiless_response_is_dropped_when_streaming() -> None:
    relay, listener = pair()
    listener.send_response(EMPTY)
    hyco_https_extra = serialize_frame(Opcode.BINARY, b"", mask_key=KEY)
    relay.receive_data(b"".join(listener.data_to_send()) + hyco_https_extra)
    assert relay.events_received() == [ResponseReceived(EMPTY)]
    assert relay.state is State.OPEN


def test_a_body_where_a_command_is_due_is_1008_when_streaming() -> None:
    relay, _ = pair()
    frame = serialize_frame(Opcode.BINARY, b"stray", fin=False, mask_key=KEY)
    with pytest.raises(RemoteProtocolError) as caught:
        relay.receive_data(frame)
    assert caught.value.close_code == 1008 and "where a command is due" in caught.value.reason
    assert relay.state is State.CLOSING


def test_eof_in_the_middle_of_a_body_is_1006() -> None:
    relay, listener = pair()
    relay.send_request(POST, streamed=True)
    relay.send_body_chunk(b"half")
    move(relay, listener)
    listener.receive_eof()
    assert listener.events_received() == [ConnectionClosed(1006)]
    assert listener.state is State.CLOSED
