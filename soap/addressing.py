"""WS-Addressing 1.0 message headers (the subset WS2007HttpRelayBinding uses).

Client side, :func:`stamp_request` (and :class:`AddressingHook`, a composable
``egress``/``ingress`` hook in zeep plugin style) stamps a request's tree.
Service side, :func:`stamp_reply` stamps the reply tree the service produced
(:func:`add_reply_addressing` does it on bytes). Both work on the parsed tree:
nothing here parses or serialises a message. A request leaving the client::

    before:
    <soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">
      <soap:Body><m:GetSalary xmlns:m="urn:payroll">...</m:GetSalary></soap:Body>
    </soap:Envelope>

    after egress (HTTP Content-Type action="urn:payroll/GetSalary"):
    <soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">
      <soap:Header>
        <wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing"
            soap:mustUnderstand="1">urn:payroll/GetSalary</wsa:Action>
        <wsa:MessageID xmlns:wsa="...">urn:uuid:6b1f...</wsa:MessageID>
        <wsa:ReplyTo xmlns:wsa="...">
          <wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address>
        </wsa:ReplyTo>
        <wsa:To xmlns:wsa="..." soap:mustUnderstand="1">http://relay/payroll</wsa:To>
      </soap:Header>
      <soap:Body>...</soap:Body>
    </soap:Envelope>

and its reply gets ``Action``, ``RelatesTo`` (the request's MessageID) and
``To`` (anonymous). As WCF does, ``Action`` and ``To`` carry
``mustUnderstand="1"``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import SplitResult, unquote, urlsplit

from lxml import etree

from soap import ns
from soap.envelope import ENV_PREFIX, Envelope, SoapVersion, ensure_header
from soap.exceptions import InvalidHeader, MissingAction

__all__ = [
    "ANONYMOUS",
    "FAULT_ACTION",
    "AddressingHeaders",
    "AddressingHook",
    "action_from_http",
    "add_reply_addressing",
    "new_message_id",
    "reply_headers",
    "same_address",
    "stamp_reply",
    "stamp_request",
]

#: The anonymous address: "reply on the HTTP back-channel".
ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
#: Action of SOAP-defined faults (WS-Addressing 1.0 SOAP Binding, section 6).
FAULT_ACTION = "http://www.w3.org/2005/08/addressing/soap/fault"
_PREFIX = "wsa"
#: Header name -> dataclass field, in the order they are written.
_NAMES = {
    "Action": "action",
    "MessageID": "message_id",
    "RelatesTo": "relates_to",
    "ReplyTo": "reply_to",
    "To": "to",
}
#: Header tag (Clark notation) -> (local name, dataclass field).
_BY_TAG = {f"{{{ns.WSA}}}{local}": (local, name) for local, name in _NAMES.items()}
_MUST_UNDERSTAND = frozenset({"Action", "To"})
_TAGS = {local: f"{{{ns.WSA}}}{local}" for local in _NAMES}
_ADDRESS_TAG = f"{{{ns.WSA}}}Address"
_WSA_NSMAP = {_PREFIX: ns.WSA}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def new_message_id() -> str:
    """A fresh ``urn:uuid:`` message id."""
    return f"urn:uuid:{uuid.uuid4()}"


@dataclass(frozen=True)
class AddressingHeaders:
    """The WS-Addressing message addressing properties in use here.

    Attributes:
        to: ``wsa:To`` destination URI.
        action: ``wsa:Action`` URI.
        message_id: ``wsa:MessageID``.
        relates_to: ``wsa:RelatesTo`` (reply relationship).
        reply_to: ``wsa:ReplyTo/wsa:Address``.
    """

    to: str | None = None
    action: str | None = None
    message_id: str | None = None
    relates_to: str | None = None
    reply_to: str | None = None

    @classmethod
    def from_header(cls, header: etree._Element | None) -> AddressingHeaders:
        """Read the addressing headers among a SOAP Header's children.

        Unknown WS-Addressing headers (``FaultTo``, ``From``...) are ignored.

        Raises:
            InvalidHeader: A header is repeated, empty, or ReplyTo has no Address.
        """
        values: dict[str, str] = {}
        for block in () if header is None else header:
            known = _BY_TAG.get(block.tag) if isinstance(block.tag, str) else None
            if known is None:
                continue
            local, name = known
            if name in values:
                raise InvalidHeader(f"wsa:{local} appears more than once")
            values[name] = _header_value(block, local)
        return cls(**values)

    def to_elements(self, version: SoapVersion) -> list[etree._Element]:
        """Write the set properties as header blocks for a ``version`` envelope."""
        elements = []
        for local, name in _NAMES.items():
            value = getattr(self, name)
            if value is not None:
                elements.append(_header_element(version, local, value))
        return elements


def _header_value(block: etree._Element, local: str) -> str:
    """The text of a header, or of ``ReplyTo``'s ``Address``."""
    holder = block.find(f"{{{ns.WSA}}}Address") if local == "ReplyTo" else block
    if holder is None:
        raise InvalidHeader("wsa:ReplyTo has no wsa:Address")
    value = (holder.text or "").strip()
    if not value:
        raise InvalidHeader(f"wsa:{local} is empty")
    return value


