"""Tests for soap.envelope: versions, the hardened parser, envelope structure."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree

from soap import ns
from soap.envelope import Envelope, SoapVersion, build_envelope, parse_xml
from soap.exceptions import MalformedXml, NotAnEnvelope

Canon = Callable[[bytes | etree._Element], bytes]

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol9;</s:Body></s:Envelope>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&xxe;</s:Body></s:Envelope>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE s:Envelope SYSTEM "http://127.0.0.1:9/evil.dtd">
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"""

SOAP11 = b"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <!-- a comment -->
  <s:Header><h:A xmlns:h="urn:h">1</h:A><h:B xmlns:h="urn:h"/></s:Header>
  <s:Body><m:GetSalary xmlns:m="urn:payroll"><m:id>7</m:id></m:GetSalary></s:Body>
</s:Envelope>"""


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/xml", SoapVersion.SOAP11),
        ("text/xml; charset=utf-8", SoapVersion.SOAP11),
        ("TEXT/XML;charset=UTF-8", SoapVersion.SOAP11),
        ('application/soap+xml; charset=utf-8; action="urn:a;b"', SoapVersion.SOAP12),
        ("  Application/SOAP+XML  ", SoapVersion.SOAP12),
        ("application/json", None),
        ("application/xml", None),
        ("", None),
    ],
)
def test_version_from_content_type(
    content_type: str, expected: SoapVersion | None
) -> None:
    assert SoapVersion.from_content_type(content_type) is expected


def test_version_properties() -> None:
    assert SoapVersion.SOAP11.namespace == ns.SOAP11_ENV
    assert SoapVersion.SOAP12.content_type == "application/soap+xml"
    assert SoapVersion.from_namespace(ns.SOAP12_ENV) is SoapVersion.SOAP12
    assert SoapVersion.from_namespace("urn:other") is None
    assert SoapVersion.from_namespace(None) is None


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE, EXTERNAL_DTD])
def test_parse_refuses_dtds(payload: bytes) -> None:
    with pytest.raises(MalformedXml, match="DTDs are not allowed"):
        parse_xml(payload)


def test_parse_refuses_bare_doctype() -> None:
    with pytest.raises(MalformedXml, match="DTDs are not allowed"):
        parse_xml(b"<!DOCTYPE a><a/>")


@pytest.mark.parametrize("payload", [b"", b"<a>", b"not xml", b"<a>&undefined;</a>"])
def test_parse_refuses_malformed(payload: bytes) -> None:
    with pytest.raises(MalformedXml, match="not well-formed"):
        parse_xml(payload)


def test_parse_keeps_comments() -> None:
    root = parse_xml(b"<a><!--c--><b/></a>")
    assert isinstance(root[0], etree._Comment)


def test_envelope_from_bytes() -> None:
    env = Envelope.from_bytes(SOAP11)
    assert env.version is SoapVersion.SOAP11
    assert env.header is not None
    assert [etree.QName(b).localname for b in env.header_blocks] == ["A", "B"]
    assert env.body_payload is not None
    assert env.body_payload.tag == "{urn:payroll}GetSalary"


def test_envelope_without_header_and_empty_body() -> None:
    env = Envelope.from_bytes(
        b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>'
    )
    assert env.version is SoapVersion.SOAP12
    assert env.header is None
    assert env.header_blocks == ()
    assert env.body_payload is None


@pytest.mark.parametrize(
    "payload",
    [
        b"<Envelope/>",
        b'<s:Envelope xmlns:s="urn:not-soap"><s:Body/></s:Envelope>',
        b'<s:Body xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>',
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>',
        (
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<s:Body/><s:Header/></s:Envelope>"
        ),
        (
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<s:Header/><s:Header/><s:Body/></s:Envelope>"
        ),
        (
            b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
            b'<s:Body/><x:Extra xmlns:x="urn:x"/></s:Envelope>'
        ),
        (
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<s:Body/><Unqualified/></s:Envelope>"
        ),
    ],
)
def test_not_an_envelope(payload: bytes) -> None:
    with pytest.raises(NotAnEnvelope):
        Envelope.from_bytes(payload)


def test_soap11_allows_qualified_trailer() -> None:
    env = Envelope.from_bytes(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<s:Body/><x:Extra xmlns:x="urn:x"/></s:Envelope>'
    )
    assert env.body.tag == f"{{{ns.SOAP11_ENV}}}Body"


def test_to_bytes_round_trip(canon: Canon) -> None:
    env = Envelope.from_bytes(SOAP11)
    out = env.to_bytes()
    assert out.startswith(b"<?xml")
    assert canon(out) == canon(SOAP11)


def test_build_envelope_golden(canon: Canon) -> None:
    body = etree.Element("{urn:payroll}GetSalary", nsmap={"m": "urn:payroll"})
    header = etree.Element("{urn:h}A", nsmap={"h": "urn:h"})
    root = build_envelope(SoapVersion.SOAP12, [body], [header])
    expected = (
        b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
        b'<soap:Header><h:A xmlns:h="urn:h"></h:A></soap:Header>'
        b'<soap:Body><m:GetSalary xmlns:m="urn:payroll"></m:GetSalary></soap:Body>'
        b"</soap:Envelope>"
    )
    assert canon(root) == canon(expected)
    assert Envelope.from_element(root).body_payload is body


def test_build_envelope_omits_empty_header() -> None:
    root = build_envelope(SoapVersion.SOAP11, [])
    env = Envelope.from_element(root)
    assert env.header is None
    assert env.body_payload is None


def test_parse_refuses_dtd_in_utf16() -> None:
    # The byte-level prolog check cannot see UTF-16; the post-parse check must.
    doc = BILLION_LAUGHS.decode().replace('<?xml version="1.0"?>', "").encode("utf-16")
    with pytest.raises(MalformedXml):
        parse_xml(doc)
    small = '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'.encode("utf-16")
    with pytest.raises(MalformedXml, match="DTDs are not allowed"):
        parse_xml(small)


def test_parse_doctype_after_comment_and_pi() -> None:
    doc = b'\xef\xbb\xbf<?xml version="1.0"?>\r\n<!-- x --><?pi y?>\n<!DOCTYPE a><a/>'
    with pytest.raises(MalformedXml, match="DTDs are not allowed"):
        parse_xml(doc)
