"""Tests for soap.addressing: WS-Addressing 1.0 headers, hooks and replies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import pytest
from lxml import etree

from soap import addressing, ns
from soap.addressing import (
    ANONYMOUS,
    FAULT_ACTION,
    AddressingHeaders,
    AddressingHook,
    action_from_http,
    add_reply_addressing,
    reply_headers,
    same_address,
    stamp_reply,
    stamp_request,
)
from soap.envelope import Envelope, SoapVersion, build_envelope
from soap.exceptions import InvalidHeader, MissingAction
from soap.fault import Fault, FaultCode, fault_envelope

Canon = Callable[[bytes | etree._Element], bytes]
WSA = ns.WSA
SOAP12_CT = 'application/soap+xml; charset=utf-8; action="urn:payroll/GetSalary"'

EGRESS_GOLDEN = f"""<soap:Envelope xmlns:soap="{ns.SOAP12_ENV}"><soap:Header>
<wsa:Action xmlns:wsa="{WSA}" soap:mustUnderstand="1">urn:payroll/GetSalary</wsa:Action>
<wsa:MessageID xmlns:wsa="{WSA}">urn:uuid:42</wsa:MessageID>
<wsa:ReplyTo xmlns:wsa="{WSA}"><wsa:Address>{ANONYMOUS}</wsa:Address></wsa:ReplyTo>
<wsa:To xmlns:wsa="{WSA}" soap:mustUnderstand="1">http://relay/payroll</wsa:To>
</soap:Header><soap:Body><m:GetSalary xmlns:m="urn:payroll"/></soap:Body></soap:Envelope>"""

REPLY_GOLDEN = f"""<env:Envelope xmlns:env="{ns.SOAP12_ENV}"><env:Header>
<wsa:Action xmlns:wsa="{WSA}" env:mustUnderstand="1">urn:payroll/GetSalaryResponse</wsa:Action>
<wsa:RelatesTo xmlns:wsa="{WSA}">urn:uuid:42</wsa:RelatesTo>
<wsa:To xmlns:wsa="{WSA}" env:mustUnderstand="1">{ANONYMOUS}</wsa:To>
</env:Header><env:Body><m:R xmlns:m="urn:payroll"/></env:Body></env:Envelope>"""


def _compact(xml: str | bytes) -> bytes:
    data = xml.encode() if isinstance(xml, str) else xml
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    return bytes(etree.tostring(root, method="c14n"))


def _request(version: SoapVersion = SoapVersion.SOAP12) -> etree._Element:
    return build_envelope(
        version, [etree.Element("{urn:payroll}GetSalary", nsmap={"m": "urn:payroll"})]
    )


@pytest.mark.parametrize("version", list(SoapVersion))
def test_every_field_is_written_as_a_header_and_read_back(version: SoapVersion) -> None:
    full = AddressingHeaders(**{f.name: f"urn:{f.name}" for f in fields(AddressingHeaders)})
    header = etree.Element("Header")
    header.extend(full.to_elements(version))
    assert len(header) == len(fields(AddressingHeaders))  # one block per field
    assert {etree.QName(block).namespace for block in header} == {WSA}
    assert AddressingHeaders.from_header(header) == full


def test_egress_golden() -> None:
    hook = AddressingHook("http://relay/payroll", id_factory=lambda: "urn:uuid:42")
    headers = {"Content-Type": SOAP12_CT}
    envelope, out_headers = hook.egress(_request(), headers)
    assert out_headers is headers
    assert _compact(etree.tostring(envelope)) == _compact(EGRESS_GOLDEN)


def test_egress_soap11_uses_soapaction_and_replaces_existing() -> None:
    root = _request(SoapVersion.SOAP11)
    hook = AddressingHook("http://relay/a", id_factory=lambda: "urn:uuid:1")
    hook.egress(root, {"soapaction": '"urn:first"'})
    hook.egress(root, {"SOAPAction": '"urn:second"'})
    parsed = Envelope.from_element(root)
    read = AddressingHeaders.from_header(parsed.header)
    assert read == AddressingHeaders(
        to="http://relay/a",
        action="urn:second",
        message_id="urn:uuid:1",
        reply_to=ANONYMOUS,
    )
    to = parsed.header.find(f"{{{WSA}}}To") if parsed.header is not None else None
    assert to is not None and to.get(f"{{{ns.SOAP11_ENV}}}mustUnderstand") == "1"


def test_egress_fixed_action_and_missing_action() -> None:
    AddressingHook("http://r", action="urn:fixed").egress(_request(), {})
    with pytest.raises(MissingAction):
        AddressingHook("http://r").egress(
            _request(), {"Content-Type": "application/soap+xml"}
        )


def test_default_message_ids_are_unique_uuids() -> None:
    first, second = addressing.new_message_id(), addressing.new_message_id()
    assert first != second and first.startswith("urn:uuid:")


@pytest.mark.parametrize(
    ("version", "headers", "expected"),
    [
        (SoapVersion.SOAP11, {"SOAPAction": '"urn:a"'}, "urn:a"),
        (SoapVersion.SOAP11, {"SOAPAction": "urn:a"}, "urn:a"),
        (SoapVersion.SOAP11, {"SOAPAction": '""'}, None),
        (SoapVersion.SOAP11, {}, None),
        (
            SoapVersion.SOAP12,
            {"content-type": 'application/soap+xml;action="urn:a;b"'},
            "urn:a;b",
        ),
        (
            SoapVersion.SOAP12,
            {"Content-Type": "application/soap+xml; ACTION=urn:b"},
            "urn:b",
        ),
        (SoapVersion.SOAP12, {"Content-Type": "application/soap+xml"}, None),
        (SoapVersion.SOAP12, {}, None),
    ],
)
def test_action_from_http(
    version: SoapVersion, headers: dict[str, str], expected: str | None
) -> None:
    assert action_from_http(version, headers) == expected


def test_ingress_validates() -> None:
    hook = AddressingHook("http://r")
    good = _request()
    assert hook.ingress(good, {}) == (good, {})
    bad = etree.fromstring(
        f'<s:Envelope xmlns:s="{ns.SOAP12_ENV}" xmlns:a="{WSA}"><s:Header>'
        "<a:RelatesTo>x</a:RelatesTo><a:RelatesTo>y</a:RelatesTo></s:Header><s:Body/></s:Envelope>"
    )
    with pytest.raises(InvalidHeader, match="more than once"):
        hook.ingress(bad, {})


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        ("<a:To/>", "empty"),
        ("<a:Action>  </a:Action>", "empty"),
        ("<a:ReplyTo><a:Other/></a:ReplyTo>", "no wsa:Address"),
        ("<a:To>x</a:To><a:To>y</a:To>", "more than once"),
    ],
)
def test_from_header_rejects(inner: str, message: str) -> None:
    header = etree.fromstring(f'<h xmlns:a="{WSA}">{inner}</h>')
    with pytest.raises(InvalidHeader, match=message):
        AddressingHeaders.from_header(header)


def test_from_header_ignores_other_blocks() -> None:
    header = etree.fromstring(
        f'<h xmlns:a="{WSA}"><!-- c --><a:FaultTo><a:Address>x</a:Address></a:FaultTo>'
        '<x:To xmlns:x="urn:x">no</x:To><a:To> http://t </a:To></h>'
    )
    assert AddressingHeaders.from_header(header) == AddressingHeaders(to="http://t")
    assert AddressingHeaders.from_header(None) == AddressingHeaders()


def test_reply_headers() -> None:
    request = AddressingHeaders(to="http://r", action="urn:a", message_id="urn:uuid:9")
    assert reply_headers(request, "urn:aResponse") == AddressingHeaders(
        to=ANONYMOUS, action="urn:aResponse", relates_to="urn:uuid:9"
    )


def test_add_reply_addressing_golden() -> None:
    response = (
        f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{ns.SOAP12_ENV}">'
        '<env:Body><m:R xmlns:m="urn:payroll"/></env:Body></env:Envelope>'
    ).encode()
    request = AddressingHeaders(
        action="urn:payroll/GetSalary", message_id="urn:uuid:42"
    )
    out = add_reply_addressing(response, request, "urn:payroll/GetSalaryResponse")
    assert out.startswith(b"<?xml")
    assert _compact(out) == _compact(REPLY_GOLDEN)


def test_add_reply_addressing_fault_and_no_message_id() -> None:
    response = fault_envelope(SoapVersion.SOAP12, Fault(FaultCode.SERVER, "boom"))
    out = add_reply_addressing(response, AddressingHeaders(), "urn:ignored")
    read = AddressingHeaders.from_header(Envelope.from_bytes(out).header)
    assert read == AddressingHeaders(to=ANONYMOUS, action=FAULT_ACTION)


def test_stamp_reply_works_on_the_tree_in_place() -> None:
    reply = Envelope.from_element(build_envelope(
        SoapVersion.SOAP12, [etree.Element("{urn:payroll}R", nsmap={"m": "urn:payroll"})]
    ))
    request = AddressingHeaders(action="urn:payroll/GetSalary", message_id="urn:uuid:42")
    stamp_reply(reply, request, "urn:payroll/GetSalaryResponse")
    assert _compact(etree.tostring(reply.root)) == _compact(
        REPLY_GOLDEN.replace("env:", "soap:").replace("xmlns:env", "xmlns:soap")
    )


def test_stamp_request_replaces_what_is_there() -> None:
    request = Envelope.from_element(_request())
    for message_id in ("urn:uuid:1", "urn:uuid:42"):
        stamp_request(request, to="http://relay/payroll", action="urn:payroll/GetSalary",
                      message_id=message_id)
    assert _compact(etree.tostring(request.root)) == _compact(EGRESS_GOLDEN)


# -- wsa:To against the service's address, as WCF's default address filter compares them --

SERVICE = "http://127.0.0.1:9350/payroll12"


@pytest.mark.parametrize("to", [
    SERVICE,
    "http://localhost:9350/payroll12",  # the host name is not compared
    "HTTP://RELAY.EXAMPLE.COM:9350/payroll12",
    "http://127.0.0.1:9350/Payroll12/",  # path without case, one trailing slash
    "http://127.0.0.1:9350/pay%72oll12",  # percent-escapes decoded
    "http://127.0.0.1:9350/payroll12?x=1#frag",  # query and fragment ignored
    "http://user@127.0.0.1:9350/payroll12",
])
def test_same_address_as_wcf_by_default(to: str) -> None:
    assert same_address(to, SERVICE)


@pytest.mark.parametrize("to", [
    "https://127.0.0.1:9350/payroll12",  # scheme
    "http://127.0.0.1:9351/payroll12",  # port
    "http://127.0.0.1/payroll12",  # port 80 by default
    "http://127.0.0.1:9350/payroll",  # path
    "http://127.0.0.1:9350/payroll12/x",
    "http://127.0.0.1:9350/payroll12//",
    "http://127.0.0.1:99999/payroll12",  # no port at all
    "urn:payroll12",
    "",
])
def test_not_the_same_address(to: str) -> None:
    assert not same_address(to, SERVICE)


def test_default_ports_fill_in() -> None:
    assert same_address("http://relay/x", "http://relay:80/x")
    assert same_address("https://relay:443/x", "https://relay/x")
    assert not same_address("http://relay:443/x", "https://relay/x")


def test_include_host_compares_the_host_name_too() -> None:
    assert same_address("http://127.0.0.1:9350/Payroll12", SERVICE, include_host=True)
    assert same_address("http://Relay.Example.com:9350/x", "http://relay.example.com:9350/x",
                        include_host=True)
    assert not same_address("http://localhost:9350/payroll12", SERVICE, include_host=True)
