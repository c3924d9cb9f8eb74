"""A thin driver of Spyne's server pipeline, fed the envelope tree the host already parsed.

Spyne's WSGI server reads bytes (``ctx.in_string``), parses them
(``in_protocol.create_in_document`` sets ``ctx.in_document``), runs the method
and serialises the reply tree (``ctx.out_document``) to bytes
(``out_protocol.create_out_string``). :class:`SpyneDriver` enters that pipeline
one stage later and leaves it one stage earlier, as ``spyne.server.zeromq``
drives :class:`~spyne.server._base.ServerBase`::

    request tree ─► ctx.in_document ─► decompose ─► deserialize ─► method
                                                                      │
    SpyneReply(status, headers, document) ◄─ serialize (ctx.out_document)

so the host parses each request once (under its reader quotas) and stamps the
reply tree (WS-Addressing, a signature) before it serialises it, once.  Spyne
never sees the request bytes: it cannot read them with another charset than
the one they were checked with.

Spyne's events fire as under its WSGI server (``wsgi_call``, the
``method_*`` ones, ``wsgi_close``), except those of the byte stage it no
longer runs: ``method_return_string``/``method_exception_string``,
``wsgi_return`` and ``wsgi_exception`` (the host serialises the reply).

Unhandled exceptions in a service become ``Internal server error
TrackingId:<id>`` (the traceback is logged with that id, never sent): Spyne
would put ``get_fault_string_from_exception(exc)``, a full traceback once
``return_traceback_in_unhandled_exceptions()`` was called, in the fault.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from inspect import isgenerator
from typing import Any

import spyne.application
import spyne.const
import spyne.server.wsgi
from lxml import etree
from spyne import Application
from spyne import Fault as SpyneFault
from spyne.auxproc import process_contexts
from spyne.const.http import HTTP_200, HTTP_405
from spyne.error import RequestNotAllowed
from spyne.protocol import ProtocolBase
from spyne.protocol.soap import Soap11, Soap12
from spyne.protocol.xml import SchemaValidationError
from spyne.server.wsgi import WsgiApplication, WsgiMethodContext

from soap.envelope import Envelope

__all__ = ["SpyneDriver", "SpyneReply", "decompose_soap", "method_contexts"]

log = logging.getLogger("bindings.spyne_host")

_INTERNAL_ERROR = "Internal server error"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
#: Compiled once (an lxml XPath object locks around each evaluation: threads may share it).
_WITH_XML_ID = etree.XPath("//*[@xml:id]")


@dataclass
class SpyneReply:
    """What Spyne answered, before serialisation.

    Attributes:
        status: The HTTP status line, e.g. ``"200 OK"``.
        headers: Spyne's response headers (no ``Content-Length``: the body is not made yet).
        document: The reply envelope tree; None when Spyne has no body to send,
            or its output protocol is not XML.
        close: Ends the method context (Spyne's ``wsgi_close``); call it once the
            reply was serialised.
        body: The reply bytes Spyne made itself, for an output protocol that is
            not XML (JSON, say); None otherwise.
    """

    status: str
    headers: list[tuple[str, str]]
    document: etree._Element | None
    close: Callable[[], None]
    body: bytes | None = None


class SpyneDriver(WsgiApplication):  # type: ignore[misc]
    """Spyne's WSGI server with a tree-in, tree-out entry point (:meth:`call`).

    Still a WSGI application for what is not a SOAP POST (Spyne's own answers
    to other methods), with unhandled exceptions hidden from clients there too.

    Args:
        app: The Spyne application.
        max_content_length: Spyne's own body limit, for its byte path.
    """

    def __init__(self, app: Application, max_content_length: int) -> None:
        app.event_manager.add_listener("method_exception_object", _sanitise_unhandled)
        super().__init__(app, max_content_length=max_content_length)
        _spare_full_collections()

    def handle_error(
        self, p_ctx: Any, others: Any, error: Any, start_response: Callable[..., Any]
    ) -> Any:
        # Spyne calls this from inside its ``except`` block when serialising a
        # response failed; the fault it made from the exception may hold a traceback.
        if _made_from_unhandled(error):
            error = p_ctx.out_error = _internal_error_fault(p_ctx)
        return super().handle_error(p_ctx, others, error, start_response)

    def call(self, environ: dict[str, Any], envelope: Envelope) -> SpyneReply:
        """Run the request ``envelope`` (a POST with ``environ``) through Spyne.

        Services see ``environ`` as ``ctx.transport.req_env``, as under Spyne's
        own WSGI server.
        """
        initial = WsgiMethodContext(self, environ, self.app.out_protocol.mime_type)
        self.event_manager.fire_event("wsgi_call", initial)
        contexts = self._contexts(initial, environ, envelope)
        p_ctx, others = contexts[0], contexts[1:]
        p_ctx.active = True
        if p_ctx.in_error is None:
            self.get_in_object(p_ctx)
        if p_ctx.in_error is None:
            self.get_out_object(p_ctx)
        error = p_ctx.in_error or p_ctx.out_error
        if error is None and p_ctx.transport.resp_code is None:
            p_ctx.transport.resp_code = HTTP_200
        document = self._serialize(p_ctx, error)
        try:
            process_contexts(self, others, p_ctx, error=p_ctx.out_error)
        except Exception:
            log.exception("a Spyne auxiliary method failed")
        headers = [(k, v) for k, v in p_ctx.transport.resp_headers.items()
                   if k.lower() != "content-length"]
        status, close = str(p_ctx.transport.resp_code), lambda: self._finish(p_ctx)
        if document is None or isinstance(document, etree._Element):
            return SpyneReply(status, headers, document, close)
        # Not an XML tree (a JSON output protocol): Spyne makes the bytes, as it would.
        p_ctx.out_protocol.create_out_string(p_ctx)
        return SpyneReply(status, headers, None, close, b"".join(p_ctx.out_string or ()))

    def _contexts(
        self, ctx: WsgiMethodContext, environ: dict[str, Any], envelope: Envelope
    ) -> Any:
        """Spyne's ``generate_contexts``, from ``envelope`` instead of ``ctx.in_string``."""
        try:
            if not environ.get("CONTENT_TYPE"):
                ctx.transport.resp_code = HTTP_405
                raise RequestNotAllowed(
                    "You must issue a POST request with the Content-Type header properly set."
                )
            ctx.in_document = (envelope.root, _xml_ids(envelope.root))
            if not decompose_soap(self.app.in_protocol, ctx):
                self.app.in_protocol.decompose_incoming_envelope(ctx, ProtocolBase.REQUEST)
            return method_contexts(self.app.in_protocol, ctx)
        except SpyneFault as exc:
            ctx.in_object, ctx.in_error, ctx.out_error = None, exc, exc
            ctx.fire_event("method_exception_object")
            return (ctx,)

    def _serialize(self, p_ctx: Any, error: Any) -> Any:
        """Spyne's reply document (``ctx.out_document``: a tree for SOAP), or the fault's."""
        if isinstance(p_ctx.out_error, SchemaValidationError) and isinstance(
            p_ctx.out_protocol, Soap12
        ):
            error = p_ctx.out_error = _plain_fault(p_ctx.out_error)
        if error is not None and p_ctx.transport.resp_code is None:
            p_ctx.transport.resp_code = p_ctx.out_protocol.fault_to_http_response_code(error)
        try:
            self._to_document(p_ctx)
        except Exception:
            if p_ctx.out_error is not None:
                raise  # serialising a fault failed: a bug of ours or Spyne's
            p_ctx.out_error = _internal_error_fault(p_ctx)
            p_ctx.out_document = None
            p_ctx.transport.resp_code = p_ctx.out_protocol.fault_to_http_response_code(
                p_ctx.out_error
            )
            self._to_document(p_ctx)
        document: Any = p_ctx.out_document
        return document

    def _to_document(self, p_ctx: Any) -> None:
        if p_ctx.out_document is None:
            made = p_ctx.out_protocol.serialize(p_ctx, message=ProtocolBase.RESPONSE)
            if isgenerator(made):
                made.close()
                raise TypeError("push (streaming) serialisation is not supported by the relay host")
        event = "method_return_document" if p_ctx.out_error is None else "method_exception_document"
        p_ctx.fire_event(event)

    def _finish(self, p_ctx: Any) -> None:
        p_ctx.close()
        self.event_manager.fire_event("wsgi_close", p_ctx)


#: Spyne's own default for :data:`spyne.const.MIN_GC_INTERVAL`, and what a host uses.
_SPYNE_GC_INTERVAL = 1.0
HOST_GC_INTERVAL = 60.0


def _spare_full_collections() -> None:
    """Let Spyne run its full ``gc.collect()`` after a call once a minute, not once a second.

    Spyne collects after a call, at most every ``spyne.const.MIN_GC_INTERVAL``
    seconds, so that the files of a multipart upload are closed early.  A host
    gets no uploads (the relay hands it one parsed envelope), and a full
    collection in a process holding lxml and zeep trees stalls every call in
    flight for 50-130 ms (bench S8): most of a host's p99.  A value the
    application set itself is kept.
    """
    if spyne.const.MIN_GC_INTERVAL == _SPYNE_GC_INTERVAL:
        spyne.const.MIN_GC_INTERVAL = HOST_GC_INTERVAL


def _plain_fault(error: SchemaValidationError) -> SpyneFault:
    """The same fault as a plain :class:`spyne.Fault`, its message as text.

    Spyne quirk: the lxml validator's ``SchemaValidationError`` carries its
    message as bytes, and Spyne's SOAP 1.2 output of that class raises
    ``TypeError`` on them (a client's invalid request became an internal error)
    and writes no ``Reason`` even with text; a plain fault of the same code
    (``Client.SchemaValidationError``: ``Sender`` with that subcode) is written
    right. SOAP 1.1 output is left as Spyne writes it.
    """
    text = error.faultstring
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return SpyneFault(str(error.faultcode), str(text))


def _xml_ids(root: etree._Element) -> dict[str, etree._Element]:
    """What ``etree.XMLID`` gives Spyne beside the root: the ``xml:id`` elements."""
    found = _WITH_XML_ID(root)
    assert isinstance(found, list)
    return {str(element.get(_XML_ID)): element for element in found}


def decompose_soap(protocol: Any, ctx: Any) -> bool:
    """Spyne's ``Soap11.decompose_incoming_envelope`` (SOAP 1.2's too) on ``ctx.in_document``
    for a request it takes as it is; False (nothing done) for anything else, which
    Spyne's own method then handles, faults and all.

    The same context as Spyne's, without the two XPath evaluations its ``_from_soap``
    compiles per call (``xpath("e:Header", namespaces=...)``, then ``e:Body``: about
    45 us of a call): Header and Body are the Envelope's first children of those names,
    and the payload is Body's first child.  Spyne's way is kept for a protocol that
    overrides the method, ``xml:id`` references to resolve, another root, and a Body
    missing, empty or opening with no element.
    """
    if type(protocol).decompose_incoming_envelope is not Soap11.decompose_incoming_envelope:
        return False
    root, xml_ids = ctx.in_document
    namespace = protocol.ns_soap_env
    if xml_ids or root.tag != f"{{{namespace}}}Envelope":
        return False
    header_tag, body_tag = f"{{{namespace}}}Header", f"{{{namespace}}}Body"
    header = body = None
    for child in root:
        if child.tag == header_tag and header is None:
            header = child
        elif child.tag == body_tag and body is None:
            body = child
    if body is None or len(body) == 0 or not isinstance(body[0].tag, str):
        return False
    payload = body[0]
    ctx.in_document = root
    if payload.tag == f"{{{namespace}}}Fault":
        ctx.in_body_doc = payload
        return True
    ctx.in_header_doc = None if header is None else list(header)
    ctx.in_body_doc = payload
    ctx.method_request_string = payload.tag
    protocol.validate_body(ctx, ProtocolBase.REQUEST)
    return True


def method_contexts(protocol: Any, ctx: Any) -> list[Any]:
    """Spyne's ``generate_method_contexts``: a context for each method the request calls,
    the primary one first.

    Spyne makes each of them a shallow copy of ``ctx`` (``copy.copy`` of a method context:
    about 30k instructions, 2 % of a NetTcp host's call).  For the usual single method the
    driver uses ``ctx`` itself, which it made for this request and drops once the copy is
    made: the same attributes, one object fewer.  Spyne's way for a protocol that
    overrides the method, for auxiliary methods, and for no method (its fault).
    """
    if type(protocol).generate_method_contexts is not ProtocolBase.generate_method_contexts:
        return list(protocol.generate_method_contexts(ctx))
    handles = protocol.get_call_handles(ctx)
    if len(handles) != 1:
        return list(protocol.generate_method_contexts(ctx))
    ctx.descriptor = handles[0]
    return [ctx]


def _made_from_unhandled(error: Any) -> bool:
    """Whether ``error`` is the fault Spyne made from the exception being handled.

    Spyne answers an exception that is not a :class:`spyne.Fault` with
    ``Fault("Server", get_fault_string_from_exception(exc))``, and that string
    is the full traceback once ``return_traceback_in_unhandled_exceptions()``
    was called.
    """
    exc = sys.exc_info()[1]
    if exc is None or isinstance(exc, SpyneFault) or not isinstance(error, SpyneFault):
        return False
    made = {
        spyne.application.get_fault_string_from_exception(exc),
        spyne.server.wsgi.get_fault_string_from_exception(exc),
    }
    return str(error.faultcode) == "Server" and error.faultstring in made


def _sanitise_unhandled(ctx: Any) -> None:
    """Spyne event listener: replace the fault made from an unhandled exception."""
    if _made_from_unhandled(ctx.out_error):
        ctx.out_error = _internal_error_fault(ctx)


def _internal_error_fault(ctx: Any) -> SpyneFault:
    tracking_id = uuid.uuid4().hex
    method = getattr(ctx, "method_request_string", None)
    log.error(
        "unhandled error in %s TrackingId:%s", method, tracking_id, exc_info=sys.exc_info()
    )
    return SpyneFault("Server", f"{_INTERNAL_ERROR} TrackingId:{tracking_id}")
