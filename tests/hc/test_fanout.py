"""hc.fanout: a request framed once for many listeners is, for each, exactly the
request ``RequestCommand.serialize`` and ``send_request`` would have sent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hc.events import RequestReceived
from hc.exceptions import LocalProtocolError
from hc.fanout import PreparedRequest
from hc.messages import RequestCommand
from hc.protocol import ControlChannel, Role

_SAFE_IDS = st.text("abcXYZ019-_.", min_size=1, max_size=40)
_TEXT = st.text(min_size=0, max_size=30)


def _command(address: str, target: str, headers: tuple[tuple[str, str], ...], body: bool) -> RequestCommand:
    return RequestCommand(address, "", target or "/", "POST", headers, body, ("10.0.0.1", 4242))


@settings(max_examples=200, deadline=None)
@given(address=_TEXT, target=_TEXT, headers=st.lists(st.tuples(st.text(min_size=1, max_size=10), _TEXT),
       max_size=4), body=st.binary(max_size=300), rendezvous=_SAFE_IDS, ident=_SAFE_IDS)
def test_each_copy_is_the_request_serialize_would_write(
    address: str, target: str, headers: list[tuple[str, str]], body: bytes, rendezvous: str, ident: str
) -> None:
    names = tuple(dict(headers).items())  # one value per name, as a JSON object holds them
    template = _command(address, target, names, True)
    prepared = PreparedRequest(template, body)
    whole = RequestCommand(address + rendezvous, ident, template.request_target, "POST", names, True,
                           ("10.0.0.1", 4242))
    assert prepared.command_text(rendezvous, ident) == whole.serialize()
    listener = ControlChannel(Role.LISTENER)
    listener.receive_data(prepared.frames(rendezvous, ident))
    [event] = listener.events_received()
    assert isinstance(event, RequestReceived)
    assert event.command == whole and event.body == body


def test_copies_share_one_body_frame_and_differ_only_in_their_ids() -> None:
    prepared = PreparedRequest(_command("ws://h/$hc/p?sb-hc-id=", "/p", (), True), b"x" * 200)
    one, two = prepared.frames("r1", "1"), prepared.frames("r2222", "22")
    assert one.endswith(b"x" * 200) and two.endswith(b"x" * 200)
    assert b'sb-hc-id=r1","id":"1"' in one
    assert b'sb-hc-id=r2222","id":"22"' in two


def test_a_bodiless_request() -> None:
    prepared = PreparedRequest(_command("ws://h/a=", "/", (), False), None)
    listener = ControlChannel(Role.LISTENER)
    listener.receive_data(prepared.frames("r", "7"))
    [event] = listener.events_received()
    assert isinstance(event, RequestReceived) and event.command.id == "7" and not event.command.body


@pytest.mark.parametrize("rendezvous, ident", [('r"', "1"), ("r", "1\\"), ("", "1"), ("r", ""),
                                               ("r", "é"), ("r" * 129, "1")])
def test_ids_that_would_need_escaping_are_refused(rendezvous: str, ident: str) -> None:
    prepared = PreparedRequest(_command("ws://h/", "/", (), False), None)
    with pytest.raises(LocalProtocolError):
        prepared.frames(rendezvous, ident)


def test_address_only_and_mismatched_bodies_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        PreparedRequest(RequestCommand("ws://h/", "1"), None)
    with pytest.raises(LocalProtocolError):
        PreparedRequest(_command("ws://h/", "/", (), True), None)
    with pytest.raises(LocalProtocolError):
        PreparedRequest(_command("ws://h/", "/", (), False), b"x")


def test_send_prepared_keeps_the_channel_rules() -> None:
    prepared = PreparedRequest(_command("ws://h/", "/", (), True), b"b")
    with pytest.raises(LocalProtocolError):
        ControlChannel(Role.LISTENER).send_prepared(prepared, "r", "1")
    relay = ControlChannel(Role.RELAY)
    relay.send_request(RequestCommand("ws://h/x", "9", "/", "POST", body=True), streamed=True)
    with pytest.raises(LocalProtocolError):  # a streamed body is not over yet
        relay.send_prepared(prepared, "r", "1")
    closed = ControlChannel(Role.RELAY)
    closed.send_close(1001)
    with pytest.raises(LocalProtocolError):
        closed.send_prepared(prepared, "r", "1")
    fine = ControlChannel(Role.RELAY)
    fine.send_prepared(prepared, "r", "1")
    listener = ControlChannel(Role.LISTENER)
    for chunk in fine.data_to_send():
        listener.receive_data(chunk)
    [event] = listener.events_received()
    assert isinstance(event, RequestReceived) and event.body == b"b"
