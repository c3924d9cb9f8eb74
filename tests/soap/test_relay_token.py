"""Tests for soap.relay_token: building the header and byte-exact removal."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from lxml import etree

from soap import ns
from soap.envelope import Envelope, SoapVersion, build_envelope
from soap.exceptions import InvalidHeader, MalformedXml, NotAnEnvelope
from soap.relay_token import (
    RelayTokenHook,
    RelayTokenMatch,
    extract_relay_token,
    relay_token_header,
)

Canon = Callable[[bytes | etree._Element], bytes]


def _c14n(xml: bytes | etree._Element) -> bytes:
    root = etree.fromstring(xml) if isinstance(xml, bytes) else xml
    return bytes(etree.tostring(root, method="c14n"))


TOKEN = (
    "SharedAccessSignature sr=http%3a%2f%2frelay%2fpayroll&sig=abc%2B%3D&se=1&skn=Root"
)
B64 = base64.b64encode(TOKEN.encode()).decode()
S11 = ns.SOAP11_ENV
S12 = ns.SOAP12_ENV
CONNECT = ns.RELAY_CONNECT
BST = (
    f'<wsse:BinarySecurityToken xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}" '
    f'wsu:Id="uuid:1" ValueType="{ns.SWT_TOKEN}" EncodingType="{ns.BASE64_BINARY}">'
    f"{B64}</wsse:BinarySecurityToken>"
)
TOKEN_EL = f'<RelayAccessToken xmlns="{CONNECT}">{BST}</RelayAccessToken>'


def _signed_body(p: str = "s") -> str:
    """A Body that looks signed: its bytes must survive the strip untouched."""
    return (
        f'<{p}:Body xmlns:wsu="{ns.WSU}" wsu:Id="_1">'
        '<m:Pay xmlns:m="urn:payroll"><m:Amount>1 000 €</m:Amount></m:Pay>'
        '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
        '<ds:Reference URI="#_1"><ds:DigestValue>q3X+/Zo=</ds:DigestValue>'
        "</ds:Reference></ds:SignedInfo>"
        "<ds:SignatureValue>AAAA\r\nBBBB</ds:SignatureValue></ds:Signature>"
        f"</{p}:Body>"
    )


SIGNED_BODY = _signed_body()


def _span(doc: str, element: str) -> tuple[int, int]:
    """Byte span of the one occurrence of ``element`` in ``doc``."""
    data, needle = doc.encode(), element.encode()
    assert data.count(needle) == 1
    start = data.index(needle)
    return start, start + len(needle)


def _check(doc: str, element: str) -> RelayTokenMatch:
    """Extract, and assert that exactly ``element``'s bytes are the match."""
    data = doc.encode()
    match = extract_relay_token(data)
    assert match is not None
    assert (match.start, match.end) == _span(doc, element)
    assert match.token == TOKEN
    stripped = match.strip(data)
    assert stripped == data[: match.start] + data[match.end :]
    assert extract_relay_token(stripped) is None
    assert _c14n(stripped) == _c14n(_remove_with_lxml(data))
    return match


def _remove_with_lxml(data: bytes) -> etree._Element:
    """The expected document: the header token removed, its tail text kept."""
    root = etree.fromstring(data)
    header = Envelope.from_element(root).header
    assert header is not None
    (element,) = header.findall(f"{{{CONNECT}}}RelayAccessToken")
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + (element.tail or "")
    else:
        header.text = (header.text or "") + (element.tail or "")
    header.remove(element)
    return root


def test_header_golden(canon: Canon) -> None:
    element = relay_token_header(TOKEN, id_factory=lambda: "uuid:1")
    assert canon(element) == canon(TOKEN_EL.encode())


def test_build_then_extract_soap12() -> None:
    root = build_envelope(
        SoapVersion.SOAP12,
        [etree.Element("{urn:x}Op")],
        [relay_token_header(TOKEN), etree.Element("{urn:h}Other")],
    )
    data = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    match = extract_relay_token(data)
    assert match is not None and match.token == TOKEN
    rest = Envelope.from_bytes(match.strip(data))
    assert [b.tag for b in rest.header_blocks] == ["{urn:h}Other"]


def test_match_repr_hides_token() -> None:
    assert TOKEN not in repr(RelayTokenMatch(token=TOKEN, start=1, end=2))


def test_hook_egress_creates_header() -> None:
    root = build_envelope(SoapVersion.SOAP11, [etree.Element("{urn:x}Op")])
    headers = {"SOAPAction": '"urn:a"'}
    hook = RelayTokenHook(token_provider=lambda: TOKEN, id_factory=lambda: "uuid:7")
    out, out_headers = hook.egress(root, headers)
    assert out_headers == headers
    match = extract_relay_token(etree.tostring(out))
    assert match is not None and match.token == TOKEN


