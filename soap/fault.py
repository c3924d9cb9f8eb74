"""SOAP 1.1 and 1.2 faults, and the relay's own error envelopes.

:class:`Fault` holds the version-neutral meaning; :meth:`Fault.to_element`
writes it for either version. The same fault, ``Fault(FaultCode.CLIENT,
"No such entity", detail=...)``, becomes in SOAP 1.1::

    <soap:Fault>
      <faultcode>soap:Client</faultcode>
      <faultstring xml:lang="en">No such entity</faultstring>
      <detail>...</detail>
    </soap:Fault>

and in SOAP 1.2::

    <soap:Fault>
      <soap:Code><soap:Value>soap:Sender</soap:Value></soap:Code>
      <soap:Reason><soap:Text xml:lang="en">No such entity</soap:Text></soap:Reason>
      <soap:Detail>...</soap:Detail>
    </soap:Fault>

SOAP 1.1 has no subcodes: as in the WS-Addressing 1.0 SOAP binding (section
6), a subcode replaces the whole ``faultcode`` there.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass

from lxml import etree

from soap import ns
from soap.envelope import ENV_PREFIX, Envelope, SoapVersion, build_envelope
from soap.exceptions import InvalidFault

__all__ = [
    "Fault",
    "FaultCode",
    "fault_envelope",
    "find_fault",
    "relay_error_envelope",
]

_LANG = f"{{{ns.XML}}}lang"
#: Prefix declared for a subcode namespace other than the envelope's.
_SUBCODE_PREFIX = "c"


class FaultCode(enum.StrEnum):
    """The top-level fault code, named by meaning rather than by version."""

    CLIENT = "client"
    SERVER = "server"
    VERSION_MISMATCH = "version_mismatch"
    MUST_UNDERSTAND = "must_understand"
    DATA_ENCODING_UNKNOWN = "data_encoding_unknown"

    def local_name(self, version: SoapVersion) -> str:
        """The code's local name in ``version`` (``Client`` vs ``Sender`` ...)."""
        return _LOCAL_NAMES[version][self]

    @classmethod
    def from_local_name(cls, version: SoapVersion, local: str) -> FaultCode | None:
        """Inverse of :meth:`local_name`; SOAP 1.1 ``Client.Sub`` gives CLIENT."""
        if version is SoapVersion.SOAP11:
            local = local.split(".", 1)[0]
        for code, name in _LOCAL_NAMES[version].items():
            if name == local:
                return code
        return None


_LOCAL_NAMES: dict[SoapVersion, dict[FaultCode, str]] = {
    SoapVersion.SOAP11: {
        FaultCode.CLIENT: "Client",
        FaultCode.SERVER: "Server",
        FaultCode.VERSION_MISMATCH: "VersionMismatch",
        FaultCode.MUST_UNDERSTAND: "MustUnderstand",
        # SOAP 1.1 has no DataEncodingUnknown; it is the sender's fault.
        FaultCode.DATA_ENCODING_UNKNOWN: "Client",
    },
    SoapVersion.SOAP12: {
        FaultCode.CLIENT: "Sender",
        FaultCode.SERVER: "Receiver",
        FaultCode.VERSION_MISMATCH: "VersionMismatch",
        FaultCode.MUST_UNDERSTAND: "MustUnderstand",
        FaultCode.DATA_ENCODING_UNKNOWN: "DataEncodingUnknown",
    },
}


