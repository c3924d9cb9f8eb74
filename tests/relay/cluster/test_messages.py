"""What crosses NATS: subjects, asks, answers, heartbeats; every malformed or foreign
message refused with MessageError. Pure: no sockets."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hc.entities import Discovery, EntityKind
from hc.messages import MAX_COMMAND_LENGTH, AcceptCommand, RequestCommand, ResponseCommand
from relay.cluster.messages import (
    MAX_ENTITIES,
    Answer,
    AnswerStatus,
    Ask,
    AskKind,
    EntityFact,
    Heartbeat,
    MessageError,
    parse_answer,
    parse_ask,
    parse_heartbeat,
)
from relay.cluster.subjects import Subjects, token_of, untoken

pytestmark = pytest.mark.usefixtures("no_sockets")

ADDRESS = "ws://10.0.0.1:9350/$hc/pay/roll?sb-hc-action=request&sb-hc-id=abc"
FULL = RequestCommand(ADDRESS, "n1.7", "/pay/roll/x?y=1", "POST", (("Content-Type", "text/xml"),),
                      True, ("10.1.1.1", 5000))


def test_subjects_are_safe_tokens_per_namespace_and_entity() -> None:
    subjects = Subjects("contoso")
    assert subjects.connect("a.b/*>") != subjects.connect("a.b")
    assert subjects.connect("pay").startswith("soaprelay.Y29udG9zbw.hc.")
    token = subjects.event("x.y *>").rsplit(".", 1)[1]
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert untoken(token) == "x.y *>"
    with pytest.raises(ValueError):
        untoken("\xff")


@given(st.text(min_size=1, max_size=80))
def test_tokens_round_trip(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        return
    assert "." not in token_of(text) and untoken(token_of(text)) == text


@pytest.mark.parametrize("body", [None, b"", b"\x00\n{bytes}\n" * 3])
def test_an_ask_round_trips(body: bytes | None) -> None:
    ask = Ask(AskKind.REQUEST, "contoso", "pay/roll", "node-a", 60.0, FULL, body)
    assert parse_ask(ask.serialize(), "contoso") == ask


def test_long_headers_fit_in_an_ask_and_an_answer() -> None:
    """A request's and a response's headers may be as long as a control channel
    takes (a 60 KB cookie here), not only as long as a path or a node's name."""
    cookie = (("Cookie", "s=" + "c" * 60_000),)
    request = RequestCommand(ADDRESS, "1", "/x", "POST", cookie, False)
    ask = Ask(AskKind.REQUEST, "ns", "pay/roll", "a", 5.0, request)
    assert parse_ask(ask.serialize(), "ns") == ask
    answer = Answer(AnswerStatus.REPLIED, "b", response=ResponseCommand("1", 200, "OK", cookie, False))
    assert parse_answer(answer.serialize()) == answer


def test_an_accept_ask_round_trips() -> None:
    accept = AcceptCommand(ADDRESS.replace("request", "accept"), "id", (("X", "1"),), ("h", 1))
    ask = Ask(AskKind.ACCEPT, "ns", "pay/roll", "a", 30.0, accept)
    assert parse_ask(ask.serialize(), "ns") == ask


def _ask(magic: bytes = b"SRa", v: int = 1, ns: str = "ns", kind: int = 0, path: str = "pay/roll",
         origin: str = "a", timeout: float = 5.0, command: str = FULL.serialize(),
         body: bytes | None = None, size: int | None = None) -> bytes:
    """An ask as a node writes it (``kind`` by number: 0 request, 1 accept, ...), any
    field spoilt at will; ``size`` the body length the head claims."""
    texts = [t.encode() for t in (ns, path, origin, command)]
    claimed = size if size is not None else (-1 if body is None else len(body))
    head = struct.pack("!3sBBdiHHHI", magic, v, kind, timeout, claimed, *map(len, texts))
    return b"".join((head, *texts, body or b""))