def test_soap11_crlf_comments_cdata_and_utf8() -> None:
    element = f'<c:RelayAccessToken\r\n\txmlns:c="{CONNECT}"  >\r\n{BST}\r\n</c:RelayAccessToken >'
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        "<!-- Größe: <RelayAccessToken>decoy</RelayAccessToken> -->\r\n"
        f'<soap:Envelope xmlns:soap="{S11}" note="naïve &gt; ☃ \'q\'">\r\n'
        f" <soap:Header >\r\n"
        f'  <h:Note xmlns:h="urn:h" a=\'x>y\' b="&lt;/RelayAccessToken>">日本語'
        f"<![CDATA[<RelayAccessToken xmlns='{CONNECT}'>]]></h:Note>\r\n"
        f"  <?pi <RelayAccessToken?>\r\n"
        f"  {element}\r\n"
        " </soap:Header>\r\n"
        f" {_signed_body('soap')}\r\n"
        "</soap:Envelope>\r\n"
    )
    _check(doc, element)


def test_default_namespace_declared_on_ancestor() -> None:
    element = f"<RelayAccessToken>{BST}</RelayAccessToken>"
    doc = (
        f'<s:Envelope xmlns:s="{S12}"><s:Header xmlns="{CONNECT}">{element}'
        f"</s:Header>{SIGNED_BODY}</s:Envelope>"
    )
    _check(doc, element)


def test_prefix_declared_on_envelope_with_rebinding_decoy() -> None:
    decoy = f'<c:RelayAccessToken xmlns:c="urn:other">{BST}</c:RelayAccessToken>'
    element = f"<c:RelayAccessToken>{BST}</c:RelayAccessToken>"
    doc = (
        f'<s:Envelope xmlns:s="{S12}" xmlns:c="{CONNECT}"><s:Header>{decoy}{element}'
        f"</s:Header>{SIGNED_BODY}</s:Envelope>"
    )
    _check(doc, element)


def test_namespace_written_with_character_references() -> None:
    escaped = CONNECT.replace("/", "&#x2F;").replace(".", "&#46;")
    element = f'<RelayAccessToken xmlns="{escaped}">{BST}</RelayAccessToken>'
    doc = f'<s:Envelope xmlns:s="{S12}"><s:Header>{element}</s:Header>{SIGNED_BODY}</s:Envelope>'
    _check(doc, element)


def test_tokens_outside_the_header_are_left_alone() -> None:
    nested = f'<h:Wrap xmlns:h="urn:h">{TOKEN_EL}</h:Wrap>'
    body = f"<s:Body>{TOKEN_EL}</s:Body>"
    doc = (
        f'<s:Envelope xmlns:s="{S12}"><s:Header>{nested}</s:Header>{body}</s:Envelope>'
    )
    assert extract_relay_token(doc.encode()) is None


def test_body_token_after_header_token() -> None:
    element = f"<x:RelayAccessToken xmlns:x='{CONNECT}'>{BST}</x:RelayAccessToken>"
    doc = (
        f'<s:Envelope xmlns:s="{S12}"><s:Header>{element}</s:Header>'
        f"<s:Body>{TOKEN_EL}</s:Body></s:Envelope>"
    )
    _check(doc, element)


@pytest.mark.parametrize(
    "doc",
    [
        f'<s:Envelope xmlns:s="{S12}"><s:Body/></s:Envelope>',
        f'<s:Envelope xmlns:s="{S12}"><s:Header><h:A xmlns:h="urn:h"/></s:Header><s:Body/></s:Envelope>',
        (
            f'<s:Envelope xmlns:s="{S11}"><s:Header><RelayAccessToken xmlns="urn:other">'
            f"{BST}</RelayAccessToken></s:Header><s:Body/></s:Envelope>"
        ),
    ],
)
def test_no_token(doc: str) -> None:
    assert extract_relay_token(doc.encode()) is None


def _in_header(inner: str) -> bytes:
    return f'<s:Envelope xmlns:s="{S12}"><s:Header>{inner}</s:Header><s:Body/></s:Envelope>'.encode()


