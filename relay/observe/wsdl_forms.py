"""The SOAP test client's forms: a WSDL's operations and their parameters, and the
envelope for filled-in values.  No I/O.

Read from a WSDL 1.1 document (parsed hardened: ``soap.envelope.parse_xml``)::

    <wsdl:binding ...><soap:binding style="document"/>
      <wsdl:operation name="GetPay"><soap:operation soapAction="urn:GetPay"/>...
    <wsdl:portType><wsdl:operation name="GetPay"><wsdl:input message="tns:GetPay"/>
    <wsdl:message name="GetPay"><wsdl:part name="parameters" element="tns:GetPay"/>
    <xs:element name="GetPay"><xs:complexType><xs:sequence>
        <xs:element name="employee" type="xs:string"/>     -> a field "employee"

Document/literal wrapped (what Spyne and WCF publish) gets one field per child
of the wrapper element when the schema is inline; anything else gets no fields,
and the console offers the request XML to edit instead.  :func:`envelope`
builds the request with lxml, so every value is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from soap import ns
from soap.envelope import parse_xml

__all__ = ["Operation", "ServiceForms", "envelope", "read_wsdl"]

#: Fields per operation and operations per service shown at most.
MAX_FIELDS = 100
MAX_OPERATIONS = 200


@dataclass
class Operation:
    name: str
    soap_action: str = ""
    element_ns: str = ""
    element: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "soapAction": self.soap_action, "namespace": self.element_ns,
                "element": self.element, "fields": [{"name": n, "type": t} for n, t in self.fields]}


@dataclass
class ServiceForms:
    soap_version: str
    operations: list[Operation]

    def operation(self, name: str) -> Operation | None:
        return next((o for o in self.operations if o.name == name), None)

    def as_json(self) -> dict[str, Any]:
        return {"soapVersion": self.soap_version,
                "operations": [o.as_json() for o in self.operations]}


def read_wsdl(data: bytes) -> ServiceForms:
    """The operations of the first SOAP binding in ``data`` (raises ``SoapError`` for bad XML)."""
    root = parse_xml(data)
    binding, version = _soap_binding(root)
    operations: list[Operation] = []
    if binding is None:
        return ServiceForms("1.1", operations)
    inputs = _input_elements(root)
    for op in binding.findall(f"{{{ns.WSDL}}}operation")[:MAX_OPERATIONS]:
        name = op.get("name", "")
        action = next((o.get("soapAction", "") for o in op if etree.QName(o).localname == "operation"), "")
        operation = Operation(name, action)
        qname = inputs.get(name)
        if qname is not None:
            operation.element_ns, operation.element = qname
            operation.fields = _fields(root, qname)
        operations.append(operation)
    return ServiceForms(version, operations)


def _soap_binding(root: etree._Element) -> tuple[etree._Element | None, str]:
    for binding in root.findall(f"{{{ns.WSDL}}}binding"):
        for child in binding:
            if etree.QName(child).localname == "binding":
                uri = etree.QName(child).namespace
                if uri == ns.WSDL_SOAP11:
                    return binding, "1.1"
                if uri == ns.WSDL_SOAP12:
                    return binding, "1.2"
    return None, "1.1"


def _qname(element: etree._Element, value: str) -> tuple[str, str]:
    prefix, _, local = value.rpartition(":")
    return element.nsmap.get(prefix or None, "") or "", local


def _input_elements(root: etree._Element) -> dict[str, tuple[str, str]]:
    """Operation name -> the element of its input message's (first) part."""
    messages = {}
    for message in root.findall(f"{{{ns.WSDL}}}message"):
        part = message.find(f"{{{ns.WSDL}}}part")
        if part is not None and part.get("element"):
            messages[message.get("name", "")] = _qname(part, part.get("element", ""))
    found = {}
    for port_type in root.findall(f"{{{ns.WSDL}}}portType"):
        for op in port_type.findall(f"{{{ns.WSDL}}}operation"):
            given = op.find(f"{{{ns.WSDL}}}input")
            if given is not None:
                message = _qname(given, given.get("message", ""))[1]
                if message in messages:
                    found[op.get("name", "")] = messages[message]
    return found


def _fields(root: etree._Element, qname: tuple[str, str]) -> list[tuple[str, str]]:
    """The children of the wrapper element ``qname`` in an inline schema."""
    for schema in root.iter(f"{{{ns.XSD}}}schema"):
        if schema.get("targetNamespace", "") != qname[0]:
            continue
        for element in schema.findall(f"{{{ns.XSD}}}element"):
            if element.get("name") == qname[1]:
                return _children(schema, element)
    return []


def _children(schema: etree._Element, element: etree._Element) -> list[tuple[str, str]]:
    complex_type = element.find(f"{{{ns.XSD}}}complexType")
    if complex_type is None and element.get("type"):
        local = _qname(element, element.get("type", ""))[1]
        complex_type = next((t for t in schema.findall(f"{{{ns.XSD}}}complexType")
                             if t.get("name") == local), None)
    if complex_type is None:
        return []
    out = []
    for child in complex_type.iter(f"{{{ns.XSD}}}element"):
        if child.get("name"):
            out.append((child.get("name", ""), child.get("type", "")))
    return out[:MAX_FIELDS]


def envelope(forms: ServiceForms, operation: Operation, values: dict[str, str]) -> bytes:
    """The request envelope for ``operation`` with ``values`` (escaped by lxml)."""
    env_ns = ns.SOAP12_ENV if forms.soap_version == "1.2" else ns.SOAP11_ENV
    root = etree.Element(f"{{{env_ns}}}Envelope", nsmap={"soap": env_ns})
    body = etree.SubElement(root, f"{{{env_ns}}}Body")
    tag = operation.element or operation.name
    wrapper = etree.SubElement(
        body, f"{{{operation.element_ns}}}{tag}" if operation.element_ns else tag,
        nsmap={None: operation.element_ns} if operation.element_ns else None,
    )
    for name, _ in operation.fields:
        if name in values:
            child = etree.SubElement(
                wrapper, f"{{{operation.element_ns}}}{name}" if operation.element_ns else name)
            child.text = values[name]
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)