@dataclass(frozen=True)
class Fault:
    """A SOAP fault, independent of the SOAP version.

    Attributes:
        code: Who is at fault (client/sender or server/receiver, or a special code).
        reason: Human-readable text (``faultstring`` / ``Reason/Text``).
        subcode: Optional application subcode (SOAP 1.2 first-level ``Subcode``).
        detail: Optional single detail entry, the child of ``detail``/``Detail``.
        actor: ``faultactor`` (1.1) / ``Role`` (1.2) URI.
        lang: ``xml:lang`` of the reason text.
    """

    code: FaultCode
    reason: str
    subcode: etree.QName | None = None
    detail: etree._Element | None = None
    actor: str | None = None
    lang: str = "en"

    def to_element(self, version: SoapVersion) -> etree._Element:
        """Write the fault as a ``Fault`` element of ``version``.

        The detail entry is copied, so the Fault stays usable.
        """
        fault = etree.Element(
            version.qname("Fault"), nsmap={ENV_PREFIX: version.namespace}
        )
        if version is SoapVersion.SOAP11:
            self._fill_soap11(fault)
        else:
            self._fill_soap12(fault)
        return fault

    def _fill_soap11(self, fault: etree._Element) -> None:
        code = etree.QName(ns.SOAP11_ENV, self.code.local_name(SoapVersion.SOAP11))
        _qname_child(fault, "faultcode", code if self.subcode is None else self.subcode)
        _text_child(fault, "faultstring", self.reason).set(_LANG, self.lang)
        if self.actor is not None:
            _text_child(fault, "faultactor", self.actor)
        if self.detail is not None:
            etree.SubElement(fault, "detail").append(copy.deepcopy(self.detail))

    def _fill_soap12(self, fault: etree._Element) -> None:
        version = SoapVersion.SOAP12
        code = etree.SubElement(fault, version.qname("Code"))
        _qname_child(
            code,
            version.qname("Value"),
            etree.QName(version.namespace, self.code.local_name(version)),
        )
        if self.subcode is not None:
            subcode = etree.SubElement(code, version.qname("Subcode"))
            _qname_child(subcode, version.qname("Value"), self.subcode)
        reason = etree.SubElement(fault, version.qname("Reason"))
        _text_child(reason, version.qname("Text"), self.reason).set(_LANG, self.lang)
        if self.actor is not None:
            _text_child(fault, version.qname("Role"), self.actor)
        if self.detail is not None:
            etree.SubElement(fault, version.qname("Detail")).append(
                copy.deepcopy(self.detail)
            )

    @classmethod
    def from_element(cls, fault: etree._Element) -> Fault:
        """Read a SOAP 1.1 or 1.2 ``Fault`` element.

        A SOAP 1.1 ``faultcode`` outside the envelope namespace is kept as the
        subcode, with code SERVER. Nested 1.2 subcodes below the first level and
        detail entries after the first are dropped.

        Raises:
            InvalidFault: Not a Fault, or a required part is missing.
        """
        qname = etree.QName(fault)
        version = SoapVersion.from_namespace(qname.namespace)
        if version is None or qname.localname != "Fault":
            raise InvalidFault(f"{qname.text!r} is not a SOAP Fault element")
        if version is SoapVersion.SOAP11:
            return _parse_soap11(fault)
        return _parse_soap12(fault)


def _text_child(parent: etree._Element, tag: str, text: str) -> etree._Element:
    child = etree.SubElement(parent, tag)
    child.text = text
    return child


def _qname_child(
    parent: etree._Element, tag: str, value: etree.QName
) -> etree._Element:
    """Add ``<tag>prefix:local</tag>``, declaring a prefix on ``tag`` unless one is in scope."""
    if value.namespace is not None and parent.nsmap.get(ENV_PREFIX) == value.namespace:
        child = etree.SubElement(parent, tag)
        child.text = f"{ENV_PREFIX}:{value.localname}"
    elif value.namespace is None:
        child = etree.SubElement(parent, tag)
        child.text = value.localname
    else:
        child = etree.SubElement(parent, tag, nsmap={_SUBCODE_PREFIX: value.namespace})
        child.text = f"{_SUBCODE_PREFIX}:{value.localname}"
    return child


def _resolve_qname(element: etree._Element) -> etree.QName:
    """Resolve the QName written as text of ``element`` against its in-scope namespaces."""
    text = (element.text or "").strip()
    prefix, _, local = text.rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    if not local or (prefix and namespace is None):
        raise InvalidFault(f"fault code {text!r} is not a resolvable QName")
    return etree.QName(namespace, local)