def _header_element(
    version: SoapVersion, local: str, value: str, parent: etree._Element | None = None
) -> etree._Element:
    """A header block; made inside ``parent`` when given (no move between documents)."""
    tag = f"{{{ns.WSA}}}{local}"
    nsmap = {_PREFIX: ns.WSA, ENV_PREFIX: version.namespace}
    if parent is None:
        element = etree.Element(tag, nsmap=nsmap)
    else:  # mustUnderstand takes the envelope's own prefix, as a moved element's did
        plain = local not in _MUST_UNDERSTAND or any(
            prefix and uri == version.namespace for prefix, uri in parent.nsmap.items())
        element = etree.SubElement(parent, tag, nsmap=_WSA_NSMAP if plain else nsmap)
    if local == "ReplyTo":
        etree.SubElement(element, f"{{{ns.WSA}}}Address").text = value
    else:
        element.text = value
    if local in _MUST_UNDERSTAND:
        element.set(version.qname("mustUnderstand"), "1")
    return element


def _set_headers(envelope: Envelope, headers: AddressingHeaders) -> None:
    """Replace the envelope's WS-Addressing headers named in ``headers``.

    A Header added since ``envelope`` was read without one (by an earlier stamp)
    is looked up and reused, never doubled.  The blocks are the ones
    :func:`_header_element` makes inside the Header; what they share (the
    namespace maps, whether ``mustUnderstand`` can use the envelope's prefix) is
    decided once per envelope, not per block.
    """
    header = envelope.header
    if header is None or header.getparent() is not envelope.root:
        header = ensure_header(Envelope.from_element(envelope.root))
    if len(header):
        for block in list(header):
            if block.tag in _BY_TAG:
                header.remove(block)
    version = envelope.version
    namespace = version.namespace
    declared = any(prefix and uri == namespace for prefix, uri in header.nsmap.items())
    must_nsmap = _WSA_NSMAP if declared else {_PREFIX: ns.WSA, ENV_PREFIX: namespace}
    must_understand = f"{{{namespace}}}mustUnderstand"
    for local, name in _NAMES.items():
        value = getattr(headers, name)
        if value is None:
            continue
        must = local in _MUST_UNDERSTAND
        element = etree.SubElement(header, _TAGS[local], nsmap=must_nsmap if must else _WSA_NSMAP)
        if local == "ReplyTo":
            etree.SubElement(element, _ADDRESS_TAG).text = value
        else:
            element.text = value
        if must:
            element.set(must_understand, "1")


def action_from_http(
    version: SoapVersion, http_headers: Mapping[str, str]
) -> str | None:
    """The SOAP action an HTTP request carries, or None.

    SOAP 1.1 sends it in the ``SOAPAction`` header (quoted); SOAP 1.2 in the
    ``action`` parameter of ``Content-Type`` (RFC 3902).
    """
    lowered = {key.lower(): value for key, value in http_headers.items()}
    if version is SoapVersion.SOAP11:
        action = lowered.get("soapaction", "").strip().strip('"')
    else:
        message = Message()
        message["Content-Type"] = lowered.get("content-type", "")
        param = message.get_param("action")
        action = param if isinstance(param, str) else ""
    return action or None


def reply_headers(request: AddressingHeaders, action: str) -> AddressingHeaders:
    """Addressing headers for the reply to ``request`` on the HTTP back-channel."""
    return AddressingHeaders(to=ANONYMOUS, action=action, relates_to=request.message_id)


def stamp_reply(reply: Envelope, request_headers: AddressingHeaders, action: str) -> None:
    """Set a reply tree's ``Action``, ``RelatesTo`` and ``To`` (in place).

    Args:
        reply: The reply envelope (e.g. the tree Spyne built).
        request_headers: The request's headers (:meth:`AddressingHeaders.from_header`).
        action: Action of a normal reply; a Fault reply gets :data:`FAULT_ACTION`.
    """
    payload = reply.body_payload
    if payload is not None and payload.tag == reply.version.qname("Fault"):
        action = FAULT_ACTION
    _set_headers(reply, reply_headers(request_headers, action))


