"""A thin WSGI adapter that serves a Spyne application through the relay.

:func:`spyne_wsgi` wraps :class:`spyne.server.wsgi.WsgiApplication` and adds
what relaying needs; the hosting layer runs the result like any WSGI app, with
an environ whose host is the relay's public origin and ``SCRIPT_NAME=/entity``:

- ``?wsdl`` shows the address the client used (built from the environ on every
  request; Spyne's own cache holds only a placeholder address) and has no
  outputs for one-way operations, so zeep loads it and returns ``None``;
- a one-way request (see :mod:`bindings.oneway`, and every request of a
  ``NetOneway``/``NetEvent`` binding) is answered ``202`` with an empty body,
  and Spyne runs it in a thread pool once that answer has been sent;
- with WS-Addressing (the WS2007 binding) the request's ``To`` must be the
  relay address, and replies carry ``RelatesTo`` and ``Action``;
- malformed XML or a DTD gets a Client/Sender fault; an unhandled exception in a
  service gets ``Internal server error TrackingId:<id>`` (the traceback is
  logged with that id, never sent);
- Spyne's own ``max_content_length`` (2 MiB by default) is the binding's
  ``max_received_message_size``, so the two never contradict each other; the
  envelope the relay host parsed under the reader quotas
  (``environ["soaprelay.envelope"]``) is used instead of parsing the body again
  (Spyne still parses the bytes for itself);
- one ``Application`` may be hosted by several adapters (two hosts, two
  entities): Spyne keeps its WSDL builder on the Application and a second build
  there loses the service and portType elements, so each adapter builds its WSDL
  with a builder of its own.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import spyne.application
import spyne.server.wsgi
from spyne import Application
from spyne import Fault as SpyneFault
from spyne.interface.wsdl.wsdl11 import Wsdl11
from spyne.protocol.soap import Soap12
from spyne.server.wsgi import WsgiApplication

from bindings.binding import RelayBinding
from bindings.oneway import oneway_operations, oneway_request_tags
from bindings.wsgi_host import ENVELOPE_KEY
from hc.entities import EntityKind
from soap import addressing, wsdl
from soap.envelope import Envelope, SoapVersion
from soap.exceptions import InvalidHeader, SoapError
from soap.fault import Fault, FaultCode, fault_envelope

__all__ = ["SpyneRelayApp", "spyne_wsgi"]

log = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiResult = Iterable[bytes]

#: The address Spyne's cached WSDL is built with; every answer rewrites it.
_PLACEHOLDER = "http://soap-relay.invalid/placeholder"
_INTERNAL_ERROR = "Internal server error"


def spyne_wsgi(app: Application, binding: RelayBinding) -> SpyneRelayApp:
    """The WSGI callable serving ``app`` through the relay with ``binding``.

    Args:
        app: The Spyne application (SOAP 1.1 or 1.2 protocol).
        binding: The relay binding it is hosted with.

    Returns:
        A WSGI application; call :meth:`SpyneRelayApp.close` when done.
    """
    return SpyneRelayApp(app, binding)


class _SanitisingWsgiApplication(WsgiApplication):  # type: ignore[misc]
    """Spyne's WSGI server, with unhandled exceptions hidden from clients."""

    def __init__(self, app: Application, max_content_length: int) -> None:
        app.event_manager.add_listener("method_exception_object", _sanitise_unhandled)
        super().__init__(app, max_content_length=max_content_length)

    def handle_error(
        self, p_ctx: Any, others: Any, error: Any, start_response: StartResponse
    ) -> Any:
        # Spyne calls this from inside its ``except`` block when serialising a
        # response failed; the fault it made from the exception may hold a traceback.
        if _made_from_unhandled(error):
            error = p_ctx.out_error = _internal_error_fault(p_ctx)
        return super().handle_error(p_ctx, others, error, start_response)


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


