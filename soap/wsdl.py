"""WSDL 1.1 rewriting: relay addresses and one-way operations.

A service behind the relay describes itself with its private address; clients
must see the relay's. :func:`rewrite_addresses` with
``public_base="https://relay.example.com"`` and ``path="/payroll"``::

    before:
    <wsdl:import location="http://10.0.0.5:8000/svc?wsdl=types"/>
    <xsd:import schemaLocation="http://10.0.0.5:8000/svc?xsd=1"/>
    <wsdl:port name="P" binding="tns:B">
      <soap:address location="http://10.0.0.5:8000/svc"/>
    </wsdl:port>

    after:
    <wsdl:import location="https://relay.example.com/payroll?wsdl=types"/>
    <xsd:import schemaLocation="https://relay.example.com/payroll?xsd=1"/>
    <wsdl:port name="P" binding="tns:B">
      <soap:address location="https://relay.example.com/payroll"/>
    </wsdl:port>

An ``xsd:import`` of the XML Schema namespace itself loses its ``schemaLocation``:
every schema processor has that schema built in, and Mono's WCF points it at
``?xsd=`` with an empty name, which answers an HTML help page that zeep then
fails to parse::

    before: <xsd:import schemaLocation="http://10.0.0.5:8000/svc?xsd=" namespace="http://www.w3.org/2001/XMLSchema"/>
    after:  <xsd:import namespace="http://www.w3.org/2001/XMLSchema"/>

:func:`drop_outputs` turns request-response operations into one-way ones (for
NetOnewayRelayBinding / NetEventRelayBinding, whose senders only get 202)::

    before:                                    after:
    <wsdl:operation name="Notify">             <wsdl:operation name="Notify">
      <wsdl:input message="tns:Notify"/>         <wsdl:input message="tns:Notify"/>
      <wsdl:output message="tns:NotifyOut"/>   </wsdl:operation>
    </wsdl:operation>                          (and wsdl:message NotifyOut is gone)
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit, urlunsplit

from lxml import etree

from soap import ns
from soap.envelope import parse_xml
from soap.exceptions import InvalidWsdl, LocalSoapError

__all__ = ["drop_outputs", "rewrite_addresses"]

_ADDRESS_TAGS = frozenset(
    f"{{{uri}}}address" for uri in (ns.WSDL_SOAP11, ns.WSDL_SOAP12, ns.WSDL_HTTP)
)
#: Elements naming another document to fetch, and the attribute that does.
_REFERENCE_ATTRS = {
    f"{{{ns.WSDL}}}import": "location",
    f"{{{ns.XSD}}}import": "schemaLocation",
    f"{{{ns.XSD}}}include": "schemaLocation",
    f"{{{ns.XSD}}}redefine": "schemaLocation",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_Origin = tuple[str, str, int]


def _split(url: str) -> SplitResult | None:
    """Split an absolute http(s) URL, or return None for anything else."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts


def _origin(parts: SplitResult) -> _Origin | None:
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, (parts.hostname or "").lower(), port


def _serialize(root: etree._Element) -> bytes:
    return bytes(
        etree.tostring(root.getroottree(), xml_declaration=True, encoding="utf-8")
    )


class _Rewriter:
    """Maps private URLs onto the public origin, remapping service paths."""

    def __init__(self, public: SplitResult, path: str | None) -> None:
        self.public, self.path = public, path
        self.origins: set[_Origin] = set()
        self.path_map: dict[str, str] = {}

    def add_private(self, parts: SplitResult) -> bool:
        """Record a private URL's origin (and path, when remapping); False if unusable."""
        origin = _origin(parts)
        if origin is None:
            return False
        self.origins.add(origin)
        if self.path is not None:
            self.path_map[parts.path.rstrip("/")] = self.path
        return True

    def address(self, location: str) -> str:
        """Rewrite a service address; its origin becomes a private origin."""
        parts = _split(location)
        if parts is None or not self.add_private(parts):
            return location
        return self._public(parts, parts.path if self.path is None else self.path)

    def reference(self, url: str) -> str:
        """Rewrite an absolute URL on a private origin, else return it unchanged."""
        parts = _split(url)
        if parts is None or _origin(parts) not in self.origins:
            return url
        return self._public(parts, self._remap(parts.path))

    def _remap(self, path: str) -> str:
        """Move ``path`` from under the longest matching old service path to the new one."""
        for old in sorted(self.path_map, key=len, reverse=True):
            new = self.path_map[old]
            if path.rstrip("/") == old:
                return new
            if path.startswith(old + "/"):
                return new.rstrip("/") + path[len(old) :]
        return path

    def _public(self, parts: SplitResult, path: str) -> str:
        return urlunsplit(
            (self.public.scheme, self.public.netloc, path, parts.query, parts.fragment)
        )