def _required(parent: etree._Element, path: str) -> etree._Element:
    found = parent.find(path, namespaces={ENV_PREFIX: ns.SOAP12_ENV})
    if found is None:
        raise InvalidFault(f"SOAP Fault has no {path.replace(ENV_PREFIX + ':', '')}")
    return found


def _first_child(parent: etree._Element | None) -> etree._Element | None:
    if parent is None:
        return None
    return next((child for child in parent if isinstance(child.tag, str)), None)


def _parse_soap11(fault: etree._Element) -> Fault:
    code_name = _resolve_qname(_required(fault, "faultcode"))
    code = None
    if code_name.namespace == ns.SOAP11_ENV:
        code = FaultCode.from_local_name(SoapVersion.SOAP11, code_name.localname)
    reason = _required(fault, "faultstring")
    return Fault(
        code=code or FaultCode.SERVER,
        reason=reason.text or "",
        subcode=None if code else code_name,
        detail=_first_child(fault.find("detail")),
        actor=fault.findtext("faultactor"),
        lang=reason.get(_LANG, "en"),
    )


def _parse_soap12(fault: etree._Element) -> Fault:
    value = _resolve_qname(_required(fault, "soap:Code/soap:Value"))
    code = FaultCode.from_local_name(SoapVersion.SOAP12, value.localname)
    if code is None or value.namespace != ns.SOAP12_ENV:
        raise InvalidFault(f"unknown SOAP 1.2 fault code {value.text!r}")
    sub_value = fault.find(
        "soap:Code/soap:Subcode/soap:Value", {ENV_PREFIX: ns.SOAP12_ENV}
    )
    text = _required(fault, "soap:Reason/soap:Text")
    return Fault(
        code=code,
        reason=text.text or "",
        subcode=None if sub_value is None else _resolve_qname(sub_value),
        detail=_first_child(fault.find("soap:Detail", {ENV_PREFIX: ns.SOAP12_ENV})),
        actor=fault.findtext("soap:Role", namespaces={ENV_PREFIX: ns.SOAP12_ENV}),
        lang=text.get(_LANG, "en"),
    )


def fault_envelope(version: SoapVersion, fault: Fault) -> bytes:
    """Serialise a complete envelope whose Body holds ``fault``.

    Returns:
        UTF-8 bytes with an XML declaration.
    """
    root = build_envelope(version, [fault.to_element(version)])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def find_fault(envelope: Envelope) -> Fault | None:
    """Return the Fault carried in the envelope's Body, or None.

    Raises:
        InvalidFault: The Body holds a Fault that cannot be read.
    """
    payload = envelope.body_payload
    if payload is None or payload.tag != envelope.version.qname("Fault"):
        return None
    return Fault.from_element(payload)


def relay_error_envelope(
    version: SoapVersion,
    *,
    sender_side: bool,
    message: str,
    code: str,
    tracking_id: str,
) -> bytes:
    """Build the SOAP fault body of an error the relay itself returns (PROTOCOL.md section 5).

    The reason is ``"<message> TrackingId:<id>"`` (as Azure Relay writes it)
    and the detail is::

        <RelayError xmlns="urn:soap-relay:error">
          <Code>EndpointNotFound</Code><TrackingId>...</TrackingId>
        </RelayError>

    Args:
        version: The SOAP version of the failed request.
        sender_side: True for 4xx errors (Client/Sender), False for 5xx (Server/Receiver).
        message: One-line error message.
        code: Machine-readable error code.
        tracking_id: The id also written to the relay log.

    Returns:
        UTF-8 envelope bytes with an XML declaration.
    """
    detail = etree.Element(
        f"{{{ns.RELAY_ERROR}}}RelayError", nsmap={None: ns.RELAY_ERROR}
    )
    _text_child(detail, f"{{{ns.RELAY_ERROR}}}Code", code)
    _text_child(detail, f"{{{ns.RELAY_ERROR}}}TrackingId", tracking_id)
    fault = Fault(
        code=FaultCode.CLIENT if sender_side else FaultCode.SERVER,
        reason=f"{message} TrackingId:{tracking_id}",
        detail=detail,
    )
    return fault_envelope(version, fault)
