"""The service pipeline for a Spyne application hosted through the relay.

:func:`spyne_wsgi` returns a WSGI callable that the hosting layer runs like any
WSGI app, with an environ whose host is the relay's public origin and
``SCRIPT_NAME=/entity``. A SOAP POST goes through one pipeline, on the tree the
relay host parsed once under the reader quotas (``environ["soaprelay.envelope"]``;
parsed here only when called by a bare WSGI server)::

    request tree ─► WS-Security ─► WS-Addressing ─► one-way? ─► Spyne (tree in, tree out)
                    (check)        (wsa:To)          │ yes: 202, run after
    reply bytes ◄── serialise once ◄── sign ◄── RelatesTo/Action ◄──┘ no: the reply tree

- WS-Security (:class:`~bindings.wsgi_security.SecurityStage`, given by the
  binding's message security mode) checks the request before anything else, so
  a one-way operation is checked before its ``202``; its reply tree is signed;
- with WS-Addressing (the WS2007 binding) the request's ``To`` must be the
  relay address as WCF's default address filter compares it (scheme, port and
  path; the host name too with the binding's ``compare_to_host``:
  :func:`soap.addressing.same_address`), and replies carry ``RelatesTo`` and
  ``Action``;
- a one-way request (:class:`~bindings.oneway.OnewayRule`: an ``@oneway``
  operation, or any operation of a ``NetOneway``/``NetEvent`` binding) is
  answered ``202`` with an empty body, and Spyne runs it in a thread pool once
  that answer has been sent;
- Spyne is driven by :class:`~bindings.spyne_driver.SpyneDriver`, fed the tree
  and returning the reply tree, which is serialised once, after it was stamped;
- ``?wsdl`` shows the address the client used (built from the environ on every
  request; Spyne's own cache holds only a placeholder address) and has no
  outputs for one-way operations, so zeep loads it and returns ``None``;
- malformed XML or a DTD gets a Client/Sender fault; an unhandled exception in a
  service gets ``Internal server error TrackingId:<id>`` (the traceback is
  logged with that id, never sent);
- Spyne's own ``max_content_length`` (2 MiB by default) is the binding's
  ``max_received_message_size``, so the two never contradict each other;
- one ``Application`` may be hosted by several adapters (two hosts, two
  entities): Spyne keeps its WSDL builder on the Application and a second build
  there loses the service and portType elements, so each adapter builds its WSDL
  with a builder of its own.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

from lxml import etree
from spyne import Application
from spyne.interface.wsdl.wsdl11 import Wsdl11
from spyne.protocol.soap import Soap12

from bindings.binding import RelayBinding
from bindings.oneway import AfterResponse, Delivery, OnewayRule, oneway_operations
from bindings.spyne_driver import SpyneDriver, SpyneReply
from bindings.wsgi_host import request_envelope
from bindings.wsgi_security import SecurityStage
from hc.entities import EntityKind
from soap import addressing, wsdl
from soap.envelope import Envelope, SoapVersion
from soap.exceptions import InvalidHeader, SecurityFault, SoapError
from soap.fault import Fault, FaultCode, fault_envelope

__all__ = ["ADDRESSING_KEY", "SpyneRelayApp", "spyne_wsgi"]

log = logging.getLogger(__name__)
#: The environ key of the request's WS-Addressing headers when whoever parsed the
#: envelope read them too (:meth:`AddressingHeaders.from_header
#: <soap.addressing.AddressingHeaders.from_header>` of ``soaprelay.envelope``'s Header):
#: a NetTcp session's channel.  Not read again then, unless a security stage ran.
ADDRESSING_KEY = "soaprelay.addressing"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiResult = Iterable[bytes]

#: The address Spyne's cached WSDL is built with; every answer rewrites it.
_PLACEHOLDER = "http://soap-relay.invalid/placeholder"


def spyne_wsgi(
    app: Application, binding: RelayBinding, security: SecurityStage | None = None
) -> SpyneRelayApp:
    """The WSGI callable serving ``app`` through the relay with ``binding``.

    Args:
        app: The Spyne application (SOAP 1.1 or 1.2 protocol).
        binding: The relay binding it is hosted with.
        security: The WS-Security step, for a binding with message security
            (:func:`bindings.wssecurity.secure_service` makes it).

    Returns:
        A WSGI application; call :meth:`SpyneRelayApp.close` when done.
    """
    return SpyneRelayApp(app, binding, security)


class SpyneRelayApp:
    """The WSGI app :func:`spyne_wsgi` returns (see the module docstring).

    Args:
        app: The Spyne application.
        binding: The relay binding it is hosted with.
        security: The WS-Security step, or None.
        oneway_executor: Where acknowledged one-way operations run (default: a pool
            of the adapter's own; the NetTcp sessions run them inline, in order).
    """

    def __init__(
        self, app: Application, binding: RelayBinding, security: SecurityStage | None = None,
        *, oneway_executor: Executor | None = None,
    ) -> None:
        self.binding, self.security = binding, security
        self.version = (
            SoapVersion.SOAP12 if isinstance(app.in_protocol, Soap12) else SoapVersion.SOAP11
        )
        self._app = app
        self.driver = SpyneDriver(app, binding.max_received_message_size)
        self.oneway = OnewayRule.for_spyne(app, binding)
        if binding.entity_kind in (EntityKind.ONEWAY, EntityKind.EVENT):
            self._oneway_ops = _all_operations(app)
        else:
            self._oneway_ops = oneway_operations(app)
        self._executor = oneway_executor or ThreadPoolExecutor(
            max_workers=max(1, binding.max_concurrent_calls), thread_name_prefix="relay-oneway"
        )
        self._wsdl_lock = threading.Lock()
        self._wsdl: bytes | None = None

    def close(self, wait: bool = True) -> None:
        """Stop taking one-way work; with ``wait``, finish what was acknowledged."""
        self._executor.shutdown(wait=wait)

    def __call__(self, environ: Environ, start_response: StartResponse) -> WsgiResult:
        if self.driver.is_wsdl_request(environ):
            return self._serve_wsdl(environ, start_response)
        if environ.get("REQUEST_METHOD", "GET").upper() != "POST":
            # Spyne answers (405); the body, never checked, is not passed on.
            bare = dict(environ, **{"wsgi.input": io.BytesIO(), "CONTENT_LENGTH": "0"})
            return list(self.driver(bare, start_response))
        try:
            body = _read_body(environ, self.binding.max_received_message_size)
        except _TooLarge:
            return self._fault(start_response, "Request body is too large", status=413)
        environ = dict(environ)  # the stages note their results in it
        try:
            envelope = request_envelope(environ, body)
        except SoapError as exc:
            return self._refuse(environ, start_response, exc)
        return self._pipeline(environ, body, envelope, start_response)

    # -- the pipeline -------------------------------------------------------

    def _pipeline(
        self, environ: Environ, body: bytes, envelope: Envelope, start_response: StartResponse
    ) -> WsgiResult:
        """WS-Security, WS-Addressing, the one-way decision, then Spyne and the reply."""
        if self.security is not None:
            try:
                self.security.check(environ, envelope, body)
            except SecurityFault as exc:
                return self._refuse(environ, start_response, exc)
        request_wsa = None
        if self.binding.addressing:
            try:
                request_wsa = self._check_addressing(envelope, environ)
            except SoapError as exc:
                return self._fault(start_response, str(exc))
        payload = envelope.body_payload
        tag = None if payload is None else str(payload.tag)
        if self.oneway.delivery("POST", tag) is Delivery.ACKNOWLEDGE:
            return self._acknowledge(environ, envelope, start_response)
        reply = self.driver.call(environ, envelope)
        return self._reply(reply, request_wsa, start_response, environ)

    def _reply(
        self,
        reply: SpyneReply,
        request_wsa: addressing.AddressingHeaders | None,
        start_response: StartResponse,
        environ: Environ,
    ) -> WsgiResult:
        """Stamp Spyne's reply tree (addressing, then signature) and serialise it once."""
        try:
            body = reply.body or b""
            if reply.document is not None:
                self._stamp(reply.document, request_wsa, environ)
                body = etree.tostring(reply.document, xml_declaration=True, encoding=self._encoding)
        finally:
            reply.close()
        start_response(reply.status, [*reply.headers, ("Content-Length", str(len(body)))])
        return [body]

    def _stamp(
        self, document: etree._Element, request_wsa: addressing.AddressingHeaders | None,
        environ: Environ,
    ) -> None:
        """Reply addressing (``RelatesTo``, ``Action``), then the signature, in place."""
        try:
            out = Envelope.from_element(document)
        except SoapError:
            log.error("Spyne's reply is not a SOAP envelope; sent as it is")
            return
        if request_wsa is not None and request_wsa.action is not None:
            addressing.stamp_reply(out, request_wsa, f"{request_wsa.action}Response")
        if self.security is not None:
            self.security.sign(out, environ)

    @property
    def _encoding(self) -> str:
        return str(getattr(self._app.out_protocol, "encoding", None) or "UTF-8")

    def _refuse(self, environ: Environ, start_response: StartResponse, exc: SoapError) -> WsgiResult:
        """The answer to a request that is no SOAP envelope, or fails the security checks."""
        if self.security is None:
            return self._fault(start_response, f"Malformed SOAP request: {exc}")
        fault = self.security.refusal(environ, exc)
        return self._fault(start_response, fault=fault, status=500)

    # -- WSDL ---------------------------------------------------------------

    def wsdl(self, address: str) -> bytes:
        """The WSDL with ``address`` as the service address (one-way outputs dropped).

        Clients of one-way and event entities use this to share the contract:
        the relay answers every request to such an entity ``202``, WSDL GETs too.
        """
        parts = urlsplit(address)
        origin = f"{parts.scheme}://{parts.netloc}"
        return wsdl.rewrite_addresses(self._wsdl_template(), origin, path=parts.path or "/")

    def _serve_wsdl(self, environ: Environ, start_response: StartResponse) -> WsgiResult:
        document = self.wsdl(_request_url(environ))
        start_response(
            "200 OK",
            [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(document)))],
        )
        return [document]

    def _wsdl_template(self) -> bytes:
        """Spyne's WSDL built once for a placeholder address, one-way outputs dropped.

        Built with a Wsdl11 of this adapter's own: the one Spyne keeps on the
        Application (``app.interface.docs``) keeps the elements of its first
        build, and a second build there has no service and no portType.
        """
        with self._wsdl_lock:
            if self._wsdl is None:
                document = Wsdl11(self._app.interface)
                document.build_interface_document(_PLACEHOLDER)
                self._wsdl = wsdl.drop_outputs(
                    document.get_interface_document(), self._oneway_ops
                )
            return self._wsdl

    # -- one-way ------------------------------------------------------------

    def _acknowledge(
        self, environ: Environ, envelope: Envelope, start_response: StartResponse
    ) -> WsgiResult:
        start_response("202 Accepted", [("Content-Length", "0")])
        return AfterResponse(lambda: self._executor.submit(self._run_oneway, environ, envelope))

    def _run_oneway(self, environ: Environ, envelope: Envelope) -> None:
        try:
            reply = self.driver.call(environ, envelope)
            reply.close()
        except Exception:
            log.exception("one-way operation failed")
            return
        if not reply.status.startswith("2"):
            log.error("one-way operation failed with %s: %s", reply.status, _fault_reason(reply))

    # -- WS-Addressing ------------------------------------------------------

    def _check_addressing(
        self, envelope: Envelope, environ: Environ
    ) -> addressing.AddressingHeaders:
        """Read the request's WS-Addressing headers; ``To`` must name this service.

        Raises:
            InvalidHeader: A header is malformed, or ``To`` is another address.
        """
        read = environ.get(ADDRESSING_KEY) if self.security is None else None
        if isinstance(read, addressing.AddressingHeaders):  # read with the envelope
            headers = read
        else:
            headers = addressing.AddressingHeaders.from_header(envelope.header)
        expected = _request_url(environ)
        strict = getattr(self.binding, "compare_to_host", False)
        if headers.to is not None and not addressing.same_address(
            headers.to, expected, include_host=strict
        ):
            raise InvalidHeader(
                f"wsa:To {headers.to!r} is not this service's address {expected!r}"
            )
        return headers

    # -- faults -------------------------------------------------------------

    def _fault(
        self,
        start_response: StartResponse,
        reason: str = "",
        *,
        fault: Fault | None = None,
        status: int | None = None,
    ) -> WsgiResult:
        """A fault, by default a Client/Sender one: 500 in SOAP 1.1, 400 in SOAP 1.2."""
        if status is None:
            status = 500 if self.version is SoapVersion.SOAP11 else 400
        body = fault_envelope(self.version, fault or Fault(FaultCode.CLIENT, reason))
        start_response(
            f"{status} {_REASONS.get(status, 'Error')}",
            [
                ("Content-Type", f"{self.version.content_type}; charset=utf-8"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]


_REASONS = {400: "Bad Request", 413: "Payload Too Large", 500: "Internal Server Error"}


class _TooLarge(Exception):
    pass


def _read_body(environ: Environ, limit: int) -> bytes:
    stream = environ.get("wsgi.input") or io.BytesIO()
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if length > limit:
        raise _TooLarge
    body: bytes = stream.read(length) if length >= 0 else stream.read(limit + 1)
    if len(body) > limit:
        raise _TooLarge
    return body


def _request_url(environ: Environ) -> str:
    """The address the client used, without query (and without a ``.wsdl`` suffix)."""
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    path = quote(environ.get("SCRIPT_NAME", "")) + quote(environ.get("PATH_INFO", ""))
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path.removesuffix('.wsdl')}"


def _all_operations(app: Application) -> set[str]:
    return {
        str(descriptor.operation_name)
        for descriptors in app.interface.service_method_map.values()
        for descriptor in descriptors
    }


def _fault_reason(reply: SpyneReply) -> str:
    if reply.document is None:
        return "(no SOAP fault)"
    try:
        payload = Envelope.from_element(reply.document).body_payload
    except SoapError:
        return "(no SOAP fault)"
    if payload is None:
        return "(empty body)"
    return " ".join(t.strip() for t in payload.itertext() if t.strip())[:500]
