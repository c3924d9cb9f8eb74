"""The WCF ``RelayAccessToken`` SOAP header (PROTOCOL.md section 6).

WCF SOAP relay bindings send the sender's SAS token in a header block; the relay
validates it and removes exactly that element before forwarding::

    before:
    <s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">
      <s:Header>
        <RelayAccessToken xmlns="http://schemas.microsoft.com/netservices/2009/05/servicebus/connect">
          <wsse:BinarySecurityToken wsu:Id="uuid:..." ValueType="...swt-token-profile-1.0"
              EncodingType="...#Base64Binary">U2hhcmVkQWNjZXNzU2ln...</wsse:BinarySecurityToken>
        </RelayAccessToken>
        <a:To s:mustUnderstand="1">http://relay/payroll</a:To>
      </s:Header>
      <s:Body>...</s:Body>
    </s:Envelope>

    after (every other byte unchanged, so signed parts still verify):
    <s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">
      <s:Header>
        <!-- only the element went; the whitespace around it stays -->
        <a:To s:mustUnderstand="1">http://relay/payroll</a:To>
      </s:Header>
      <s:Body>...</s:Body>
    </s:Envelope>

lxml gives no byte offsets, so :func:`extract_relay_token` reads the token from
the hardened lxml parse and finds the element's byte span with a small
namespace-aware tag scanner over the raw bytes (which skips comments, CDATA
sections and processing instructions). The two views must agree on exactly one
element, or :class:`~soap.exceptions.InvalidHeader` is raised.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lxml import etree

from soap import ns
from soap.envelope import Envelope, ensure_header, parse_xml
from soap.exceptions import InvalidHeader, MalformedXml

__all__ = [
    "RelayTokenHook",
    "RelayTokenMatch",
    "extract_relay_token",
    "relay_token_header",
]

_TOKEN_TAG = f"{{{ns.RELAY_CONNECT}}}RelayAccessToken"
_BST_TAG = f"{{{ns.WSSE}}}BinarySecurityToken"
_TARGET = (ns.RELAY_CONNECT, "RelayAccessToken")
_ACCEPTED_ENCODINGS = frozenset({"UTF-8", "UTF8", "US-ASCII", "ASCII"})

#: One markup token of a document already known to be well-formed (so ``\s`` can
#: only meet XML whitespace, and text between tokens never holds a ``<``).
_MARKUP = re.compile(
    rb"""
      <!--.*?-->                                    # comment
    | <!\[CDATA\[.*?\]\]>                          # CDATA section
    | <\?.*?\?>                                     # XML declaration or PI
    | </(?P<end>[^\s/>=<"'?!]+)\s*>                 # end tag
    | <(?P<start>[^\s/>=<"'?!]+)                    # start tag
      (?P<attrs>(?:\s+[^\s/>=<"'?!]+\s*=\s*(?:"[^"]*"|'[^']*'))*)
      \s*(?P<empty>/?)>
    """,
    re.DOTALL | re.VERBOSE,
)
_ATTRIBUTE = re.compile(rb"""\s+([^\s/>=<"'?!]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def _new_token_id() -> str:
    return f"uuid:{uuid.uuid4()}"


def relay_token_header(
    token: str, id_factory: Callable[[], str] = _new_token_id
) -> etree._Element:
    """Build the ``RelayAccessToken`` header block carrying ``token``.

    Args:
        token: The SAS token string (``SharedAccessSignature sr=...``).
        id_factory: Returns the ``wsu:Id`` (default ``uuid:<random uuid4>``).

    Returns:
        The ``RelayAccessToken`` element, ready to append to a SOAP Header.
    """
    header = etree.Element(_TOKEN_TAG, nsmap={None: ns.RELAY_CONNECT})
    bst = etree.SubElement(header, _BST_TAG, nsmap={"wsse": ns.WSSE, "wsu": ns.WSU})
    bst.set(f"{{{ns.WSU}}}Id", id_factory())
    bst.set("ValueType", ns.SWT_TOKEN)
    bst.set("EncodingType", ns.BASE64_BINARY)
    bst.text = base64.b64encode(token.encode("utf-8")).decode("ascii")
    return header


@dataclass(frozen=True)
class RelayTokenHook:
    """Egress hook adding a ``RelayAccessToken`` header (client side).

    Attributes:
        token_provider: Returns the current SAS token for each message.
        id_factory: Returns the ``wsu:Id`` of each token element.
    """

    token_provider: Callable[[], str]
    id_factory: Callable[[], str] = field(default=_new_token_id)

    def egress(
        self, envelope: etree._Element, http_headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Append the token header to ``envelope`` (changed in place and returned)."""
        header = ensure_header(Envelope.from_element(envelope))
        header.append(relay_token_header(self.token_provider(), self.id_factory))
        return envelope, http_headers


@dataclass(frozen=True)
class RelayTokenMatch:
    """A ``RelayAccessToken`` found in an envelope.

    Attributes:
        token: The decoded SAS token string.
        start: Byte offset of the element's start tag in the envelope.
        end: Byte offset just past the element's end tag.
    """

    token: str = field(repr=False)
    start: int
    end: int

    def strip(self, envelope: bytes) -> bytes:
        """Return ``envelope`` without the token element, all other bytes unchanged."""
        return envelope[: self.start] + envelope[self.end :]


def extract_relay_token(envelope: bytes) -> RelayTokenMatch | None:
    """Find and decode the ``RelayAccessToken`` header block of a SOAP envelope.

    Only an element in the connect namespace that is a direct child of the SOAP
    1.1/1.2 Header counts, whatever prefix (or default namespace) names it.

    Args:
        envelope: The raw request body (UTF-8 or ASCII).

    Returns:
        The token and its byte span, or None when the Header carries no token.

    Raises:
        MalformedXml: Not well-formed, a DTD, or an encoding other than UTF-8.
        NotAnEnvelope: The body is not a SOAP envelope.
        InvalidHeader: Two tokens, an empty or undecodable token, or the raw
            scan and the parser disagree.
    """
    root = parse_xml(envelope)
    _check_utf8(envelope, root)
    parsed = Envelope.from_element(root)
    elements = [b for b in parsed.header_blocks if b.tag == _TOKEN_TAG]
    if not elements:
        return None
    if len(elements) > 1:
        raise InvalidHeader("more than one RelayAccessToken header")
    token = _read_token(elements[0])
    spans = list(_token_spans(envelope, parsed.version.namespace))
    if len(spans) != 1:
        raise InvalidHeader(
            f"RelayAccessToken located {len(spans)} times in the raw envelope"
        )
    start, end = spans[0]
    return RelayTokenMatch(token=token, start=start, end=end)


def _check_utf8(envelope: bytes, root: etree._Element) -> None:
    """Refuse encodings whose byte offsets the raw scan cannot work with."""
    encoding = (root.getroottree().docinfo.encoding or "").upper()
    # UTF-16/32 without a declaration is reported as UTF-8; NUL never occurs in UTF-8 XML.
    if encoding not in _ACCEPTED_ENCODINGS or b"\x00" in envelope:
        raise MalformedXml(
            f"only UTF-8 envelopes can carry a RelayAccessToken, not {encoding or 'unknown'}"
        )


def _read_token(element: etree._Element) -> str:
    """Decode the SAS token from the ``BinarySecurityToken`` inside ``element``."""
    children = [child for child in element if isinstance(child.tag, str)]
    if len(children) != 1 or children[0].tag != _BST_TAG:
        raise InvalidHeader(
            "RelayAccessToken must hold exactly one wsse:BinarySecurityToken"
        )
    bst = children[0]
    if bst.get("ValueType", ns.SWT_TOKEN) != ns.SWT_TOKEN:
        raise InvalidHeader(
            f"unsupported RelayAccessToken ValueType {bst.get('ValueType')!r}"
        )
    if bst.get("EncodingType", ns.BASE64_BINARY) != ns.BASE64_BINARY:
        raise InvalidHeader(
            f"unsupported RelayAccessToken EncodingType {bst.get('EncodingType')!r}"
        )
    text = "".join((bst.text or "").split())
    try:
        token = base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidHeader("RelayAccessToken is not base64 of a UTF-8 string") from exc
    if not token:
        raise InvalidHeader("RelayAccessToken is empty")
    return token


@dataclass
class _Open:
    """An element open during the raw scan."""

    name: tuple[str | None, str]
    scope: dict[str | None, str]
    start: int


def _token_spans(data: bytes, env_ns: str) -> Iterator[tuple[int, int]]:
    """Yield the byte span of every RelayAccessToken directly under the Header.

    Stops when the Header closes: the token must precede the Body.
    """
    header_path = [(env_ns, "Envelope"), (env_ns, "Header")]
    stack: list[_Open] = []
    for match in _markup(data):
        if match["start"] is not None:
            opened = _open_element(match, stack[-1].scope if stack else {})
            in_header = [item.name for item in stack] == header_path
            if in_header and opened.name == _TARGET and match["empty"]:
                raise InvalidHeader("RelayAccessToken element is empty")
            if not match["empty"]:
                stack.append(opened)
        elif match["end"] is not None:
            closed = stack.pop()
            if closed.name == _TARGET and [item.name for item in stack] == header_path:
                yield closed.start, match.end()
            elif len(stack) == 1 and closed.name == header_path[1]:
                return


def _markup(data: bytes) -> Iterator[re.Match[bytes]]:
    """Yield the markup tokens of a document already known to be well-formed."""
    pos = data.find(b"<")
    while pos != -1:
        match = _MARKUP.match(data, pos)
        if match is None:
            raise MalformedXml(
                f"unexpected markup at byte {pos} while locating RelayAccessToken"
            )
        yield match
        pos = data.find(b"<", match.end())


def _open_element(match: re.Match[bytes], parent_scope: dict[str | None, str]) -> _Open:
    """Resolve a start tag's name against its own and inherited xmlns declarations."""
    scope = parent_scope
    for attr in _ATTRIBUTE.finditer(match["attrs"]):
        name = attr[1].decode("utf-8")
        if name == "xmlns" or name.startswith("xmlns:"):
            if scope is parent_scope:
                scope = dict(parent_scope)
            scope[name[6:] or None] = _attribute_value(
                attr[2] if attr[2] is not None else attr[3]
            )
    prefix, _, local = match["start"].decode("utf-8").rpartition(":")
    namespace = scope.get(prefix or None)
    return _Open(name=(namespace, local), scope=scope, start=match.start())


def _attribute_value(raw: bytes) -> str:
    """XML 1.0 section 3.3.3 attribute-value normalisation for a CDATA attribute."""
    text = (
        raw.decode("utf-8").replace("\r\n", " ").translate({9: " ", 10: " ", 13: " "})
    )
    return html.unescape(text)