def _bst(text: str, **attrs: str) -> str:
    extra = "".join(f' {name}="{value}"' for name, value in attrs.items())
    return f'<wsse:BinarySecurityToken xmlns:wsse="{ns.WSSE}"{extra}>{text}</wsse:BinarySecurityToken>'


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        (TOKEN_EL + TOKEN_EL, "more than one"),
        (f'<RelayAccessToken xmlns="{CONNECT}"/>', "exactly one"),
        (f'<RelayAccessToken xmlns="{CONNECT}"></RelayAccessToken>', "exactly one"),
        (f'<RelayAccessToken xmlns="{CONNECT}">{_bst("")}</RelayAccessToken>', "empty"),
        (
            f'<RelayAccessToken xmlns="{CONNECT}">{_bst("%%%")}</RelayAccessToken>',
            "base64",
        ),
        (
            f'<RelayAccessToken xmlns="{CONNECT}">{_bst("/w==")}</RelayAccessToken>',
            "UTF-8",
        ),
        (
            f'<RelayAccessToken xmlns="{CONNECT}">{BST}{BST}</RelayAccessToken>',
            "exactly one",
        ),
        (
            f'<RelayAccessToken xmlns="{CONNECT}">{_bst(B64, ValueType="urn:jwt")}</RelayAccessToken>',
            "ValueType",
        ),
        (
            (
                f'<RelayAccessToken xmlns="{CONNECT}">{_bst(B64, EncodingType="urn:hex")}'
                "</RelayAccessToken>"
            ),
            "EncodingType",
        ),
    ],
)
def test_invalid_tokens(inner: str, message: str) -> None:
    with pytest.raises(InvalidHeader, match=message):
        extract_relay_token(_in_header(inner))


def test_token_without_optional_attributes_and_wrapped_base64() -> None:
    wrapped = B64[:10] + "\r\n  " + B64[10:]
    match = extract_relay_token(
        _in_header(
            f'<RelayAccessToken xmlns="{CONNECT}">{_bst(wrapped)}</RelayAccessToken>'
        )
    )
    assert match is not None and match.token == TOKEN


def test_dtd_is_refused() -> None:
    doc = (
        f'<!DOCTYPE s:Envelope [<!ENTITY t "{TOKEN_EL.replace(chr(34), chr(39))}">]>'
        f'<s:Envelope xmlns:s="{S12}"><s:Header>&t;</s:Header><s:Body/></s:Envelope>'
    )
    with pytest.raises(MalformedXml, match="DTD"):
        extract_relay_token(doc.encode())


@pytest.mark.parametrize(
    "data",
    [
        (
            '<?xml version="1.0" encoding="ISO-8859-1"?>'
            + _in_header(TOKEN_EL).decode()
        ).encode("latin-1"),
        _in_header(TOKEN_EL).decode().encode("utf-16"),
    ],
)
def test_other_encodings_refused(data: bytes) -> None:
    with pytest.raises(MalformedXml, match="only UTF-8"):
        extract_relay_token(data)


def test_not_an_envelope() -> None:
    with pytest.raises(NotAnEnvelope):
        extract_relay_token(f"<x>{TOKEN_EL}</x>".encode())


_ws = st.text(alphabet=" \t\r\n", max_size=3)
_prefix = st.from_regex(r"[a-z][a-z0-9]{0,4}", fullmatch=True).filter(
    lambda p: not p.startswith("xml")
)
_filler = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="<&]>-"
    ),
    max_size=12,
)


@given(
    ws=st.lists(_ws, min_size=8, max_size=8),
    env_prefix=_prefix,
    token_prefix=st.none() | _prefix,
    declare_on_envelope=st.booleans(),
    version_ns=st.sampled_from([S11, S12]),
    filler=_filler,
    with_decl=st.booleans(),
)
def test_extract_strip_property(
    ws: list[str],
    env_prefix: str,
    token_prefix: str | None,
    declare_on_envelope: bool,
    version_ns: str,
    filler: str,
    with_decl: bool,
) -> None:
    assume(token_prefix != env_prefix)
    tp = f"{token_prefix}:" if token_prefix else ""
    decl_attr = f'xmlns{":" + token_prefix if token_prefix else ""}="{CONNECT}"'
    on_env = f" {decl_attr}" if declare_on_envelope and token_prefix else ""
    on_el = "" if on_env else f" {decl_attr}"
    element = (
        f"<{tp}RelayAccessToken{ws[0]}{on_el}{ws[1]}>{ws[2]}{BST}{ws[3]}"
        f"</{tp}RelayAccessToken{ws[4]}>"
    )
    p = env_prefix
    doc = (
        ('<?xml version="1.0" encoding="utf-8"?>' if with_decl else "")
        + f'{ws[5]}<!--{filler}--><{p}:Envelope xmlns:{p}="{version_ns}"{on_env}>'
        + f"<{p}:Header{ws[6]}><h:N xmlns:h='urn:h'>{filler}</h:N>{ws[7]}{element}"
        + f"</{p}:Header><{p}:Body><m:X xmlns:m='urn:m'>{filler}</m:X></{p}:Body></{p}:Envelope>"
    )
    _check(doc, element)
