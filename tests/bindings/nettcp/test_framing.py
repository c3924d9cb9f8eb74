"""The session channel's framing and bookkeeping, pure (no socket, no loop)."""

from __future__ import annotations

import pytest
from lxml import etree

from bindings.nettcp.calls import DuplicateMessageId, FloodGuard, PendingCalls, TooManyCalls
from bindings.nettcp.framing import (
    KEEPALIVE_ACTION,
    MalformedMessage,
    MessageKind,
    fault_message,
    parse_message,
    reply_message,
    request_message,
)
from soap.addressing import FAULT_ACTION
from soap.fault import Fault, FaultCode
from soap.quotas import ReaderQuotas

pytestmark = pytest.mark.usefixtures("no_sockets")

QUOTAS = ReaderQuotas()
SOAP11 = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
          b"<s:Body/></s:Envelope>")


def parse(data: bytes | str, max_size: int = 65536):  # type: ignore[no-untyped-def]
    return parse_message(data, QUOTAS, max_size)


def test_a_request_and_its_reply_are_told_apart_by_relates_to() -> None:
    request = parse(request_message(KEEPALIVE_ACTION, "urn:uuid:1", to="http://x/e"))
    assert request.kind is MessageKind.REQUEST and request.is_control
    assert (request.headers.message_id, request.headers.to) == ("urn:uuid:1", "http://x/e")
    reply = parse(reply_message(KEEPALIVE_ACTION + "Response", "urn:uuid:1"))
    assert reply.kind is MessageKind.REPLY and reply.headers.relates_to == "urn:uuid:1"
    assert not reply.is_fault


def test_text_messages_are_read_as_utf8() -> None:
    text = request_message("urn:a", "urn:uuid:é").decode("utf-8")
    assert parse(text).headers.message_id == "urn:uuid:é"


def test_a_fault_names_the_request_and_its_subcode() -> None:
    message = parse(fault_message("busy", "urn:uuid:9", code=FaultCode.SERVER, subcode="ServerTooBusy"))
    assert message.is_fault and message.headers.relates_to == "urn:uuid:9"
    assert message.headers.action == FAULT_ACTION
    payload = message.envelope.body_payload
    assert payload is not None
    fault = Fault.from_element(payload)
    assert (fault.code, fault.reason) == (FaultCode.SERVER, "busy")
    assert fault.subcode == etree.QName("urn:soap-relay:nettcp", "ServerTooBusy")


def test_a_fault_for_an_unreadable_request_relates_to_nothing() -> None:
    assert parse(fault_message("Malformed", None)).headers.relates_to is None


@pytest.mark.parametrize(("data", "reason"), [
    (b"not xml", "not well-formed"),
    (b"<a/>", "is not a SOAP 1.1/1.2 Envelope"),
    (SOAP11, "SOAP 1.2 envelopes only"),
    (request_message("urn:a", "urn:uuid:1").replace(b">urn:uuid:1<", b"><"),
     "wsa:MessageID is empty"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>', "DTD"),
])
def test_malformed_messages_are_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        parse(data)


def test_a_message_over_the_size_limit_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="MaxReceivedMessageSize"):
        parse(request_message("urn:a", "urn:uuid:1"), max_size=64)


def test_pending_calls_give_a_reply_to_its_call_only() -> None:
    calls: PendingCalls[str] = PendingCalls(limit=2)
    calls.add("a", "waiter-a")
    calls.add("b", "waiter-b")
    assert calls.settle("nobody") is None  # a reply for no call: refused, no one gets it
    assert calls.settle("b") == "waiter-b"
    assert calls.settle("b") is None  # once only
    assert calls.drain() == ["waiter-a"] and len(calls) == 0


def test_pending_calls_are_bounded_and_ids_unique() -> None:
    calls: PendingCalls[int] = PendingCalls(limit=1)
    calls.add("a", 1)
    with pytest.raises(DuplicateMessageId):
        calls.add("a", 2, bounded=False)
    with pytest.raises(TooManyCalls, match="1 call in flight"):
        calls.add("b", 2)
    calls.add("keepalive", 3, bounded=False)  # the channel's own messages pass the bound
    assert len(calls) == 2


def test_a_flood_is_refusals_in_a_row_past_the_tolerance() -> None:
    guard = FloodGuard(tolerance=2)
    assert not guard.refuse() and not guard.refuse()
    guard.accepted()
    assert not guard.refuse() and not guard.refuse()
    assert guard.refuse()



def test_warnings_about_peers_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from bindings.nettcp.peer_log import PeerLog
    from tests.support.clock import ManualClock

    clock = ManualClock(100.0)
    log = PeerLog(logging.getLogger("test.peers"), limit=2, window=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, "test.peers"):
        for i in range(5):
            log.warning("mistake %d", i)
        clock.advance(10.0)
        log.warning("later")
    assert [r.getMessage() for r in caplog.records] == [
        "mistake 0", "mistake 1", "later (and 3 similar lines suppressed in the last 10 s)"]
