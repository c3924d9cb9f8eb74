"""A one-way call answered ``200 OK`` with an empty body, read as zeep's ``202``.

WCF on .NET answers a one-way operation (``IsOneWay = true``) ``202 Accepted``;
Mono's WCF answers ``200 OK`` with an empty body. zeep returns ``None`` for a 201
or 202 without content, but tries to parse the empty 200 as XML and raises
``TransportError``, even without the relay. Both zeep transports here
(:mod:`bindings.zeep_transport`, :mod:`bindings.zeep_async`) read such an answer
as the 202 it means, but only for an operation the WSDL declares one-way (no
``wsdl:output``): an empty 200 to a request-response operation stays zeep's error.

The operation is recognised by the request's Body element, the input element of
one of the WSDL's one-way operations (:func:`oneway_inputs`, computed once per
client from the loaded WSDL).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from soap.envelope import Envelope
from soap.exceptions import SoapError

__all__ = ["oneway_inputs", "read_empty_ok_as_accepted"]


def oneway_inputs(wsdl: Any) -> frozenset[str]:
    """The Clark names (``{ns}local``) of the Body elements of ``wsdl``'s one-way operations.

    Args:
        wsdl: A loaded zeep WSDL document (``client.wsdl``).
    """
    names = set()
    for binding in wsdl.bindings.values():
        for operation in binding.all().values():
            body = getattr(operation.input, "body", None)
            qname = getattr(body, "qname", None)
            if operation.output is None and qname is not None:
                names.add(str(qname))
    return frozenset(names)


def read_empty_ok_as_accepted(
    response: Any, envelope: etree._Element, oneway: frozenset[str]
) -> None:
    """Turn ``response`` (a ``requests.Response``) into a 202 if it acknowledges a one-way call.

    Only a ``200`` whose body is empty (or whitespace) to a request whose Body
    element is in ``oneway`` is changed; the response is changed in place.
    """
    if response.status_code != 200 or response.content.strip() or not oneway:
        return
    try:
        payload = Envelope.from_element(envelope).body_payload
    except SoapError:
        return
    if payload is not None and str(payload.tag) in oneway:
        response.status_code = 202
