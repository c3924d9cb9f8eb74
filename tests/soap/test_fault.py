"""Tests for soap.fault: building and reading SOAP 1.1/1.2 faults."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from zeep.exceptions import Fault as ZeepFault
from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding

from soap import ns
from soap.envelope import Envelope, SoapVersion
from soap.exceptions import InvalidFault
from soap.fault import (
    Fault,
    FaultCode,
    fault_envelope,
    find_fault,
    relay_error_envelope,
)

Canon = Callable[[bytes | etree._Element], bytes]

SOAP11_GOLDEN = b"""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<soap:Fault><faultcode>soap:Client</faultcode>
<faultstring xml:lang="en">No such entity. TrackingId:t-1</faultstring>
<detail><RelayError xmlns="urn:soap-relay:error"><Code>EntityNotFound</Code>
<TrackingId>t-1</TrackingId></RelayError></detail></soap:Fault></soap:Body></soap:Envelope>"""

SOAP12_GOLDEN = b"""<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>
<soap:Fault><soap:Code><soap:Value>soap:Receiver</soap:Value></soap:Code>
<soap:Reason><soap:Text xml:lang="en">No service is hosted at the specified address. \
TrackingId:t-2</soap:Text></soap:Reason>
<soap:Detail><RelayError xmlns="urn:soap-relay:error"><Code>NoListener</Code>
<TrackingId>t-2</TrackingId></RelayError></soap:Detail></soap:Fault></soap:Body></soap:Envelope>"""


def _strip_ws(xml: bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    root = etree.fromstring(xml, parser)
    for el in root.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
    return bytes(etree.tostring(root, method="c14n"))


def test_relay_error_soap11_golden() -> None:
    out = relay_error_envelope(
        SoapVersion.SOAP11,
        sender_side=True,
        message="No such entity.",
        code="EntityNotFound",
        tracking_id="t-1",
    )
    assert out.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert _strip_ws(out) == _strip_ws(SOAP11_GOLDEN)


def test_relay_error_soap12_golden() -> None:
    out = relay_error_envelope(
        SoapVersion.SOAP12,
        sender_side=False,
        message="No service is hosted at the specified address.",
        code="NoListener",
        tracking_id="t-2",
    )
    assert _strip_ws(out) == _strip_ws(SOAP12_GOLDEN)


@pytest.mark.parametrize(
    ("version", "binding", "expected_code"),
    [
        (SoapVersion.SOAP11, Soap11Binding, "soap:Server"),
        (SoapVersion.SOAP12, Soap12Binding, "soap:Receiver"),
    ],
)
def test_zeep_reads_relay_error(
    version: SoapVersion, binding: type[Soap11Binding], expected_code: str
) -> None:
    body = relay_error_envelope(
        version,
        sender_side=False,
        message="Listener timed out.",
        code="Timeout",
        tracking_id="t9",
    )
    zeep_binding = binding(
        None, "b", "p", "http://schemas.xmlsoap.org/soap/http", "document"
    )
    with pytest.raises(ZeepFault) as info:
        zeep_binding.process_error(etree.fromstring(body), None)
    assert info.value.message == "Listener timed out. TrackingId:t9"
    assert info.value.code == expected_code
    detail = info.value.detail
    assert detail is not None
    assert (
        detail.findtext(
            f"{{{ns.RELAY_ERROR}}}RelayError/{{{ns.RELAY_ERROR}}}TrackingId"
        )
        == "t9"
    )


def test_soap11_subcode_replaces_faultcode(canon: Canon) -> None:
    fault = Fault(
        FaultCode.CLIENT, "bad", subcode=etree.QName(ns.WSA, "ActionNotSupported")
    )
    expected = (
        b'<soap:Fault xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<faultcode xmlns:c="http://www.w3.org/2005/08/addressing">c:ActionNotSupported</faultcode>'
        b'<faultstring xml:lang="en">bad</faultstring></soap:Fault>'
    )
    assert canon(fault.to_element(SoapVersion.SOAP11)) == canon(expected)


def test_soap12_subcode_and_role(canon: Canon) -> None:
    fault = Fault(
        FaultCode.CLIENT,
        "bad",
        subcode=etree.QName(ns.WSA, "ActionNotSupported"),
        actor="urn:role",
        lang="de",
    )
    expected = (
        b'<soap:Fault xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
        b"<soap:Code><soap:Value>soap:Sender</soap:Value><soap:Subcode>"
        b'<soap:Value xmlns:c="http://www.w3.org/2005/08/addressing">c:ActionNotSupported'
        b"</soap:Value></soap:Subcode></soap:Code>"
        b'<soap:Reason><soap:Text xml:lang="de">bad</soap:Text></soap:Reason>'
        b"<soap:Role>urn:role</soap:Role></soap:Fault>"
    )
    assert canon(fault.to_element(SoapVersion.SOAP12)) == canon(expected)


def test_from_element_soap11_foreign_prefixes() -> None:
    xml = (
        b'<x:Envelope xmlns:x="http://schemas.xmlsoap.org/soap/envelope/"><x:Body>'
        b"<x:Fault><faultcode>x:Client.Authentication</faultcode><faultstring>no</faultstring>"
        b"<faultactor>urn:a</faultactor><detail><d/><e/></detail></x:Fault></x:Body></x:Envelope>"
    )
    fault = find_fault(Envelope.from_bytes(xml))
    assert fault is not None
    assert fault.code is FaultCode.CLIENT
    assert fault.subcode is None
    assert fault.actor == "urn:a"
    assert fault.detail is not None and fault.detail.tag == "d"


def test_from_element_soap11_custom_code_kept_as_subcode() -> None:
    xml = (
        b'<s:Fault xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="urn:t">'
        b"<faultcode>t:Custom</faultcode><faultstring/></s:Fault>"
    )
    fault = Fault.from_element(etree.fromstring(xml))
    assert fault.code is FaultCode.SERVER
    assert fault.subcode == etree.QName("urn:t", "Custom")
    assert fault.reason == ""


@pytest.mark.parametrize(
    "xml",
    [
        b'<s:NotFault xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>',
        b'<s:Fault xmlns:s="urn:other"/>',
        b'<s:Fault xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><faultstring/></s:Fault>',
        (
            b'<s:Fault xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<faultcode>nope:Client</faultcode><faultstring/></s:Fault>"
        ),
        (
            b'<s:Fault xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<faultcode>s:Client</faultcode></s:Fault>"
        ),
        (
            b'<s:Fault xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Code>'
            b"<s:Value>s:Client</s:Value></s:Code><s:Reason><s:Text>x</s:Text></s:Reason></s:Fault>"
        ),
        (
            b'<s:Fault xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Code>'
            b"<s:Value>s:Sender</s:Value></s:Code></s:Fault>"
        ),
    ],
)
def test_from_element_rejects(xml: bytes) -> None:
    with pytest.raises(InvalidFault):
        Fault.from_element(etree.fromstring(xml))


def test_find_fault_none_for_normal_body() -> None:
    env = Envelope.from_bytes(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<s:Body><m:Ok xmlns:m="urn:m"/></s:Body></s:Envelope>'
    )
    assert find_fault(env) is None


def test_to_element_copies_detail() -> None:
    detail = etree.Element("{urn:d}D")
    fault = Fault(FaultCode.SERVER, "x", detail=detail)
    fault.to_element(SoapVersion.SOAP11)
    fault.to_element(SoapVersion.SOAP12)
    assert detail.getparent() is None


def test_soap11_data_encoding_unknown_is_client() -> None:
    el = Fault(FaultCode.DATA_ENCODING_UNKNOWN, "x").to_element(SoapVersion.SOAP11)
    assert el.findtext("faultcode") == "soap:Client"


_xml_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="\r"
    ),
    max_size=40,
)
_ncname = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True)


@given(
    code=st.sampled_from(list(FaultCode)),
    reason=_xml_text,
    subcode=st.none()
    | st.builds(etree.QName, st.sampled_from(["urn:a", ns.WSA]), _ncname),
    actor=st.none() | st.sampled_from(["urn:role", "http://x/next"]),
    lang=st.sampled_from(["en", "de-CH", ""]),
    with_detail=st.booleans(),
)
def test_soap12_round_trip(
    code: FaultCode,
    reason: str,
    subcode: etree.QName | None,
    actor: str | None,
    lang: str,
    with_detail: bool,
) -> None:
    detail = etree.Element("{urn:d}D") if with_detail else None
    fault = Fault(code, reason, subcode=subcode, detail=detail, actor=actor, lang=lang)
    parsed = find_fault(Envelope.from_bytes(fault_envelope(SoapVersion.SOAP12, fault)))
    assert parsed is not None
    assert parsed.detail is None if detail is None else parsed.detail is not None
    assert parsed == Fault(
        code, reason, subcode=subcode, detail=parsed.detail, actor=actor, lang=lang
    )


@given(code=st.sampled_from([FaultCode.CLIENT, FaultCode.SERVER]), reason=_xml_text)
def test_soap11_round_trip(code: FaultCode, reason: str) -> None:
    fault = Fault(code, reason)
    parsed = find_fault(Envelope.from_bytes(fault_envelope(SoapVersion.SOAP11, fault)))
    assert parsed == fault
