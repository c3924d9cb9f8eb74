"""The relay's side of a control channel, in memory: no socket, no aiohttp.

A :class:`ListenerConnection` runs over an in-memory transport whose other end
is the core's own ``ControlChannel(Role.LISTENER)``: what the relay writes is
fed to the listener's machine, what the listener's machine sends is fed to the
relay's ``feed_data``.  Token expiry runs on an injected clock.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hc.events import ConnectionClosed, Event, PingReceived, RequestReceived
from hc.framing import Opcode, serialize_frame
from hc.messages import RequestCommand, ResponseCommand
from hc.protocol import ControlChannel, Role
from relay.exceptions import AuthError, InvalidListenerResponse, ListenerGone
from relay.listeners import MAX_UNKNOWN_ANSWERS, ListenerConnection, ListenerState, PendingRequest
from relay.wire import ChannelWire
from tests.relay.memory import MemoryTransport, turn


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Pair:
    """A relay-side ListenerConnection and a listener-side ControlChannel, joined in memory."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.listener = ControlChannel(Role.LISTENER)
        self.transport = MemoryTransport(self.listener)
        self.connection = ListenerConnection(
            "orders", token_expiry=self.clock() + 60, check_renewal=self._renewal, clock=self.clock
        )
        self.wire: ChannelWire = self.connection.connect(self.transport)
        self._ids = 0

    def _renewal(self, token: str) -> float:
        if token != "good":
            raise AuthError("the token's signature does not match")
        return self.clock() + 3600

    def request(self, body: bytes | None = b"hello") -> PendingRequest:
        """A request queued inline on the relay's side (written at the end of the turn)."""
        self._ids += 1
        ident = str(self._ids)
        command = RequestCommand(f"ws://h/$hc/orders?sb-hc-id=r{ident}", ident, "/orders", "POST",
                                 body=body is not None)
        pending = self.connection.new_request(command, body)
        self.connection.post_inline(pending, body)
        return pending

    def feed(self, data: bytes | None = None) -> None:
        """The listener's queued bytes (or raw ``data``) into the relay, in one chunk."""
        chunk = b"".join(self.listener.data_to_send()) if data is None else data
        self.wire.feed_data(chunk)

    def answer(self, request_id: str, status: int = 200, body: bytes | None = b"world") -> None:
        command = ResponseCommand(request_id, status, "", (), body is not None)
        self.listener.send_response(command, body)
        self.feed()

    def received(self) -> list[Event]:
        return self.listener.events_received()

    def close_frame(self) -> ConnectionClosed:
        """The Close the relay wrote, as the listener's machine saw it (it answers it)."""
        closed = [e for e in self.received() if isinstance(e, ConnectionClosed)]
        assert len(closed) == 1
        return closed[0]


def client_frame(opcode: Opcode, payload: bytes, *, masked: bool = True, fin: bool = True) -> bytes:
    return serialize_frame(opcode, payload, fin=fin, mask_key=b"\x01\x02\x03\x04" if masked else None)


async def test_a_request_and_its_body_reach_the_listener_and_the_answer_resolves_it() -> None:
    pair = Pair()
    pending = pair.request(b"hello")
    await turn()
    [event] = pair.received()
    assert isinstance(event, RequestReceived)
    assert (event.command.id, event.body) == ("1", b"hello")
    pair.answer("1", body=b"world")
    reply = await pending.reply
    assert (reply.command.status_code, reply.inline) == (200, b"world")


async def test_requests_queued_in_one_turn_leave_in_one_write() -> None:
    pair = Pair()
    for _ in range(10):
        pair.request(b"x" * 100)
    assert pair.transport.writes == []  # nothing before the end of the turn
    await turn()
    assert len(pair.transport.writes) == 1
    assert [e.command.id for e in pair.received() if isinstance(e, RequestReceived)] == [
        str(n) for n in range(1, 11)
    ]


async def test_the_empty_message_after_a_bodiless_response_is_accepted() -> None:
    pair = Pair()
    pending = pair.request(None)
    await turn()
    pair.received()
    pair.answer("1", status=204, body=None)
    pair.feed(client_frame(Opcode.BINARY, b""))  # hyco-https does this
    reply = await pending.reply
    assert (reply.command.status_code, reply.inline) == (204, b"")
    assert pair.connection.state is ListenerState.ONLINE


async def test_a_1xx_answer_fails_the_request_but_keeps_the_listener() -> None:
    pair = Pair()
    pending = pair.request()
    await turn()
    pair.answer("1", status=101, body=None)
    with pytest.raises(InvalidListenerResponse, match="status 101"):
        await pending.reply
    assert pair.connection.state is ListenerState.ONLINE