def add_reply_addressing(
    response_envelope: bytes, request_headers: AddressingHeaders, action: str
) -> bytes:
    """:func:`stamp_reply` on a response given as bytes (parsed here, serialised again).

    Args:
        response_envelope: The response envelope bytes (e.g. from a WSGI app).
        request_headers: The request's headers (:meth:`AddressingHeaders.from_header`).
        action: Action of a normal reply; a Fault reply gets :data:`FAULT_ACTION`.

    Returns:
        The UTF-8 response with ``Action``, ``RelatesTo`` and ``To`` set.

    Raises:
        MalformedXml: The response is not well-formed.
        NotAnEnvelope: The response is not a SOAP envelope.
    """
    envelope = Envelope.from_bytes(response_envelope)
    stamp_reply(envelope, request_headers, action)
    return envelope.to_bytes()


def stamp_request(envelope: Envelope, *, to: str, action: str, message_id: str) -> None:
    """Set a request tree's ``To``, ``Action``, ``MessageID`` and ``ReplyTo`` (anonymous).

    Headers of those names already present are replaced, so stamping twice
    leaves one of each.
    """
    headers = AddressingHeaders(to=to, action=action, message_id=message_id, reply_to=ANONYMOUS)
    _set_headers(envelope, headers)


@dataclass(frozen=True)
class AddressingHook:
    """Client-side WS-Addressing hook: ``egress`` stamps requests, ``ingress`` checks replies.

    Attributes:
        to: The destination address (the relay address the client calls).
        action: Fixed action; by default it is taken from the HTTP headers.
        id_factory: Returns each request's MessageID.
    """

    to: str
    action: str | None = None
    id_factory: Callable[[], str] = field(default=new_message_id)

    def egress(
        self, envelope: etree._Element, http_headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Add To, Action, MessageID and ReplyTo (anonymous) to a request.

        Raises:
            MissingAction: No action was configured or found in ``http_headers``.
        """
        parsed = Envelope.from_element(envelope)
        action = self.action or action_from_http(parsed.version, http_headers)
        if action is None:
            raise MissingAction(
                "no SOAP action for the WS-Addressing wsa:Action header"
            )
        stamp_request(parsed, to=self.to, action=action, message_id=self.id_factory())
        return envelope, http_headers

    def ingress(
        self, envelope: etree._Element, http_headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Check that a reply's addressing headers are readable.

        Raises:
            NotAnEnvelope: The reply is not a SOAP envelope.
            InvalidHeader: See :meth:`AddressingHeaders.from_header`.
        """
        AddressingHeaders.from_header(Envelope.from_element(envelope).header)
        return envelope, http_headers


def same_address(to: str, address: str, *, include_host: bool = False) -> bool:
    """Whether a request's ``wsa:To`` names the service at ``address``, as WCF decides it.

    WCF's default address filter (``EndpointAddressMessageFilter`` with
    ``includeHostNameInComparison`` false, whatever the binding's
    ``HostNameComparisonMode``) compares the scheme, the port and the path, the
    path without case, percent-escapes or a trailing slash; it ignores the host
    name (``localhost``, ``127.0.0.1`` and a machine name are one service), the
    query, the fragment and any user info::

        same_address("http://LOCALHOST:9350/Payroll/", "http://127.0.0.1:9350/payroll")  # True
        same_address("http://127.0.0.1:9351/payroll", "http://127.0.0.1:9350/payroll")   # False

    Args:
        to: The request's ``wsa:To``.
        address: The service's address, as the request reached it.
        include_host: Compare the host names too, without case (WCF's
            ``includeHostNameInComparison``).
    """
    if to == address:
        return True
    try:
        mine, theirs = urlsplit(to.strip()), urlsplit(address.strip())
        ports = (_port(mine), _port(theirs))
    except ValueError:
        return False
    if mine.scheme.lower() != theirs.scheme.lower() or ports[0] != ports[1]:
        return False
    if include_host and (mine.hostname or "") != (theirs.hostname or ""):
        return False  # urlsplit gives hostnames in lower case
    return _path(mine.path) == _path(theirs.path)


def _port(parts: SplitResult) -> int | None:
    """The URL's port, or its scheme's default one (None for a scheme without one).

    Raises:
        ValueError: The port is not a number from 0 to 65535.
    """
    port = parts.port
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme.lower())


def _path(path: str) -> str:
    path = unquote(path).casefold()
    return path.removesuffix("/")