def test_the_ask_builder_writes_what_nodes_write() -> None:
    ask = Ask(AskKind.REQUEST, "ns", "pay/roll", "a", 5.0, FULL, b"body")
    assert _ask(body=b"body") == ask.serialize()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than an ask's head"),
        (b'{"v":1,"ns":"ns","kind":"request","path":"pay/roll","origin":"a","timeout":5}',
         "not a cluster message"),
        (_ask(magic=b"SRn"), "not a cluster message"),
        (_ask(v=2), "unknown version"),
        (_ask(ns="other"), "for another namespace"),
        (_ask(kind=7), "unknown kind 7"),
        (_ask(kind=1), "must carry a AcceptCommand"),
        (_ask(command="{}"), "command"),
        (_ask(command="x" * (MAX_COMMAND_LENGTH + 1)), "'command' must be"),
        (_ask(path="other"), "not a request rendezvous address of 'other'"),
        (_ask(timeout=0), "'timeout' must be"),
        (_ask(timeout=float("nan")), "'timeout' must be"),
        (_ask(timeout=float("inf")), "'timeout' must be"),
        (_ask(origin=""), "'origin' must be"),
        (_ask(origin="x" * 2000), "'origin' must be"),
        (_ask(origin="\xff").replace("\xff".encode(), b"\xff\xfe"), "'origin' is not UTF-8"),
        (_ask()[:-3], "past the message"),
        (_ask(body=b"123", size=3)[:-1], "length does not match"),
        (_ask(body=b"123", size=4), "length does not match"),
        (_ask() + b"trailing", "bytes after the head"),
        (_ask(command=RequestCommand("ws://u@h/$hc/pay/roll?sb-hc-action=request&sb-hc-id=1",
                                     "1").serialize()), "rendezvous address"),
        (_ask(command=RequestCommand("http://h/$hc/pay/roll?sb-hc-action=request&sb-hc-id=1",
                                     "1").serialize()), "rendezvous address"),
        (_ask(command=RequestCommand("ws://[/$hc/pay/roll?sb-hc-action=request&sb-hc-id=1",
                                     "1").serialize()), "Invalid IPv6 URL"),
        (_ask(command=RequestCommand("ws://:80/$hc/pay/roll?sb-hc-action=request&sb-hc-id=1",
                                     "1").serialize()), "rendezvous address"),
        (_ask(command=RequestCommand("ws://h/$hc/pay/roll?sb-hc-action=request&sb-hc-id=1&sb-hc-id=2",
                                     "1").serialize()), "rendezvous address"),
    ],
)
def test_malformed_and_foreign_asks_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_ask(data, "ns")
    assert reason in str(caught.value)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_message_error(data: bytes) -> None:
    for parse in (lambda d: parse_ask(d, "ns"), parse_answer, lambda d: parse_heartbeat(d, "ns")):
        try:
            parse(data)
        except MessageError:
            pass


@pytest.mark.parametrize("address", [
    "ws://relay.example:8080/$hc/pay/roll?sb-hc-action=request&sb-hc-id=ab12",  # as nodes write it
    "WSS://relay.example/$hc/pay%2Froll?sb-hc-id=ab12&sb-hc-action=request",  # any other spelling
    "ws://[::1]:80/$hc/pay/roll?sb-hc-action=request&sb-hc-id=ab12",
])
def test_a_rendezvous_address_is_accepted_however_it_is_spelt(address: str) -> None:
    command = RequestCommand(address, "1", "/x", "POST", (), False)
    ask = Ask(AskKind.REQUEST, "ns", "pay/roll", "a", 5.0, command)
    assert parse_ask(ask.serialize(), "ns") == ask


def test_answers_round_trip() -> None:
    response = ResponseCommand("n1.7", 201, "Created", (("X", "y"),), True)
    for answer in (
        Answer(AnswerStatus.POSTED, "b"),
        Answer(AnswerStatus.DELIVERED, "b", 12),
        Answer(AnswerStatus.COUNTED, "b", 3),
        Answer(AnswerStatus.REPLIED, "b", response=response, body=b"payload"),
        Answer(AnswerStatus.NO_LISTENER, "b"),
        Answer(AnswerStatus.GONE, "b"),
    ):
        assert parse_answer(answer.serialize()) == answer


