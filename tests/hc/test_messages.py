"""Control-channel commands (PROTOCOL.md §3): round trips, wire shapes, hostile input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hc.exceptions import MalformedMessage
from hc.messages import (
    AcceptCommand,
    RenewTokenCommand,
    RequestCommand,
    ResponseCommand,
    parse_listener_command,
    parse_relay_command,
)

ADDRESS = "ws://127.0.0.1:9350/$hc/payroll?sb-hc-action=request&sb-hc-id=abc"

# -- round trips -----------------------------------------------------------------------------

RELAY_COMMANDS: list[AcceptCommand | RequestCommand] = [
    AcceptCommand(
        address="ws://127.0.0.1:9350/$hc/payroll?sb-hc-action=accept&sb-hc-id=abc",
        id="c1",
        connect_headers=(
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("X-A", "1"),
            ("X-A", "2"),
        ),
        remote_endpoint=("127.0.0.1", 50000),
    ),
    AcceptCommand(address=ADDRESS, id="c2", connect_headers=(("Sec-WebSocket-Key", "k"),)),
    RequestCommand(
        address=ADDRESS,
        id="r1",
        request_target="/payroll/sub?x=1",
        method="POST",
        request_headers=(("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", '"urn:x"')),
        body=True,
        remote_endpoint=("::1", 1234),
    ),
    RequestCommand(address=ADDRESS, id="r2", request_target="/payroll", method="GET", body=False),
    RequestCommand(address=ADDRESS, id="r3"),  # address-only (rendezvous)
]

LISTENER_COMMANDS: list[ResponseCommand | RenewTokenCommand] = [
    ResponseCommand(
        request_id="r1",
        status_code=200,
        status_description="OK",
        response_headers=(
            ("Content-Type", "text/xml"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ),
        body=True,
    ),
    ResponseCommand(request_id="r2", status_code=404, status_description="", body=False),
    RenewTokenCommand("SharedAccessSignature sr=a&sig=b&se=1&skn=c"),
]


@pytest.mark.parametrize("command", RELAY_COMMANDS, ids=lambda c: type(c).__name__)
def test_relay_commands_round_trip(command: AcceptCommand | RequestCommand) -> None:
    assert parse_relay_command(command.serialize()) == command
    assert parse_relay_command(command.serialize().encode()) == command


@pytest.mark.parametrize("command", LISTENER_COMMANDS, ids=lambda c: type(c).__name__)
def test_listener_commands_round_trip(command: ResponseCommand | RenewTokenCommand) -> None:
    assert parse_listener_command(command.serialize()) == command
    assert parse_listener_command(command.serialize().encode()) == command


def test_address_only_request_has_neither_method_nor_body() -> None:
    """hyco-https keys on ``method`` and .NET on ``body``: both must be absent."""
    command = RequestCommand(address=ADDRESS, id="r3")

    wire = json.loads(command.serialize())

    assert command.is_address_only
    assert wire == {"request": {"address": ADDRESS, "id": "r3"}}


def test_full_request_wire_shape() -> None:
    wire = json.loads(RELAY_COMMANDS[2].serialize())["request"]

    assert wire["body"] is True
    assert wire["method"] == "POST"
    assert wire["requestTarget"] == "/payroll/sub?x=1"
    assert wire["remoteEndpoint"] == {"address": "::1", "port": 1234}


def test_repeated_header_becomes_a_list() -> None:
    wire = json.loads(LISTENER_COMMANDS[0].serialize())["response"]

    assert wire["responseHeaders"]["Set-Cookie"] == ["a=1", "b=2"]
    assert wire["statusCode"] == 200


def test_renew_token_repr_hides_the_token() -> None:
    assert "sig=" not in repr(RenewTokenCommand("SharedAccessSignature sr=a&sig=b&se=1&skn=c"))


@pytest.mark.parametrize(
    ("status", "expected"), [(200, 200), ("200", 200), ("404", 404), (503.0, 503)]
)
def test_status_code_as_number_or_string(status: object, expected: int) -> None:
    text = json.dumps({"response": {"requestId": "r", "statusCode": status}})

    command = parse_listener_command(text)

    assert isinstance(command, ResponseCommand)
    assert command.status_code == expected


def test_response_defaults() -> None:
    command = parse_listener_command('{"response": {"requestId": "r"}}')

    assert command == ResponseCommand(request_id="r", status_code=200, body=False)


def test_hyco_https_request_sample() -> None:
    text = (
        '{"request":{"address":"wss://h/$hc/p?sb-hc-action=request&sb-hc-id=1","id":"1",'
        '"requestTarget":"/p/x","method":"GET","remoteEndpoint":{"address":"10.0.0.1","port":1},'
        '"requestHeaders":{"Host":"h","Accept":["a","b"]},"body":false}}'
    )

    command = parse_relay_command(text)

    assert isinstance(command, RequestCommand)
    assert command.request_headers == (("Host", "h"), ("Accept", "a"), ("Accept", "b"))
    assert command.remote_endpoint == ("10.0.0.1", 1)


# -- malformed input -------------------------------------------------------------------------

MALFORMED_LISTENER = [
    "",
    "not json",
    "{",
    "[]",
    '"response"',
    "42",
    "null",
    "{}",
    '{"response": {"requestId": "r"}, "renewToken": {"token": "t"}}',
    '{"response": "r"}',
    '{"response": []}',
    '{"request": {"address": "a", "id": "1"}}',  # a relay command sent by a listener
    '{"bogus": {}}',
    '{"response": {}}',
    '{"response": {"requestId": 7}}',
    '{"response": {"requestId": ""}}',
    '{"response": {"requestId": "r", "statusCode": "abc"}}',
    '{"response": {"requestId": "r", "statusCode": 99}}',
    '{"response": {"requestId": "r", "statusCode": 600}}',
    '{"response": {"requestId": "r", "statusCode": 200.5}}',
    '{"response": {"requestId": "r", "statusCode": true}}',
    '{"response": {"requestId": "r", "statusCode": null}}',
    '{"response": {"requestId": "r", "statusCode": Infinity}}',
    '{"response": {"requestId": "r", "statusCode": NaN}}',
    '{"response": {"requestId": "r", "statusCode": 1e400}}',
    '{"response": {"requestId": "r", "statusCode": [200]}}',
    '{"response": {"requestId": "r", "body": "yes"}}',
    '{"response": {"requestId": "r", "statusDescription": 5}}',
    '{"response": {"requestId": "r", "responseHeaders": []}}',
    '{"response": {"requestId": "r", "responseHeaders": {"A": {"b": 1}}}}',
    '{"response": {"requestId": "r", "responseHeaders": {"A": [null]}}}',
    '{"response": {"requestId": "r", "responseHeaders": {"A": true}}}',
    '{"renewToken": {}}',
    '{"renewToken": {"token": 1}}',
    "[" * 100_000,
    '{"a":' * 50_000,
    '{"renewToken": {"token": "' + "x" * 300_000 + '"}}',
]

MALFORMED_RELAY = [
    "",
    "[1]",
    '{"response": {"requestId": "r"}}',  # a listener command sent by the relay
    '{"accept": {"id": "1"}}',
    '{"accept": {"address": "a"}}',
    '{"accept": {"address": "a", "id": 1}}',
    '{"accept": {"address": "a", "id": "1", "connectHeaders": "k"}}',
    '{"request": {"address": "a", "id": "1", "body": "true"}}',
    '{"request": {"address": "a", "id": "1", "method": 5}}',
    '{"request": {"address": "a", "id": "1", "requestTarget": ""}}',
    '{"request": {"address": "a", "id": "1", "requestHeaders": [["A", "b"]]}}',
    b'{"request": {"address": "\xff", "id": "1"}}',
]


@pytest.mark.parametrize("text", MALFORMED_LISTENER, ids=lambda t: repr(t[:40]))
def test_malformed_listener_commands(text: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_listener_command(text)


@pytest.mark.parametrize("text", MALFORMED_RELAY, ids=lambda t: repr(t[:40]))
def test_malformed_relay_commands(text: str | bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_relay_command(text)


# -- properties ------------------------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_FIELDS = [
    "address", "id", "requestId", "statusCode", "statusDescription", "responseHeaders",
    "requestHeaders", "connectHeaders", "remoteEndpoint", "requestTarget", "method", "body",
    "token",
]  # fmt: skip
COMMAND_BODIES = st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=5), JSON_VALUES)
COMMANDS = st.dictionaries(
    st.sampled_from(["response", "renewToken", "accept", "request"]) | st.text(max_size=5),
    COMMAND_BODIES | JSON_VALUES,
    min_size=1,
    max_size=2,
)


def _only_malformed(parse: Any, text: str | bytes) -> None:
    try:
        parse(text)
    except MalformedMessage:
        pass


@settings(deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_text_raises_only_malformed_message(text: str | bytes) -> None:
    _only_malformed(parse_listener_command, text)
    _only_malformed(parse_relay_command, text)


@settings(deadline=None)
@given(JSON_VALUES | COMMANDS)
def test_arbitrary_json_raises_only_malformed_message(value: object) -> None:
    text = json.dumps(value)
    _only_malformed(parse_listener_command, text)
    _only_malformed(parse_relay_command, text)
