"""What crosses NATS: subjects, asks, answers, heartbeats; every malformed or foreign
message refused with MessageError. Pure: no sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hc.entities import Discovery, EntityKind
from hc.messages import AcceptCommand, RequestCommand, ResponseCommand
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


def test_an_accept_ask_round_trips() -> None:
    accept = AcceptCommand(ADDRESS.replace("request", "accept"), "id", (("X", "1"),), ("h", 1))
    ask = Ask(AskKind.ACCEPT, "ns", "pay/roll", "a", 30.0, accept)
    assert parse_ask(ask.serialize(), "ns") == ask


def _ask(**fields: object) -> bytes:
    base: dict[str, object] = {"v": 1, "ns": "ns", "kind": "request", "path": "pay/roll",
                               "origin": "a", "timeout": 5, "command": FULL.serialize()}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not JSON"),
        (b"[1]", "not a JSON object"),
        (_ask(v=2), "unknown version"),
        (_ask(ns="other"), "for another namespace"),
        (_ask(kind="steal"), "unknown kind 'steal'"),
        (_ask(kind=["request"]), "unknown kind"),
        (_ask(kind="accept"), "must carry a AcceptCommand"),
        (_ask(command="{}"), "command"),
        (_ask(path="other"), "not a request rendezvous address of 'other'"),
        (_ask(timeout=0), "'timeout' must be"),
        (_ask(timeout=True), "'timeout' must be"),
        (_ask(origin=""), "'origin' must be"),
        (_ask(origin="x" * 2000), "'origin' must be"),
        (_ask(body=3), "length does not match"),
        (_ask() + b"\ntrailing", "bytes after the head"),
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


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "posted"},
        {"status": "maybe", "node": "b"},
        {"status": "delivered", "node": "b", "count": -1},
        {"status": "replied", "node": "b"},
        {"status": "replied", "node": "b", "response": '{"renewToken":{"token":"t"}}'},
    ],
)
def test_bad_answers_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(MessageError):
        parse_answer(json.dumps({"v": 1, **fields}).encode())


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
