"""hc.protocol: the control channel's rules, with an in-memory relay/listener pair. No sockets."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hc.events import (
    AcceptReceived,
    ConnectionClosed,
    Event,
    PingReceived,
    PongReceived,
    RenewTokenReceived,
    RequestReceived,
    ResponseReceived,
    WebSocketEvent,
)
from hc.exceptions import LocalProtocolError, MalformedMessage, RemoteProtocolError
from hc.framing import Opcode, Side, WebSocketEndpoint, serialize_frame
from hc.messages import AcceptCommand, RequestCommand, ResponseCommand
from hc.protocol import ControlChannel, Role, State

ADDRESS = "ws://relay.test/$hc/p?sb-hc-action=request&sb-hc-id=abc"
POST = RequestCommand(ADDRESS, "r1", "/p/x?q=1", "POST", (("Content-Type", "text/xml"),), body=True)
GET = RequestCommand(ADDRESS, "r2", "/p", "GET", body=False)
ADDRESS_ONLY = RequestCommand(ADDRESS, "r3")
ACCEPT = AcceptCommand(ADDRESS, "c1", (("Sec-WebSocket-Key", "k"),), ("127.0.0.1", 5000))
OK = ResponseCommand("r1", 200, "OK", (("Content-Type", "text/xml"),), body=True)
EMPTY = ResponseCommand("r2", 204, "No Content")
KEY = b"\x01\x02\x03\x04"


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@dataclass
class Pair:
    """A RELAY and a LISTENER machine wired back to back in memory."""

    relay: ControlChannel = field(default_factory=lambda: ControlChannel(Role.RELAY))
    listener: ControlChannel = field(
        default_factory=lambda: ControlChannel(Role.LISTENER, mask_key=lambda: KEY)
    )

    def to_listener(self, cuts: Sequence[int] = ()) -> list[Event]:
        return _move(self.relay, self.listener, cuts)

    def to_relay(self, cuts: Sequence[int] = ()) -> list[Event]:
        return _move(self.listener, self.relay, cuts)


def _move(source: ControlChannel, target: ControlChannel, cuts: Sequence[int]) -> list[Event]:
    for chunk in split(b"".join(source.data_to_send()), cuts):
        target.receive_data(chunk)
    return target.events_received()


def raw(receiver: Role, opcode: Opcode, payload: bytes, *, fin: bool = True) -> bytes:
    """A frame as the peer of ``receiver`` would send it (masked towards the relay)."""
    return serialize_frame(opcode, payload, fin=fin, mask_key=KEY if receiver is Role.RELAY else None)


def sent_events(machine: ControlChannel) -> list[WebSocketEvent]:
    """What ``machine`` queued, as its peer's WebSocket layer reads it."""
    peer = WebSocketEndpoint(Side.CLIENT if machine.role is Role.RELAY else Side.SERVER)
    for chunk in machine.data_to_send():
        peer.receive_data(chunk)
    return peer.events_received()


# -- the conversation ---------------------------------------------------------------------------


@pytest.mark.parametrize("cuts", [(), (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144)])
def test_inline_request_with_body_arrives_once_its_body_has(cuts: tuple[int, ...]) -> None:
    pair = Pair()
    pair.relay.send_request(POST, b"<Envelope/>")
    assert pair.to_listener(cuts) == [RequestReceived(POST, b"<Envelope/>")]
    assert pair.listener.state is State.OPEN


def test_the_listener_waits_for_the_body_in_awaiting_body() -> None:
    pair = Pair()
    pair.relay.send_request(POST, b"body")
    text, body = pair.relay.data_to_send()
    pair.listener.receive_data(text)
    assert pair.listener.events_received() == [] and pair.listener.state is State.AWAITING_BODY
    pair.listener.receive_data(body)
    assert pair.listener.events_received() == [RequestReceived(POST, b"body")]


def test_request_without_body_and_address_only_request() -> None:
    pair = Pair()
    pair.relay.send_request(GET)
    pair.relay.send_request(ADDRESS_ONLY)
    events = pair.to_listener()
    assert events == [RequestReceived(GET, None), RequestReceived(ADDRESS_ONLY, None)]
    assert isinstance(events[1], RequestReceived) and events[1].command.is_address_only


def test_accept() -> None:
    pair = Pair()
    pair.relay.send_accept(ACCEPT)
    assert pair.to_listener() == [AcceptReceived(ACCEPT)]


def test_response_with_body_and_an_empty_body() -> None:
    pair = Pair()
    pair.listener.send_response(OK, b"<Reply/>")
    pair.listener.send_response(ResponseCommand("r9", body=True), b"")
    assert pair.to_relay([3, 7]) == [
        ResponseReceived(OK, b"<Reply/>"), ResponseReceived(ResponseCommand("r9", body=True), b""),
    ]


