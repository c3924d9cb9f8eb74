"""SOAP 1.1 / 1.2 envelopes and the hardened XML parser.

Untrusted bytes go through :func:`parse_xml`, which refuses DTDs outright (so no
entity expansion, no external fetches), then :meth:`Envelope.from_element`
checks the SOAP structure::

    <soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">
      <soap:Header>...header blocks...</soap:Header>   (optional, first)
      <soap:Body>...payload...</soap:Body>             (required)
    </soap:Envelope>
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from soap import ns
from soap.exceptions import MalformedXml, NotAnEnvelope

__all__ = [
    "Envelope",
    "SoapVersion",
    "build_envelope",
    "ensure_header",
    "parse_xml",
]

#: Prefix used for the envelope namespace in documents built here.
ENV_PREFIX = "soap"


class SoapVersion(enum.Enum):
    """A SOAP version, with its envelope namespace and HTTP media type."""

    SOAP11 = (ns.SOAP11_ENV, "text/xml")
    SOAP12 = (ns.SOAP12_ENV, "application/soap+xml")

    @property
    def namespace(self) -> str:
        """The envelope namespace URI."""
        return self.value[0]

    @property
    def content_type(self) -> str:
        """The media type (without parameters) used over HTTP."""
        return self.value[1]

    def qname(self, local: str) -> str:
        """Return ``{envelope-ns}local`` in Clark notation."""
        return f"{{{self.namespace}}}{local}"

    @classmethod
    def from_content_type(cls, content_type: str) -> SoapVersion | None:
        """Map an HTTP ``Content-Type`` value to a SOAP version.

        Parameters (``charset``, ``action``...) are ignored and the media type is
        compared case-insensitively, so ``Application/SOAP+XML; charset=utf-8;
        action="urn:x"`` gives :attr:`SOAP12`.

        Args:
            content_type: The header value.

        Returns:
            The version, or None when the media type is not a SOAP one.
        """
        media_type = content_type.split(";", 1)[0].strip().lower()
        for version in cls:
            if version.content_type == media_type:
                return version
        return None

    @classmethod
    def from_namespace(cls, namespace: str | None) -> SoapVersion | None:
        """Return the version whose envelope namespace is ``namespace``, or None."""
        for version in cls:
            if version.namespace == namespace:
                return version
        return None


#: Each version by its ``Envelope`` tag, and its ``Header`` and ``Body`` tags (looked up per message).
_BY_ENVELOPE_TAG = {version.qname("Envelope"): version for version in SoapVersion}
_HEADER_BODY = {version: (version.qname("Header"), version.qname("Body")) for version in SoapVersion}

#: Matches a prolog (BOM, whitespace, XML declaration, PIs, comments) ending in a
#: DOCTYPE, so DTDs are refused before libxml2 reads them. Possessive: no backtracking.
_DOCTYPE_IN_PROLOG = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:[ \t\r\n]+|<\?.*?\?>|<!--.*?-->)*+<!DOCTYPE", re.DOTALL
)


def _hardened_parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted XML with DTDs, entities and network access refused.

    A document with any DOCTYPE (internal subset or external reference) is
    rejected, so billion-laughs and XXE payloads are never expanded.

    Args:
        data: The raw document.

    Returns:
        The root element.

    Raises:
        MalformedXml: The bytes are not well-formed XML or carry a DTD.
    """
    if _DOCTYPE_IN_PROLOG.match(data):
        raise MalformedXml("DTDs are not allowed in SOAP messages")
    try:
        root = etree.fromstring(data, _hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from exc
    if root is None:  # pragma: no cover - lxml raises for empty input
        raise MalformedXml("empty XML document")
    docinfo = root.getroottree().docinfo
    if (
        docinfo.doctype
        or docinfo.internalDTD is not None
        or docinfo.externalDTD is not None
    ):
        raise MalformedXml("DTDs are not allowed in SOAP messages")
    return root


def _element_children(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


@dataclass(frozen=True)
class Envelope:
    """A checked SOAP envelope.

    Attributes:
        version: SOAP 1.1 or 1.2, from the envelope namespace.
        header: The ``Header`` element, or None when absent.
        body: The ``Body`` element.
        root: The ``Envelope`` element itself.
    """

    version: SoapVersion
    header: etree._Element | None
    body: etree._Element
    root: etree._Element

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse bytes with :func:`parse_xml` and check the envelope structure.

        Raises:
            MalformedXml: See :func:`parse_xml`.
            NotAnEnvelope: See :meth:`from_element`.
        """
        return cls.from_element(parse_xml(data))

    @classmethod
    def from_element(cls, root: etree._Element) -> Envelope:
        """Check that ``root`` is a SOAP envelope and locate Header and Body.

        SOAP 1.1 section 4.1.1: Header, if present, MUST be the first child and
        Body MUST follow it; further children after Body must be namespace
        qualified. SOAP 1.2 part 1 section 5.1: nothing may follow Body.

        Raises:
            NotAnEnvelope: Wrong root, unknown version, or misplaced Header/Body.
        """
        version = _BY_ENVELOPE_TAG.get(root.tag) if isinstance(root.tag, str) else None
        if version is None:
            raise NotAnEnvelope(
                f"root element {etree.QName(root).text!r} is not a SOAP 1.1/1.2 Envelope"
            )
        header_tag, body_tag = _HEADER_BODY[version]
        children = _element_children(root)
        header = None
        if children and children[0].tag == header_tag:
            header = children.pop(0)
        if not children or children[0].tag != body_tag:
            raise NotAnEnvelope("SOAP Envelope has no Body (after the optional Header)")
        _check_trailing(version, children[1:])
        return cls(version=version, header=header, body=children[0], root=root)

    @property
    def body_payload(self) -> etree._Element | None:
        """The first element child of Body, or None for an empty Body."""
        for child in self.body:
            if isinstance(child.tag, str):
                return child
        return None

    @property
    def header_blocks(self) -> tuple[etree._Element, ...]:
        """The element children of Header (empty when there is no Header)."""
        if self.header is None:
            return ()
        return tuple(_element_children(self.header))

    def to_bytes(self) -> bytes:
        """Serialise the envelope as UTF-8 with an XML declaration."""
        return bytes(etree.tostring(self.root, xml_declaration=True, encoding="utf-8"))


def _check_trailing(version: SoapVersion, trailing: list[etree._Element]) -> None:
    for extra in trailing:
        namespace = etree.QName(extra).namespace
        if version is SoapVersion.SOAP12 or namespace in (None, version.namespace):
            raise NotAnEnvelope(f"unexpected element {extra.tag!r} after the SOAP Body")


def build_envelope(
    version: SoapVersion,
    body_children: Iterable[etree._Element],
    header_children: Iterable[etree._Element] = (),
) -> etree._Element:
    """Build a new envelope around the given elements.

    The children are moved into the new tree (lxml semantics); pass copies to
    keep the originals where they are. A Header is written only when there are
    header blocks.

    Example (SOAP 1.1, one body child, no header)::

        <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
          <soap:Body><m:GetSalary xmlns:m="urn:payroll">...</m:GetSalary></soap:Body>
        </soap:Envelope>

    Args:
        version: The SOAP version.
        body_children: Elements to put in Body.
        header_children: Header blocks.

    Returns:
        The Envelope element.
    """
    root = etree.Element(
        version.qname("Envelope"), nsmap={ENV_PREFIX: version.namespace}
    )
    headers = list(header_children)
    if headers:
        etree.SubElement(root, version.qname("Header")).extend(headers)
    etree.SubElement(root, version.qname("Body")).extend(body_children)
    return root


def ensure_header(envelope: Envelope) -> etree._Element:
    """Return the envelope's Header element, inserting an empty one first if absent.

    The :class:`Envelope` value itself is not changed (it is frozen); re-read it
    with :meth:`Envelope.from_element` if its ``header`` attribute is needed.
    """
    if envelope.header is not None:
        return envelope.header
    header = etree.Element(envelope.version.qname("Header"))
    envelope.root.insert(envelope.root.index(envelope.body), header)
    return header