def rewrite_addresses(
    wsdl: bytes,
    public_base: str,
    *,
    path: str | None = None,
    private_origins: Iterable[str] = (),
) -> bytes:
    """Point a WSDL (or XSD) at the relay instead of the private service.

    Every ``soap:address``, ``soap12:address`` and ``http:address`` location
    gets ``public_base``'s scheme, host and port (its path kept, or replaced by
    ``path``). ``wsdl:import``/``xsd:import``/``xsd:include``/``xsd:redefine``
    locations and ``wsa:Address`` endpoint references that are absolute URLs on
    the same origin as a service address (or on one of ``private_origins``) are
    rewritten the same way, so chained WSDL/XSD fetches also go through the
    relay; with ``path`` given, a reference under the old service path moves
    under the new one. Relative references are left alone. An import of the
    XML Schema namespace loses its location (see the module docstring).

    Args:
        wsdl: The document bytes.
        public_base: The relay's base URL, e.g. ``https://relay.example.com:9351``.
        path: New path for the service addresses, or None to keep theirs.
        private_origins: Extra private URLs (for XSDs, which carry no address);
            with ``path`` given, their paths are remapped to it too.

    Returns:
        The rewritten document, UTF-8 with an XML declaration.

    Raises:
        LocalSoapError: ``public_base`` is not an absolute http(s) URL.
        MalformedXml: The document is not well-formed or has a DTD.
    """
    public = _split(public_base)
    if public is None:
        raise LocalSoapError(
            f"public_base must be an absolute http(s) URL: {public_base!r}"
        )
    root = parse_xml(wsdl)
    rewriter = _Rewriter(public, path)
    for element in root.iter(*_ADDRESS_TAGS):
        if element.get("location") is not None:
            element.set("location", rewriter.address(element.get("location", "")))
    for url in private_origins:
        parts = _split(url)
        if parts is None or not rewriter.add_private(parts):
            raise LocalSoapError(
                f"private origin must be an absolute http(s) URL: {url!r}"
            )
    _drop_schema_for_schemas_locations(root)
    for element in root.iter(*_REFERENCE_ATTRS):
        attr = _REFERENCE_ATTRS[str(element.tag)]
        if element.get(attr) is not None:
            element.set(attr, rewriter.reference(element.get(attr, "")))
    for element in root.iter(f"{{{ns.WSA}}}Address"):
        if element.text:
            element.text = rewriter.reference(element.text)
    return _serialize(root)


def _drop_schema_for_schemas_locations(root: etree._Element) -> None:
    """Remove ``schemaLocation`` from imports of the XML Schema namespace (built in everywhere)."""
    for element in root.iter(f"{{{ns.XSD}}}import"):
        if element.get("namespace") == ns.XSD:
            element.attrib.pop("schemaLocation", None)


def drop_outputs(wsdl: bytes, operations: set[str]) -> bytes:
    """Make the named operations one-way.

    WSDL 1.1 section 2.4.1: a one-way operation has an ``input`` and nothing
    else, so ``wsdl:output`` and ``wsdl:fault`` are removed from those
    operations in every portType and binding, and each ``wsdl:message`` they
    referenced that nothing else references is removed too. Names not found
    in this document are ignored (the portType may live in an imported one).

    Args:
        wsdl: The WSDL 1.1 document bytes.
        operations: Operation names.

    Returns:
        The rewritten document, UTF-8 with an XML declaration.

    Raises:
        MalformedXml: The document is not well-formed or has a DTD.
        InvalidWsdl: Not a WSDL 1.1 document, or a message QName cannot be resolved.
    """
    root = parse_xml(wsdl)
    if root.tag != f"{{{ns.WSDL}}}definitions":
        raise InvalidWsdl(f"{root.tag!r} is not a WSDL 1.1 definitions element")
    dropped: set[etree.QName] = set()
    for operation in root.iter(f"{{{ns.WSDL}}}operation"):
        if operation.get("name") in operations:
            dropped.update(_drop_children(operation))
    unused = dropped - set(_referenced_messages(root))
    target_ns = root.get("targetNamespace")
    for message in root.findall(f"{{{ns.WSDL}}}message"):
        if etree.QName(target_ns, message.get("name", "")) in unused:
            root.remove(message)
    return _serialize(root)


def _drop_children(operation: etree._Element) -> list[etree.QName]:
    """Remove output and fault children; return the messages they referenced."""
    messages = []
    removable = (f"{{{ns.WSDL}}}output", f"{{{ns.WSDL}}}fault")
    for child in [child for child in operation if child.tag in removable]:
        if child.get("message") is not None:
            messages.append(_resolve(child, child.get("message", "")))
        operation.remove(child)
    return messages


def _referenced_messages(root: etree._Element) -> Iterable[etree.QName]:
    for operation in root.iter(f"{{{ns.WSDL}}}operation"):
        for child in operation:
            if isinstance(child.tag, str) and child.get("message") is not None:
                yield _resolve(child, child.get("message", ""))


def _resolve(element: etree._Element, value: str) -> etree.QName:
    prefix, _, local = value.strip().rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    if prefix and namespace is None:
        raise InvalidWsdl(f"message {value!r} uses an undeclared prefix")
    return etree.QName(namespace, local)