def _answer(magic: bytes = b"SRn", v: int = 1, status: int = 1, count: int = 0, node: str = "b",
            response: str = "", body: bytes | None = None, size: int | None = None) -> bytes:
    """An answer as a node writes it (``status`` by number: 0 posted, 1 replied, ...)."""
    texts = [node.encode(), response.encode()]
    claimed = size if size is not None else (-1 if body is None else len(body))
    head = struct.pack("!3sBBqiHI", magic, v, status, count, claimed, *map(len, texts))
    return b"".join((head, *texts, body or b""))


RESPONSE = ResponseCommand("n1.7", 201, "Created", (("X", "y"),), True)


def test_the_answer_builder_writes_what_nodes_write() -> None:
    answer = Answer(AnswerStatus.REPLIED, "b", response=RESPONSE, body=b"payload")
    assert _answer(response=RESPONSE.serialize(), body=b"payload") == answer.serialize()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        json.dumps({"v": 1, "status": "posted", "node": "b"}).encode(),
        _answer(magic=b"SRa", response=RESPONSE.serialize()),
        _answer(v=2, response=RESPONSE.serialize()),
        _answer(status=0, node=""),  # posted, no node
        _answer(status=9),  # maybe
        _answer(status=2, count=-1),  # delivered -1
        _answer(status=1),  # replied with no response
        _answer(status=1, response='{"renewToken":{"token":"t"}}'),
        _answer(status=1, response="x" * (MAX_COMMAND_LENGTH + 1)),
        _answer(status=1, response=RESPONSE.serialize(), body=b"12", size=3),
        _answer(status=0) + b"more",
        _answer(status=0)[:-1],
    ],
)
def test_bad_answers_are_refused(data: bytes) -> None:
    with pytest.raises(MessageError):
        parse_answer(data)


def test_heartbeats_round_trip_and_are_bounded() -> None:
    fact = EntityFact("pay", 3, EntityKind.EVENT, Discovery.PUBLIC, True, False, 65536, 30.0)
    beat = Heartbeat("ns", "b", "http://b:1", (fact,))
    assert parse_heartbeat(beat.serialize(), "ns") == beat
    assert parse_heartbeat(Heartbeat("ns", "b", "u", leaving=True).serialize(), "ns").leaving
    with pytest.raises(MessageError, match="another namespace"):
        parse_heartbeat(beat.serialize(), "other")
    many = {"v": 1, "ns": "ns", "node": "b", "url": "u",
            "entities": [fact.to_json()] * (MAX_ENTITIES + 1)}
    with pytest.raises(MessageError, match="at most"):
        parse_heartbeat(json.dumps(many).encode(), "ns")
    for bad in ({"kind": "x"}, {"dynamic": 1}, {"listeners": -2}, {"timeout": "1"}):
        entity = {**fact.to_json(), **bad}
        data = json.dumps({"v": 1, "ns": "ns", "node": "b", "url": "u", "entities": [entity]})
        with pytest.raises(MessageError):
            parse_heartbeat(data.encode(), "ns")


def test_a_heartbeats_ticket_round_trips_and_never_shows_in_its_repr() -> None:
    beat = Heartbeat("ns", "b", "http://b:1", ticket="Zm9v-YmFy_0123456789abcdefABCDEF")
    parsed = parse_heartbeat(beat.serialize(), "ns")
    assert parsed.ticket == beat.ticket
    assert beat.ticket not in repr(parsed)
    assert b"ticket" not in Heartbeat("ns", "b", "u").serialize()  # none: the node takes no links
    assert parse_heartbeat(Heartbeat("ns", "b", "u").serialize(), "ns").ticket == ""
    for bad in (7, "a b", "x" * 65, "tick.et"):
        data = json.dumps({"v": 1, "ns": "ns", "node": "b", "url": "u", "entities": [], "ticket": bad})
        with pytest.raises(MessageError, match="ticket"):
            parse_heartbeat(data.encode(), "ns")