def test_the_zero_byte_message_hyco_https_sends_after_a_bodiless_response_is_discarded() -> None:
    relay = ControlChannel(Role.RELAY)
    data = raw(Role.RELAY, Opcode.TEXT, EMPTY.serialize().encode()) + raw(Role.RELAY, Opcode.BINARY, b"")
    relay.receive_data(data + data)
    assert relay.events_received() == [ResponseReceived(EMPTY), ResponseReceived(EMPTY)]
    assert relay.state is State.OPEN


def test_renew_token() -> None:
    pair = Pair()
    pair.listener.send_renew_token("SharedAccessSignature sr=x&sig=y&se=1&skn=k")
    assert pair.to_relay() == [RenewTokenReceived("SharedAccessSignature sr=x&sig=y&se=1&skn=k")]


def test_pings_are_reported_and_answered_both_ways() -> None:
    pair = Pair()
    pair.relay.send_ping(b"r")
    pair.listener.send_ping(b"l")
    assert pair.to_listener() == [PingReceived(b"r")]
    assert pair.to_relay() == [PingReceived(b"l"), PongReceived(b"r")]
    assert pair.to_listener() == [PongReceived(b"l")]


def test_a_body_in_fragments_with_an_interleaved_ping() -> None:
    relay = ControlChannel(Role.RELAY)
    relay.receive_data(
        raw(Role.RELAY, Opcode.TEXT, OK.serialize().encode())
        + raw(Role.RELAY, Opcode.BINARY, b"<Re", fin=False)
        + raw(Role.RELAY, Opcode.PING, b"hb")
        + raw(Role.RELAY, Opcode.CONT, b"ply/>", fin=False)
        + raw(Role.RELAY, Opcode.CONT, b"", fin=True)
    )
    assert relay.events_received() == [PingReceived(b"hb"), ResponseReceived(OK, b"<Reply/>")]
    assert relay.data_to_send() == [b"\x8a\x02hb"]


@pytest.mark.parametrize("first", ["relay", "listener"])
def test_close_handshake_either_way(first: str) -> None:
    pair = Pair()
    closer, other = (pair.relay, pair.listener) if first == "relay" else (pair.listener, pair.relay)
    closer.send_close(1001, "shutting down")
    assert closer.state is State.CLOSING
    assert _move(closer, other, ()) == [ConnectionClosed(1001, "shutting down")]
    assert other.state is State.CLOSED
    assert _move(other, closer, ()) == [ConnectionClosed(1001, "")]
    assert closer.state is State.CLOSED


def test_eof() -> None:
    pair = Pair()
    pair.relay.receive_eof()
    assert pair.relay.events_received() == [ConnectionClosed(1006)]
    assert pair.relay.state is State.CLOSED


# -- bad input: 1008 and CLOSING ------------------------------------------------------------------

REQ = raw(Role.LISTENER, Opcode.TEXT, POST.serialize().encode())
RESP = raw(Role.RELAY, Opcode.TEXT, OK.serialize().encode())
BAD = [
    (Role.RELAY, raw(Role.RELAY, Opcode.BINARY, b"x"), "binary message of 1 bytes where a command is due"),
    (Role.RELAY, raw(Role.RELAY, Opcode.BINARY, b""), "binary message of 0 bytes where a command is due"),
    (Role.LISTENER, raw(Role.LISTENER, Opcode.BINARY, b""), "where a command is due"),
    (Role.RELAY, RESP + RESP, "text message where the body of the response to 'r1' is due"),
    (Role.LISTENER, REQ + REQ, "text message where the body of request 'r1' is due"),
    (Role.RELAY, raw(Role.RELAY, Opcode.TEXT, EMPTY.serialize().encode()) + raw(Role.RELAY, Opcode.BINARY, b"z"),
     "binary message of 1 bytes where a command is due"),
    (Role.RELAY, raw(Role.RELAY, Opcode.TEXT, b"{not json"), "not valid JSON"),
    (Role.RELAY, raw(Role.RELAY, Opcode.TEXT, POST.serialize().encode()), "unknown listener command 'request'"),
    (Role.LISTENER, raw(Role.LISTENER, Opcode.TEXT, OK.serialize().encode()), "address must be a non-empty"),
    (Role.LISTENER, raw(Role.LISTENER, Opcode.TEXT, b'{"renewToken":{"token":"t"}}'), "address"),
    (Role.RELAY, raw(Role.RELAY, Opcode.TEXT, b'{"response":{"requestId":"r","statusCode":99}}'),
     "not an HTTP status"),
]


