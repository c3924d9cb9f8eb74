"""The ``wsse:Security`` header block and the ``wsu:Id`` attributes signatures point at.

One Security header per message, for the ultimate receiver::

    <soap:Header>
      <wsse:Security soap:mustUnderstand="1"
          xmlns:wsse="...wssecurity-secext-1.0.xsd" xmlns:wsu="...wssecurity-utility-1.0.xsd">
        <wsu:Timestamp wsu:Id="TS-1">...</wsu:Timestamp>
        <wsse:BinarySecurityToken wsu:Id="X509-1" ...>MIIC...</wsse:BinarySecurityToken>
        <ds:Signature>...<ds:Reference URI="#TS-1">...</ds:Signature>
      </wsse:Security>
    </soap:Header>
    <soap:Body wsu:Id="id-2">...</soap:Body>

:func:`ensure_security_header` and :func:`ensure_id` change a message in place::

    before:
    <soap:Envelope><soap:Body>...</soap:Body></soap:Envelope>

    after ensure_security_header(envelope) and ensure_id(envelope.body):
    <soap:Envelope>
      <soap:Header><wsse:Security soap:mustUnderstand="1"/></soap:Header>
      <soap:Body wsu:Id="id-6b1f...">...</soap:Body>
    </soap:Envelope>

A reference ``URI="#TS-1"`` names the element whose Id is ``TS-1``. XML has no
single Id attribute, and signxml matches any attribute whose local name is
``Id``, ``ID`` or ``id`` (and ``xml:id``), so :func:`element_by_id` counts all
of them: an Id value that two elements carry is refused, whatever the
attribute's prefix, so a signed element cannot be shadowed by a twin.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

from lxml import etree

from soap import ns
from soap.envelope import ENV_PREFIX, Envelope, ensure_header
from soap.exceptions import InvalidSecurity

__all__ = [
    "SECURITY",
    "WSU_ID",
    "element_by_id",
    "ensure_id",
    "ensure_security_header",
    "find_security_header",
    "new_id",
]

#: Clark name of the ``wsse:Security`` header block.
SECURITY = f"{{{ns.WSSE}}}Security"
#: Clark name of the ``wsu:Id`` attribute.
WSU_ID = f"{{{ns.WSU}}}Id"
_XML_ID = f"{{{ns.XML}}}id"
_ID_NAMES = frozenset({"Id", "ID", "id"})
#: Prefixes declared on a Security header built here.
NSMAP = {"wsse": ns.WSSE, "wsu": ns.WSU}


def new_id(prefix: str = "id") -> str:
    """A fresh, document-unique Id value such as ``id-6b1f...``."""
    return f"{prefix}-{uuid.uuid4()}"


def find_security_header(envelope: Envelope) -> etree._Element | None:
    """Return the envelope's ``wsse:Security`` header block, or None.

    Only a direct child of the SOAP Header counts.

    Raises:
        InvalidSecurity: There is more than one. WS-Security lets each actor
            have its own, but this receiver processes exactly one and will not
            guess which of several a signature verifier would pick.
    """
    blocks = [block for block in envelope.header_blocks if block.tag == SECURITY]
    if len(blocks) > 1:
        raise InvalidSecurity("the message has more than one wsse:Security header")
    return blocks[0] if blocks else None


def ensure_security_header(envelope: Envelope) -> etree._Element:
    """Return the Security header, adding ``<wsse:Security mustUnderstand="1">`` if absent."""
    found = find_security_header(envelope)
    if found is not None:
        return found
    nsmap = {ENV_PREFIX: envelope.version.namespace, **NSMAP}
    security = etree.SubElement(ensure_header(envelope), SECURITY, nsmap=nsmap)
    security.set(envelope.version.qname("mustUnderstand"), "1")
    return security


def ensure_id(element: etree._Element, factory: Callable[[], str] = new_id) -> str:
    """Return the element's ``wsu:Id``, setting a new one from ``factory`` if absent."""
    value: str | None = element.get(WSU_ID)
    if not value:
        value = factory()
        element.set(WSU_ID, value)
    return value


def _id_attributes(root: etree._Element) -> Iterator[tuple[etree._Element, str]]:
    for element in root.iter(etree.Element):
        for name, value in element.attrib.items():
            if name == _XML_ID or etree.QName(name).localname in _ID_NAMES:
                yield element, value


def element_by_id(root: etree._Element, value: str) -> etree._Element:
    """The one element whose Id-like attribute equals ``value``.

    Raises:
        InvalidSecurity: No element, or more than one (an Id collision).
    """
    found = [element for element, candidate in _id_attributes(root) if candidate == value]
    if not found:
        raise InvalidSecurity(f"no element has the Id {value!r}")
    if len(found) > 1:
        raise InvalidSecurity(f"the Id {value!r} is used more than once")
    return found[0]