async def test_answers_for_ids_never_given_are_counted_and_the_sixteenth_closes_with_1008(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pair = Pair()
    for n in range(MAX_UNKNOWN_ANSWERS - 1):
        pair.answer(f"forged-{n}", body=b"x" if n % 2 else None)
    assert pair.connection.unknown_answers == MAX_UNKNOWN_ANSWERS - 1
    assert pair.connection.state is ListenerState.ONLINE
    pair.answer("forged-last")
    close = pair.close_frame()
    assert (close.code, close.reason) == (1008, "too many responses for request ids it was not given")
    assert pair.connection.state is ListenerState.CLOSING
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # the first forged id, and the close


async def test_a_late_answer_after_the_sender_gave_up_is_dropped_quietly() -> None:
    pair = Pair()
    pending = pair.request()
    await turn()
    pair.connection.forget(pending)  # the sender timed out
    pair.answer("1")
    assert pair.connection.unknown_answers == 0
    assert pair.connection.state is ListenerState.ONLINE


async def test_a_renewed_token_moves_the_expiry_on_and_a_bad_one_closes_with_1008() -> None:
    pair = Pair()
    pair.listener.send_renew_token("good")
    pair.feed()
    assert pair.connection.token_expiry == pair.clock() + 3600
    pair.listener.send_renew_token("forged")
    pair.feed()
    close = pair.close_frame()
    assert close.code == 1008 and "renewToken refused" in close.reason and "signature" in close.reason


async def test_an_expired_token_closes_the_channel_on_the_injected_clock() -> None:
    pair = Pair()
    connection = pair.connection
    connection.tick(connection.loop.time(), 30.0, 15.0)
    assert connection.state is ListenerState.ONLINE
    pair.clock.now += 61  # past the token's expiry (60 s, grace included)
    connection.tick(connection.loop.time(), 30.0, 15.0)
    assert (pair.close_frame().code, connection.state) == (1008, ListenerState.CLOSING)
    assert connection.gone.done()
    pair.feed()  # the listener's machine answered the Close: the channel has ended
    await pair.wire.ended
    assert connection.state is ListenerState.CLOSED


async def test_the_close_of_a_listener_fails_what_it_owed() -> None:
    pair = Pair()
    pending = pair.request()
    await turn()
    pair.listener.send_close(1000)
    pair.feed()
    with pytest.raises(ListenerGone):
        await pending.reply
    assert pair.close_frame().code == 1000  # echoed
    await pair.wire.ended
    assert pair.connection.state is ListenerState.CLOSED


async def test_a_quiet_listener_is_pinged_and_its_pong_is_a_sign_of_life() -> None:
    pair = Pair()
    connection = pair.connection
    later = connection.last_heard + 31
    connection.tick(later, 30.0, 15.0)
    await turn()
    assert [type(e) for e in pair.received()] == [PingReceived]  # and the pong is queued
    assert not connection.suspect(later)
    assert connection.suspect(later + 1)
    pair.feed()
    assert not connection.suspect(later + 1)


async def test_a_ping_left_unanswered_drops_the_listener() -> None:
    pair = Pair()
    pending = pair.request()
    connection = pair.connection
    later = connection.last_heard + 31
    connection.tick(later, 30.0, 15.0)
    connection.tick(later + 16, 30.0, 15.0)
    assert pair.transport.aborted
    with pytest.raises(ListenerGone, match="did not answer a ping within 15 s"):
        await pending.reply


async def test_the_relay_answers_the_listeners_ping() -> None:
    pair = Pair()
    pair.listener.send_ping(b"hb")
    pair.feed()
    assert pair.transport.writes  # answered in the same turn as it was read
    assert [type(e).__name__ for e in pair.received()] == ["PongReceived"]


@pytest.mark.parametrize(
    "data, code, reason",
    [
        (client_frame(Opcode.TEXT, b'{"response":{"requestId":"1","body":true}}')
         + client_frame(Opcode.TEXT, b"{}"), 1008, "text message where the body of"),
        (client_frame(Opcode.BINARY, b"stray"), 1008, "binary message of 5 bytes where a command is due"),
        (client_frame(Opcode.TEXT, b"not json"), 1008, "not valid JSON"),
        (client_frame(Opcode.TEXT, b'{"dance":{}}'), 1008, "unknown listener command 'dance'"),
        (client_frame(Opcode.TEXT, b"\xff\xfe"), 1007, "invalid UTF-8"),
        (client_frame(Opcode.TEXT, b"{}", masked=False), 1002, "unmasked frame from a client"),
        (client_frame(Opcode.BINARY, b"x" * (256 * 1024 + 1)), 1009, "message longer than"),
    ],
)
async def test_bad_input_is_judged_by_the_state_machine_once(
    data: bytes, code: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    pair = Pair()
    pending = pair.request()
    await turn()
    pair.received()
    pair.feed(data)
    close = pair.close_frame()
    assert close.code == code and reason in close.reason
    with pytest.raises(ListenerGone, match="broke the control-channel protocol"):
        await pending.reply
    assert pair.wire.ended.done()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and pair.connection.id in warnings[0] and reason in warnings[0]
    assert not [r for r in caplog.records if r.exc_info]  # no traceback for a peer's mistake


async def test_an_internal_error_closes_with_1011_and_logs_the_bug(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hc.protocol

    def exploding(text: str | bytes) -> Any:
        raise RuntimeError("a bug in the relay")

    monkeypatch.setattr(hc.protocol, "parse_listener_command", exploding)
    pair = Pair()
    pair.answer("1")
    assert (pair.close_frame().code, pair.wire.ended.done()) == (1011, True)
    assert "a bug in the relay" in caplog.text


async def test_posting_to_a_closed_listener_is_listener_gone() -> None:
    pair = Pair()
    pair.listener.send_close(1000)
    pair.feed()
    with pytest.raises(ListenerGone):
        pair.request()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.binary(max_size=64), max_size=8))
async def test_random_bytes_never_escape_the_relay(chunks: list[bytes]) -> None:
    pair = Pair()
    for chunk in chunks:
        pair.feed(chunk)  # never raises
    connection = pair.connection
    closes = [e for e in pair.received() if isinstance(e, ConnectionClosed)]
    if connection.state is ListenerState.ONLINE:
        assert not closes and not pair.wire.ended.done()
    else:
        assert pair.wire.ended.done() and connection.gone.done()
        assert [c.code for c in closes] in ([], [1000], [1001], [1002], [1007], [1008], [1009])