@pytest.mark.parametrize(("role", "data", "reason"), BAD)
def test_bad_input_closes_with_1008_and_its_reason(role: Role, data: bytes, reason: str) -> None:
    machine = ControlChannel(role)
    with pytest.raises(RemoteProtocolError) as info:
        machine.receive_data(raw(role, Opcode.PING, b"before") + data)
    assert info.value.close_code == 1008 and reason in info.value.reason
    assert machine.state is State.CLOSING
    assert machine.events_received()[0] == PingReceived(b"before")
    assert sent_events(machine) == [PongReceived(b"before"), ConnectionClosed(1008, info.value.reason)]


def test_a_malformed_command_is_a_malformed_message() -> None:
    machine = ControlChannel(Role.LISTENER)
    with pytest.raises(MalformedMessage, match="unknown relay command 'hello'"):
        machine.receive_data(raw(Role.LISTENER, Opcode.TEXT, b'{"hello":{"address":"a","id":"b"}}'))


def test_framing_errors_keep_their_own_codes() -> None:
    machine = ControlChannel(Role.RELAY, max_message_size=10)
    with pytest.raises(RemoteProtocolError) as info:
        machine.receive_data(raw(Role.RELAY, Opcode.BINARY, b"x" * 11))
    assert info.value.close_code == 1009 and machine.state is State.CLOSING
    machine = ControlChannel(Role.RELAY)
    with pytest.raises(RemoteProtocolError) as info:
        machine.receive_data(raw(Role.LISTENER, Opcode.TEXT, b"{}"))  # unmasked, at the relay
    assert info.value.close_code == 1002


# -- local misuse -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "act", "message"),
    [
        (Role.RELAY, lambda m: m.send_request(POST), 'needs its body'),
        (Role.RELAY, lambda m: m.send_request(GET, b"x"), "cannot carry a body"),
        (Role.RELAY, lambda m: m.send_request(ADDRESS_ONLY, b""), "cannot carry a body"),
        (Role.LISTENER, lambda m: m.send_response(EMPTY, b"x"), "cannot carry a body"),
        (Role.LISTENER, lambda m: m.send_response(OK), "needs its body"),
        (Role.LISTENER, lambda m: m.send_request(GET), "only the relay sends a request"),
        (Role.LISTENER, lambda m: m.send_accept(ACCEPT), "only the relay sends an accept"),
        (Role.RELAY, lambda m: m.send_response(EMPTY), "only the listener sends a response"),
        (Role.RELAY, lambda m: m.send_renew_token("t"), "only the listener sends renewToken"),
    ],
)
def test_local_misuse_raises_local_protocol_error(role: Role, act: object, message: str) -> None:
    machine = ControlChannel(role)
    with pytest.raises(LocalProtocolError, match=message):
        act(machine)  # type: ignore[operator]
    assert machine.data_to_send() == [] and machine.state is State.OPEN


def test_sending_a_response_while_closed() -> None:
    pair = Pair()
    pair.relay.send_close()
    pair.to_listener()
    assert pair.listener.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.listener.send_response(OK, b"late")
    pair.listener.data_to_send()
    with pytest.raises(LocalProtocolError, match="closing"):
        pair.relay.send_request(GET)


# -- properties ---------------------------------------------------------------------------------------

ids = st.text(min_size=1, max_size=8)
bodies = st.binary(max_size=600)
relay_sends = st.one_of(
    st.builds(lambda i, b: ("request", RequestCommand(ADDRESS, i, "/p", "POST", body=True), b), ids, bodies),
    st.builds(lambda i: ("request", RequestCommand(ADDRESS, i, "/p/é", "GET", body=False), None), ids),
    st.builds(lambda i: ("request", RequestCommand(ADDRESS, i), None), ids),
    st.builds(lambda i: ("accept", AcceptCommand(ADDRESS, i), None), ids),
    st.builds(lambda b: ("ping", None, b), st.binary(max_size=125)),
)
listener_sends = st.one_of(
    st.builds(lambda i, b: ("response", ResponseCommand(i, 200, "OK", body=True), b), ids, bodies),
    st.builds(lambda i: ("response", ResponseCommand(i, 404, "Não"), None), ids),
    st.builds(lambda t: ("renew", t, None), ids),
    st.builds(lambda b: ("ping", None, b), st.binary(max_size=125)),
)


def _send(machine: ControlChannel, action: tuple[str, object, bytes | None]) -> None:
    name, command, body = action
    if name == "request":
        machine.send_request(command, body)  # type: ignore[arg-type]
    elif name == "accept":
        machine.send_accept(command)  # type: ignore[arg-type]
    elif name == "response":
        machine.send_response(command, body)  # type: ignore[arg-type]
    elif name == "renew":
        machine.send_renew_token(command)  # type: ignore[arg-type]
    else:
        machine.send_ping(body or b"")