class SpyneRelayApp:
    """The WSGI app :func:`spyne_wsgi` returns (see the module docstring).

    Args:
        app: The Spyne application.
        binding: The relay binding it is hosted with.
    """

    def __init__(self, app: Application, binding: RelayBinding) -> None:
        self.binding = binding
        self.version = (
            SoapVersion.SOAP12 if isinstance(app.in_protocol, Soap12) else SoapVersion.SOAP11
        )
        self._app = app
        self._spyne = _SanitisingWsgiApplication(app, binding.max_received_message_size)
        if binding.entity_kind in (EntityKind.ONEWAY, EntityKind.EVENT):
            self._oneway_ops, self._oneway_tags = _all_operations(app), _all_request_tags(app)
        else:
            self._oneway_ops, self._oneway_tags = oneway_operations(app), oneway_request_tags(app)
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, binding.max_concurrent_calls), thread_name_prefix="relay-oneway"
        )
        self._wsdl_lock = threading.Lock()
        self._wsdl: bytes | None = None

    def close(self, wait: bool = True) -> None:
        """Stop taking one-way work; with ``wait``, finish what was acknowledged."""
        self._executor.shutdown(wait=wait)

    def __call__(self, environ: Environ, start_response: StartResponse) -> WsgiResult:
        if self._spyne.is_wsdl_request(environ):
            return self._serve_wsdl(environ, start_response)
        if environ.get("REQUEST_METHOD", "GET").upper() != "POST":
            return list(self._spyne(environ, start_response))
        try:
            body = _read_body(environ, self.binding.max_received_message_size)
        except _TooLarge:
            return self._fault(start_response, "Request body is too large", status=413)
        try:
            envelope = environ.get(ENVELOPE_KEY) or Envelope.from_bytes(body)
        except SoapError as exc:
            return self._fault(start_response, f"Malformed SOAP request: {exc}")
        request_wsa = None
        if self.binding.addressing:
            try:
                request_wsa = self._check_addressing(envelope, environ)
            except SoapError as exc:
                return self._fault(start_response, str(exc))
        payload = envelope.body_payload
        if payload is not None and payload.tag in self._oneway_tags:
            return self._acknowledge(environ, body, start_response)
        return self._call_spyne(environ, body, start_response, request_wsa)

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
        self, environ: Environ, body: bytes, start_response: StartResponse
    ) -> WsgiResult:
        start_response("202 Accepted", [("Content-Length", "0")])
        job_environ = dict(environ, **{"wsgi.input": io.BytesIO(body)})
        return _AfterResponse(lambda: self._executor.submit(self._run_oneway, job_environ))

    def _run_oneway(self, environ: Environ) -> None:
        captured: dict[str, str] = {}

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            captured["status"] = status

        try:
            result = b"".join(self._spyne(environ, start_response))
        except Exception:
            log.exception("one-way operation failed")
            return
        status = captured.get("status", "500")
        if not status.startswith("2"):
            log.error("one-way operation failed with %s: %s", status, _fault_reason(result))

    # -- request/response ---------------------------------------------------

    def _call_spyne(
        self,
        environ: Environ,
        body: bytes,
        start_response: StartResponse,
        request_wsa: addressing.AddressingHeaders | None,
    ) -> WsgiResult:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            captured["status"], captured["headers"] = status, headers

        result = b"".join(
            self._spyne(dict(environ, **{"wsgi.input": io.BytesIO(body)}), capture)
        )
        headers: list[tuple[str, str]] = list(captured["headers"])
        if request_wsa is not None and request_wsa.action is not None and result:
            result = self._add_reply_addressing(result, request_wsa)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(result))))
        start_response(captured["status"], headers)
        return [result]

    # -- WS-Addressing ------------------------------------------------------

    def _check_addressing(
        self, envelope: Envelope, environ: Environ
    ) -> addressing.AddressingHeaders:
        """Read the request's WS-Addressing headers; ``To`` must name this service.

        Raises:
            InvalidHeader: A header is malformed, or ``To`` is another address.
        """
        headers = addressing.AddressingHeaders.from_header(envelope.header)
        expected = _request_url(environ)
        if headers.to is not None and _normalise(headers.to) != _normalise(expected):
            raise InvalidHeader(
                f"wsa:To {headers.to!r} is not this service's address {expected!r}"
            )
        return headers

    def _add_reply_addressing(
        self, reply: bytes, request_wsa: addressing.AddressingHeaders
    ) -> bytes:
        """``RelatesTo`` = the request's MessageID, ``Action`` = its Action + ``Response``.

        A request without ``wsa:Action`` did not use WS-Addressing: its reply gets none.
        """
        action = f"{request_wsa.action}Response"
        try:
            return addressing.add_reply_addressing(reply, request_wsa, action)
        except SoapError:
            log.error("Spyne's reply is not a SOAP envelope; sent without WS-Addressing")
            return reply

    # -- faults -------------------------------------------------------------

    def _fault(
        self, start_response: StartResponse, reason: str, *, status: int | None = None
    ) -> WsgiResult:
        """A Client/Sender fault: 500 in SOAP 1.1, 400 in SOAP 1.2 (their HTTP bindings)."""
        if status is None:
            status = 500 if self.version is SoapVersion.SOAP11 else 400
        body = fault_envelope(self.version, Fault(FaultCode.CLIENT, reason))
        start_response(
            f"{status} {_REASONS.get(status, 'Error')}",
            [
                ("Content-Type", f"{self.version.content_type}; charset=utf-8"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]


_REASONS = {400: "Bad Request", 413: "Payload Too Large", 500: "Internal Server Error"}


class _AfterResponse:
    """An empty WSGI body whose ``close()`` (called once the response went out) runs a job.

    ``discard()`` drops the job: the relay host calls it before ``close()`` when
    the response never reached the relay (:mod:`bindings.wsgi_host`), so a
    message the sender saw no ``202`` for (and may send again) is not run.
    """

    def __init__(self, job: Callable[[], object]) -> None:
        self._job: Callable[[], object] | None = job
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def discard(self) -> None:
        with self._lock:
            self._job = None

    def close(self) -> None:
        with self._lock:
            job, self._job = self._job, None
        if job is not None:
            job()


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


def _normalise(url: str) -> str:
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")


def _fault_reason(body: bytes) -> str:
    try:
        payload = Envelope.from_bytes(body).body_payload
    except SoapError:
        return "(no SOAP fault)"
    if payload is None:
        return "(empty body)"
    return " ".join(t.strip() for t in payload.itertext() if t.strip())[:500]


def _all_operations(app: Application) -> set[str]:
    return {
        str(descriptor.operation_name)
        for descriptors in app.interface.service_method_map.values()
        for descriptor in descriptors
    }


def _all_request_tags(app: Application) -> set[str]:
    return {str(tag) for tag in app.interface.service_method_map}
