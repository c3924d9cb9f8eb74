"""Tests for soap.security.correlation: a signed reply must answer a request sent here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from lxml import etree

from soap import ns
from soap.addressing import AddressingHeaders, AddressingHook, add_reply_addressing
from soap.envelope import Envelope, SoapVersion, build_envelope
from soap.exceptions import InvalidSecurity
from soap.security import (
    EnvelopeSigner,
    ReplyCorrelation,
    SecurityPolicy,
    TimestampHook,
    WsSecurityHook,
)
from tests.soap.test_security_signature import payload
from tests.soap.test_security_trust import T0, pki


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def request(message_id: str = "urn:uuid:1") -> Envelope:
    root = build_envelope(SoapVersion.SOAP12, [payload()])
    AddressingHook(to="http://relay/payroll", action="urn:a", id_factory=lambda: message_id).egress(
        root, {}
    )
    return Envelope.from_element(root)


def reply(relates_to: str | None, **attributes: str) -> Envelope:
    root = build_envelope(SoapVersion.SOAP12, [payload("5120.50")])
    envelope = Envelope.from_bytes(
        add_reply_addressing(
            etree.tostring(root), AddressingHeaders(message_id=relates_to), "urn:aResponse"
        )
    )
    for block in envelope.header_blocks:
        if block.tag == f"{{{ns.WSA}}}RelatesTo":
            block.attrib.update(attributes)
    return envelope


def test_a_reply_to_an_outstanding_request_is_accepted_once() -> None:
    correlation = ReplyCorrelation()
    correlation.sent(request("urn:uuid:1"))
    correlation.check(reply("urn:uuid:1"))
    with pytest.raises(InvalidSecurity, match="names no request this client is waiting on"):
        correlation.check(reply("urn:uuid:1"))


def test_a_reply_to_another_request_is_refused() -> None:
    correlation = ReplyCorrelation()
    correlation.sent(request("urn:uuid:1"))
    with pytest.raises(InvalidSecurity, match="names no request"):
        correlation.check(reply("urn:uuid:someone-else"))
    correlation.check(reply("urn:uuid:1"))  # still outstanding


def test_replies_without_relates_to_and_other_relationships_are_not_checked() -> None:
    correlation = ReplyCorrelation()
    correlation.check(reply(None))
    correlation.check(reply("urn:uuid:x", RelationshipType="urn:custom"))
    with pytest.raises(InvalidSecurity, match="names no request"):
        correlation.check(reply("urn:uuid:x", RelationshipType=f"{ns.WSA}/reply"))


def test_two_reply_relationships_are_refused() -> None:
    correlation = ReplyCorrelation()
    correlation.sent(request("urn:uuid:1"))
    envelope = reply("urn:uuid:1")
    assert envelope.header is not None
    etree.SubElement(envelope.header, f"{{{ns.WSA}}}RelatesTo").text = "urn:uuid:1"
    with pytest.raises(InvalidSecurity, match="more than one wsa:RelatesTo"):
        correlation.check(envelope)


def test_the_oldest_unanswered_requests_are_forgotten_past_the_limit() -> None:
    correlation = ReplyCorrelation(limit=2)
    for n in range(3):
        correlation.sent(request(f"urn:uuid:{n}"))
    assert "outstanding=2" in repr(correlation)
    with pytest.raises(InvalidSecurity):
        correlation.check(reply("urn:uuid:0"))
    correlation.check(reply("urn:uuid:2"))


def test_the_hook_binds_signed_replies_to_its_requests() -> None:
    def client() -> WsSecurityHook:
        return WsSecurityHook(
            timestamp=TimestampHook(clock=at(T0)),
            signer=EnvelopeSigner(pki().leaf.identity),
            policy=SecurityPolicy(trust=pki().pinned(pki().server), clock=at(T0)),
        )

    def signed_reply(relates_to: str) -> etree._Element:
        root = reply(relates_to).root
        WsSecurityHook(
            timestamp=TimestampHook(clock=at(T0)), signer=EnvelopeSigner(pki().server.identity)
        ).egress(root, {})
        return root

    mine, other = client(), client()
    mine.egress(request("urn:uuid:mine").root, {})
    other.egress(request("urn:uuid:other").root, {})
    # The service genuinely signed both replies; each client takes only its own.
    with pytest.raises(InvalidSecurity, match="names no request"):
        mine.ingress(signed_reply("urn:uuid:other"), {})
    mine.ingress(signed_reply("urn:uuid:mine"), {})
    unbound = WsSecurityHook(
        policy=SecurityPolicy(trust=pki().pinned(pki().server), clock=at(T0)), correlation=None
    )
    unbound.ingress(signed_reply("urn:uuid:other"), {})
