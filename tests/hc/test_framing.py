"""hc.framing: a minimal RFC 6455 endpoint, judged byte by byte. No sockets, no loop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame
from websockets.frames import Opcode as WsOpcode
from websockets.protocol import Protocol
from websockets.protocol import Side as WsSide
from websockets.protocol import State as WsState

from hc.events import (
    BinaryReceived,
    ConnectionClosed,
    PingReceived,
    PongReceived,
    TextReceived,
    WebSocketEvent,
)
from hc.exceptions import LocalProtocolError, RemoteProtocolError
from hc.framing import Opcode, Side, State, WebSocketEndpoint, serialize_frame

KEY = b"\x37\xfa\x21\x3d"


def client_frame(opcode: Opcode, payload: bytes, *, fin: bool = True) -> bytes:
    return serialize_frame(opcode, payload, fin=fin, mask_key=KEY)


def server_frame(opcode: Opcode, payload: bytes, *, fin: bool = True) -> bytes:
    return serialize_frame(opcode, payload, fin=fin)


def frame_for(side: Side, opcode: Opcode, payload: bytes, *, fin: bool = True) -> bytes:
    """A frame as the peer of ``side`` sends it."""
    make = client_frame if side is Side.SERVER else server_frame
    return make(opcode, payload, fin=fin)


def close_sent(endpoint: WebSocketEndpoint) -> ConnectionClosed:
    """The Close frame ``endpoint`` queued, as its peer reads it."""
    other = Side.CLIENT if endpoint.side is Side.SERVER else Side.SERVER
    peer = WebSocketEndpoint(other)
    for chunk in endpoint.data_to_send():
        peer.receive_data(chunk)
    events = peer.events_received()
    assert isinstance(events[-1], ConnectionClosed), events
    return events[-1]


def feed(endpoint: WebSocketEndpoint, data: bytes) -> list[WebSocketEvent]:
    endpoint.receive_data(data)
    return endpoint.events_received()


# -- messages, control frames, closing -------------------------------------------------------


@pytest.mark.parametrize("side", list(Side))
def test_text_binary_and_fragments_with_an_interleaved_ping(side: Side) -> None:
    endpoint = WebSocketEndpoint(side)
    data = (
        frame_for(side, Opcode.TEXT, "héllo".encode())
        + frame_for(side, Opcode.BINARY, b"ab", fin=False)
        + frame_for(side, Opcode.PING, b"p")
        + frame_for(side, Opcode.CONT, b"cd", fin=False)
        + frame_for(side, Opcode.CONT, b"", fin=True)
        + frame_for(side, Opcode.PONG, b"q")
    )
    assert feed(endpoint, data) == [
        TextReceived("héllo"), PingReceived(b"p"), BinaryReceived(b"abcd"), PongReceived(b"q"),
    ]
    pong = endpoint.data_to_send()
    assert len(pong) == 1 and pong[0][0] == 0x80 | Opcode.PONG
    assert endpoint.buffered == 0


def test_a_client_masks_with_the_injected_key_and_a_server_does_not() -> None:
    client = WebSocketEndpoint(Side.CLIENT, mask_key=lambda: KEY)
    client.send_binary(b"xyz")
    assert client.data_to_send() == [client_frame(Opcode.BINARY, b"xyz")]
    server = WebSocketEndpoint(Side.SERVER)
    server.send_text("xyz")
    assert server.data_to_send() == [b"\x81\x03xyz"]


def test_close_handshake_started_here() -> None:
    client = WebSocketEndpoint(Side.CLIENT)
    client.send_close(1001, "going")
    assert client.state is State.CLOSING
    assert close_sent(client) == ConnectionClosed(1001, "going")
    events = feed(client, server_frame(Opcode.TEXT, b"late") + server_frame(Opcode.CLOSE, b"\x03\xe9"))
    assert events == [ConnectionClosed(1001, "")]  # the late text is dropped
    assert client.state is State.CLOSED and client.data_to_send() == []


def test_close_handshake_started_by_the_peer_is_echoed() -> None:
    server = WebSocketEndpoint(Side.SERVER)
    assert feed(server, client_frame(Opcode.CLOSE, b"\x03\xe8bye")) == [ConnectionClosed(1000, "bye")]
    assert server.state is State.CLOSED
    assert server.data_to_send() == [b"\x88\x02\x03\xe8"]
    with pytest.raises(LocalProtocolError, match="closed"):
        server.send_text("x")
    assert feed(server, client_frame(Opcode.TEXT, b"after")) == []


def test_an_empty_close_is_1005_and_echoed_empty() -> None:
    server = WebSocketEndpoint(Side.SERVER)
    assert feed(server, client_frame(Opcode.CLOSE, b"")) == [ConnectionClosed(1005, "")]
    assert server.data_to_send() == [b"\x88\x00"]


def test_eof_is_1006_once() -> None:
    server = WebSocketEndpoint(Side.SERVER)
    server.receive_data(client_frame(Opcode.TEXT, b"half")[:4])
    server.receive_eof()
    server.receive_eof()
    assert server.events_received() == [ConnectionClosed(1006, "")]
    assert server.state is State.CLOSED and server.buffered == 0


# -- bad input: each one its close code and reason --------------------------------------------

BAD = [
    (Side.SERVER, server_frame(Opcode.TEXT, b"x"), 1002, "unmasked frame from a client"),
    (Side.CLIENT, client_frame(Opcode.TEXT, b"x"), 1002, "masked frame from a server"),
    (Side.CLIENT, b"\xc1\x01x", 1002, "reserved bits"),
    (Side.CLIENT, b"\x83\x00", 1002, "unknown opcode 0x3"),
    (Side.CLIENT, b"\x8b\x00", 1002, "unknown opcode 0xb"),
    (Side.CLIENT, server_frame(Opcode.PING, b"p" * 126), 1002, "control frame longer than 125"),
    (Side.CLIENT, server_frame(Opcode.PING, b"p", fin=False), 1002, "fragmented control frame"),
    (Side.SERVER, client_frame(Opcode.CLOSE, b"\x03"), 1002, "1-byte payload"),
    (Side.SERVER, client_frame(Opcode.CLOSE, b"\x03\xed"), 1002, "invalid close code 1005"),
    (Side.SERVER, client_frame(Opcode.CLOSE, b"\x13\x88"), 1002, "invalid close code 5000"),
    (Side.SERVER, client_frame(Opcode.CLOSE, b"\x03\xe8\xff"), 1007, "invalid UTF-8 in a close"),
    (Side.SERVER, client_frame(Opcode.TEXT, b"\xc3("), 1007, "invalid UTF-8 in a text message"),
    (Side.CLIENT, server_frame(Opcode.TEXT, b"\xe2\x82", fin=False) + server_frame(Opcode.CONT, b"("),
     1007, "invalid UTF-8 in a text message"),
    (Side.SERVER, client_frame(Opcode.BINARY, b"b" * 101), 1009, "message longer than 100 bytes"),
    (Side.SERVER, client_frame(Opcode.BINARY, b"b" * 60, fin=False) + client_frame(Opcode.CONT, b"c" * 41),
     1009, "message longer than 100 bytes"),
    (Side.CLIENT, b"\x82\x7f" + (1 << 62).to_bytes(8, "big"), 1009, "message longer"),
    (Side.CLIENT, server_frame(Opcode.CONT, b"x"), 1002, "continuation frame with no message"),
    (Side.CLIENT, server_frame(Opcode.TEXT, b"x", fin=False) + server_frame(Opcode.BINARY, b"y"),
     1002, "new data frame before the previous message ended"),
]


@pytest.mark.parametrize(("side", "data", "code", "reason"), BAD)
def test_bad_input_is_closed_with_its_code_and_reason(side: Side, data: bytes, code: int, reason: str) -> None:
    endpoint = WebSocketEndpoint(side, max_message_size=100)
    ok = frame_for(side, Opcode.BINARY, b"before")
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        endpoint.receive_data(ok + data)
    assert info.value.close_code == code and reason in info.value.reason
    assert endpoint.state is State.CLOSING
    assert endpoint.events_received() == [BinaryReceived(b"before")]
    closed = close_sent(endpoint)
    assert closed.code == code and reason in closed.reason
    endpoint.receive_data(frame_for(side, Opcode.TEXT, b"ignored"))  # nothing more is read
    assert endpoint.events_received() == [] and endpoint.data_to_send() == []
    endpoint.receive_eof()
    assert endpoint.events_received() == [ConnectionClosed(1006)] and endpoint.state is State.CLOSED


def test_a_long_reason_is_cut_to_fit_a_close_frame() -> None:
    endpoint = WebSocketEndpoint(Side.SERVER)
    error = endpoint.fail(1008, "é" * 100)
    assert error.reason == "é" * 100
    assert close_sent(endpoint) == ConnectionClosed(1008, "é" * 61)


# -- local misuse -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "message"),
    [
        (lambda e: e.send_close(1005), "close code 1005 may not be sent"),
        (lambda e: e.send_close(1000, "r" * 124), "at most 123 bytes"),
        (lambda e: e.send_ping(b"p" * 126), "at most 125 bytes"),
    ],
)
def test_local_misuse_raises_local_protocol_error(act: object, message: str) -> None:
    endpoint = WebSocketEndpoint(Side.SERVER)
    with pytest.raises(LocalProtocolError, match=message):
        act(endpoint)  # type: ignore[operator]
    assert endpoint.state is State.OPEN and endpoint.data_to_send() == []


def test_a_bad_mask_key_factory_is_our_bug() -> None:
    client = WebSocketEndpoint(Side.CLIENT, mask_key=lambda: b"abc")
    with pytest.raises(LocalProtocolError, match="4 bytes"):
        client.send_text("x")


def test_nothing_is_sent_after_our_close() -> None:
    client = WebSocketEndpoint(Side.CLIENT)
    client.send_close()
    for act in (client.send_close, lambda: client.send_binary(b""), client.send_ping, client.send_pong):
        with pytest.raises(LocalProtocolError, match="closing"):
            act()


# -- a real peer: websockets' own sans-I/O Protocol --------------------------------------------


def test_frames_interoperate_with_websockets_protocol() -> None:
    ours = WebSocketEndpoint(Side.CLIENT)  # the real os.urandom keys
    theirs = Protocol(WsSide.SERVER, state=WsState.OPEN, max_size=None)

    def to_theirs() -> list[Frame]:
        for chunk in ours.data_to_send():
            theirs.receive_data(chunk)
        return theirs.events_received()  # type: ignore[return-value]

    def to_ours() -> list[WebSocketEvent]:
        for chunk in theirs.data_to_send():
            if chunk:
                ours.receive_data(chunk)
        return ours.events_received()

    big = bytes(range(256)) * 300
    ours.send_text("héllo")
    ours.send_binary(big)
    ours.send_ping(b"are you there")
    frames = to_theirs()
    assert [(f.opcode, f.data) for f in frames] == [
        (WsOpcode.TEXT, "héllo".encode()), (WsOpcode.BINARY, big), (WsOpcode.PING, b"are you there"),
    ]
    theirs.send_text(b"part one ", fin=False)
    theirs.send_ping(b"mid")
    theirs.send_continuation(b"and two", fin=True)
    theirs.send_binary(big)
    assert to_ours() == [
        PongReceived(b"are you there"), PingReceived(b"mid"), TextReceived("part one and two"),
        BinaryReceived(big),
    ]
    assert [(f.opcode, f.data) for f in to_theirs()] == [(WsOpcode.PONG, b"mid")]
    theirs.send_close(1001, "bye")
    assert to_ours() == [ConnectionClosed(1001, "bye")]
    assert [(f.opcode, f.data) for f in to_theirs()] == [(WsOpcode.CLOSE, b"\x03\xe9")]  # our echo
    assert ours.state is State.CLOSED
    assert theirs.close_rcvd is not None and theirs.close_rcvd.code == 1001
    assert theirs.close_rcvd_then_sent is False


def test_our_close_completes_with_websockets_protocol() -> None:
    ours = WebSocketEndpoint(Side.CLIENT)
    theirs = Protocol(WsSide.SERVER, state=WsState.OPEN, max_size=None)
    ours.send_close(1008, "policy")
    for chunk in ours.data_to_send():
        theirs.receive_data(chunk)
    assert theirs.close_rcvd is not None and theirs.close_rcvd.code == 1008
    for chunk in theirs.data_to_send():
        if chunk:
            ours.receive_data(chunk)
    assert ours.events_received() == [ConnectionClosed(1008, "policy")]


# -- random bytes ---------------------------------------------------------------------------------

LIMIT = 200
#: What the endpoint may hold besides a message: one incomplete frame, at most a control
#: frame (2 + 4 + 125 bytes; RFC 6455 lets one arrive in the middle of a fragmented
#: message, and it is read whole) or a data frame's header (14).
ONE_FRAME = 2 + 4 + 125


def test_a_control_frame_arriving_in_pieces_beside_a_held_message_stays_within_one_frame() -> None:
    endpoint = WebSocketEndpoint(Side.SERVER, max_message_size=LIMIT)
    endpoint.receive_data(frame_for(Side.SERVER, Opcode.BINARY, b"y" * 150, fin=False))
    close = frame_for(Side.SERVER, Opcode.CLOSE, b"\x03\xe8" + b"r" * 58)
    for at in range(0, len(close) - 1, 5):  # all but its last byte: found by Hypothesis
        endpoint.receive_data(close[at:min(at + 5, len(close) - 1)])
    assert LIMIT + 14 < endpoint.buffered <= LIMIT + ONE_FRAME
    endpoint.receive_data(close[-1:])
    assert isinstance(endpoint.events_received()[-1], ConnectionClosed)


@settings(max_examples=150, deadline=None)
@given(side=st.sampled_from(list(Side)), data=st.data())
def test_random_bytes_raise_only_remote_protocol_error_and_stay_bounded(side: Side, data: st.DataObject) -> None:
    starts = [frame_for(side, Opcode.BINARY, b"y" * 150, fin=False), frame_for(side, Opcode.CONT, b"z" * 10),
              frame_for(side, Opcode.TEXT, b"big" * 400)[:100], frame_for(side, Opcode.PING, b"p")]
    chunks = data.draw(st.lists(st.one_of(st.binary(max_size=300), st.sampled_from(starts)), max_size=8))
    endpoint = WebSocketEndpoint(side, max_message_size=LIMIT)
    for chunk in chunks:
        try:
            endpoint.receive_data(chunk)
        except RemoteProtocolError as exc:
            assert exc.close_code in (1002, 1007, 1009)
            assert endpoint.state is State.CLOSING
        assert endpoint.buffered <= LIMIT + ONE_FRAME
    endpoint.receive_eof()
    assert endpoint.state is State.CLOSED