def _receive(role: Role, chunks: list[bytes]) -> list[Event]:
    machine = ControlChannel(role)
    for chunk in chunks:
        machine.receive_data(chunk)
    return machine.events_received()


@settings(max_examples=60, deadline=None)
@given(
    relay_actions=st.lists(relay_sends, max_size=6),
    listener_actions=st.lists(listener_sends, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_chunking_of_a_conversation_yields_the_same_events(
    relay_actions: list[tuple[str, object, bytes | None]],
    listener_actions: list[tuple[str, object, bytes | None]],
    cuts: list[int],
) -> None:
    for role, actions in ((Role.RELAY, relay_actions), (Role.LISTENER, listener_actions)):
        sender = ControlChannel(role, mask_key=lambda: KEY)
        for action in actions:
            _send(sender, action)
        stream = b"".join(sender.data_to_send())
        receiver = Role.LISTENER if role is Role.RELAY else Role.RELAY
        whole = _receive(receiver, [stream])
        assert len(whole) == len(actions)
        assert _receive(receiver, split(stream, cuts)) == whole
        assert _receive(receiver, [bytes([b]) for b in stream]) == whole


LIMIT = 200


@settings(max_examples=100, deadline=None)
@given(role=st.sampled_from(list(Role)), stream=st.booleans(), data=st.data())
def test_random_bytes_raise_only_remote_protocol_error_and_stay_bounded(
    role: Role, stream: bool, data: st.DataObject
) -> None:
    valid = [raw(role, Opcode.TEXT, POST.serialize().encode()), raw(role, Opcode.TEXT, OK.serialize().encode()),
             raw(role, Opcode.BINARY, b"body", fin=False), raw(role, Opcode.CONT, b"x"), raw(role, Opcode.PING, b""),
             raw(role, Opcode.BINARY, b"y" * 150, fin=False), raw(role, Opcode.BINARY, b"big" * 400)[:100]]
    chunks = data.draw(st.lists(st.one_of(st.binary(max_size=300), st.sampled_from(valid)), max_size=10))
    machine = ControlChannel(role, max_message_size=LIMIT, stream_bodies=stream)
    for chunk in chunks:
        try:
            machine.receive_data(chunk)
        except RemoteProtocolError as exc:
            assert exc.close_code in (1002, 1007, 1008, 1009)
            assert machine.state is State.CLOSING
        assert machine.buffered <= LIMIT + 14
    machine.receive_eof()
    assert machine.state is State.CLOSED


#: (kind, text) of text messages towards each role; kinds say what the oracle expects.
COMMANDS = {
    Role.RELAY: [("body", OK.serialize()), ("nobody-response", EMPTY.serialize()),
                 ("event", '{"renewToken":{"token":"t"}}'), ("bad", POST.serialize()),
                 ("bad", '{"response":{"requestId":""}}'), ("bad", "[]")],
    Role.LISTENER: [("body", POST.serialize()), ("event", GET.serialize()), ("event", ADDRESS_ONLY.serialize()),
                    ("event", ACCEPT.serialize()), ("bad", OK.serialize()), ("bad", '{"request":{}}')],
}


@settings(max_examples=150, deadline=None)
@given(role=st.sampled_from(list(Role)), data=st.data())
def test_random_command_sequences_are_judged_as_the_rules_say(role: Role, data: st.DataObject) -> None:
    items = data.draw(st.lists(st.one_of(
        st.sampled_from(COMMANDS[role]), st.tuples(st.just("binary"), st.sampled_from(["", "x"])),
    ), max_size=12))
    machine, expect, events = ControlChannel(role), "command", 0
    for kind, text in items:
        error = (
            expect == "body" if kind != "binary"
            else expect == "command" or (expect == "empty-ok" and text != "")
        ) or kind == "bad"
        opcode = Opcode.BINARY if kind == "binary" else Opcode.TEXT
        if error:
            with pytest.raises(RemoteProtocolError) as info:
                machine.receive_data(raw(role, opcode, text.encode()))
            assert info.value.close_code == 1008 and machine.state is State.CLOSING
            break
        machine.receive_data(raw(role, opcode, text.encode()))
        expect, new = {
            "binary": ("command", expect == "body"), "body": ("body", False),
            "nobody-response": ("empty-ok", True), "event": ("command", True),
        }[kind]
        events += new
        assert len(machine.events_received()) == new
        assert machine.state is (State.AWAITING_BODY if expect == "body" else State.OPEN)
