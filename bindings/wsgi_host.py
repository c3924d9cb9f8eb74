"""Run any WSGI application (Spyne's included) as a relay :data:`~bindings.handler.Handler`.

The environ is built from the relayed request as PEP 3333 asks
(:func:`bindings.wsgi_environ.build_environ`, also importable from here), with
one rule that matters for SOAP: the server name, port and scheme are the
**relay's** public origin, never this machine's, so a Spyne WSDL's
``soap:address`` points at the relay.

The application runs in a thread of the handler's own pool, sized to the
binding's ``max_concurrent_calls`` (not the event loop's default pool, which
holds only ``min(32, cpus + 4)`` threads); its result is iterated there too.
The result's ``close()`` (PEP 3333) is called once the response was written to
the relay (the response's ``after_sent`` hook): that is where Spyne's one-way
operations start, after their ``202`` went out.  When the response could not be
written, a result with a ``discard()`` method (a relay extension) has it called
first, so work that waits for the response to be sent is dropped, not run.
An exception becomes a 500: a SOAP Server/Receiver fault for SOAP requests,
plain text otherwise, never the traceback (that goes to the log).

The body is read by :meth:`WsgiHandler.prepare`, which the listener awaits
*before* it takes a call slot, so a body trickling in holds no slot and no
thread.  The read is bounded: over ``max_body`` it stops at once (413, with a
SOAP fault for SOAP requests), and XML bodies are fed chunk by chunk to a
:class:`~soap.quotas.QuotaParser` that stops at the first reader quota
exceeded (a Client/Sender fault naming the quota).  The checked tree is handed
on in ``environ["soaprelay.envelope"]`` (:data:`ENVELOPE_KEY`) when it is a SOAP
envelope: that is the one parse of a request, which the Spyne pipeline and the
WS-Security middleware take (:func:`request_envelope`) instead of parsing again.

``aclose()`` calls the application's own ``close()``, if it has one (Spyne's
adapter then finishes the one-way work it acknowledged), and shuts the pool down.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import Any

from bindings.handler import RelayedRequest, RelayedResponse, iter_bytes
from bindings.wsgi_environ import build_environ
from soap.envelope import Envelope, SoapVersion
from soap.exceptions import MalformedXml, NotAnEnvelope, SoapError
from soap.fault import Fault, FaultCode, fault_envelope
from soap.quotas import (
    DEFAULT_MAX_RECEIVED_MESSAGE_SIZE,
    DtdRefused,
    MessageTooLarge,
    QuotaExceeded,
    QuotaParser,
    ReaderQuotas,
)

__all__ = [
    "ENVELOPE_ERROR_KEY",
    "ENVELOPE_KEY",
    "ReadRequest",
    "WsgiApp",
    "WsgiHandler",
    "XmlCheck",
    "build_environ",
    "request_envelope",
]

log = logging.getLogger("bindings.wsgi")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
_FAULT_REASON = "The server was unable to process the request due to an internal error."
#: The environ key of the request's checked :class:`~soap.envelope.Envelope`, when it is one.
ENVELOPE_KEY = "soaprelay.envelope"
#: The environ key of the error that made a parsed body no envelope (a SoapError).
ENVELOPE_ERROR_KEY = "soaprelay.envelope_error"


class XmlCheck(enum.Enum):
    """Which request bodies a :class:`WsgiHandler` parses under its reader quotas."""

    #: Every non-empty body: the app parses them all (Spyne, WS-Security).
    ALWAYS = "always"
    #: Bodies with an XML media type (``text/xml``, ``application/soap+xml``, ``*+xml``).
    XML_MEDIA_TYPE = "xml_media_type"
    #: None: only the size limit applies.
    NEVER = "never"


@dataclass
class ReadRequest(RelayedRequest):
    """A request whose body was read (and checked) before it took a call slot.

    Attributes:
        envelope: the checked SOAP envelope, when the body was parsed and is one.
        envelope_error: why a parsed body is no SOAP envelope (not XML, not an Envelope).
    """

    envelope: Envelope | None = None
    envelope_error: SoapError | None = None


def _is_xml(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("text/xml", "application/xml") or media.endswith("+xml")


def request_envelope(environ: dict[str, Any], body: bytes) -> Envelope:
    """The request's tree: the one :class:`WsgiHandler` parsed, else ``body`` parsed now.

    Under the relay host the body was parsed once, under the reader quotas, as
    it arrived (and when it is no envelope, the error that parse found is
    raised again); a bare WSGI server (tests, a local run) has not parsed it.

    Raises:
        SoapError: The body is not a SOAP envelope.
    """
    parsed = environ.get(ENVELOPE_KEY)
    if isinstance(parsed, Envelope):
        return parsed
    error = environ.get(ENVELOPE_ERROR_KEY)
    if isinstance(error, SoapError):
        raise error
    return Envelope.from_bytes(body)


class _Collector:
    """``start_response`` and the legacy ``write`` callable (PEP 3333)."""

    def __init__(self) -> None:
        self.status = "500 Internal Server Error"
        self.headers: list[tuple[str, str]] = []
        self.written: list[bytes] = []
        self.started = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and self.started:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers, self.started = status, list(headers), True
        return self.written.append


def _run_app(app: WsgiApp, environ: dict[str, Any]) -> tuple[RelayedResponse, object]:
    """Call the app and drain its result in this (worker) thread.

    Returns the response and the result, to be ``close()``-d once the response
    was sent; when the app fails while iterating, it is closed here at once.
    """
    collector = _Collector()
    result = app(environ, collector.start_response)
    try:
        chunks = [*collector.written, *(bytes(c) for c in result if c)]
    except BaseException:
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise
    code, _, reason = collector.status.partition(" ")
    return RelayedResponse(int(code), reason, tuple(collector.headers), b"".join(chunks)), result


def _finish(result: object, *, sent: bool) -> None:
    """``discard()`` (when not ``sent``) and ``close()`` a WSGI result, logging failures."""
    try:
        if not sent:
            discard = getattr(result, "discard", None)
            if discard is not None:
                discard()
        close = getattr(result, "close", None)
        if close is not None:
            close()
    except Exception:
        log.exception("closing a WSGI result failed")


def error_response(
    request: RelayedRequest,
    status: int,
    reason: str,
    text: str,
    default: SoapVersion | None = None,
) -> RelayedResponse:
    """A SOAP fault (of the request's SOAP version, else ``default``) or a plain text one."""
    version = SoapVersion.from_content_type(request.header("Content-Type") or "") or default
    if version is None:
        headers = (("Content-Type", "text/plain; charset=utf-8"),)
        return RelayedResponse(status, reason, headers, text.encode())
    code = FaultCode.CLIENT if status < 500 else FaultCode.SERVER
    body = fault_envelope(version, Fault(code, text))
    headers = (("Content-Type", f"{version.content_type}; charset=utf-8"),)
    return RelayedResponse(status, reason, headers, body)


class WsgiHandler:
    """A Handler running a WSGI application in its own thread pool.

    Args:
        app: the WSGI callable.
        max_workers: threads in the handler's pool: how many app calls run at once.
        executor: run the app there instead; the handler then makes no pool and
            leaves this one running on :meth:`aclose`.
        max_body: largest request body accepted; larger ones get 413.
        quotas: reader quotas for the bodies ``xml_check`` selects.
        xml_check: which bodies are parsed under ``quotas``.
        soap_version: the version of faults for requests without a SOAP media type.
    """

    def __init__(
        self,
        app: WsgiApp,
        *,
        max_workers: int = 16,
        executor: Executor | None = None,
        max_body: int = DEFAULT_MAX_RECEIVED_MESSAGE_SIZE,
        quotas: ReaderQuotas | None = None,
        xml_check: XmlCheck = XmlCheck.XML_MEDIA_TYPE,
        soap_version: SoapVersion | None = None,
    ) -> None:
        self.app, self.max_body = app, max_body
        self.quotas = quotas or ReaderQuotas()
        self.xml_check, self.soap_version = xml_check, soap_version
        self._owns_executor = executor is None
        self.executor: Executor = executor or ThreadPoolExecutor(
            max_workers=max(1, max_workers), thread_name_prefix="relay-wsgi"
        )

    def __repr__(self) -> str:
        return f"WsgiHandler({self.app!r})"

    def _parses(self, request: RelayedRequest) -> bool:
        if self.xml_check is XmlCheck.ALWAYS:
            return True
        return self.xml_check is XmlCheck.XML_MEDIA_TYPE and _is_xml(
            request.header("Content-Type") or ""
        )

    async def prepare(self, request: RelayedRequest) -> ReadRequest | RelayedResponse:
        """Read and check the body; the listener awaits this before taking a call slot.

        Returns:
            The request with its body read, or the error response when the body
            is over ``max_body`` (413), over a reader quota or not well-formed XML.
        """
        if isinstance(request, ReadRequest):
            return request
        parse = _BodyParse(
            QuotaParser(self.quotas, max_size=self.max_body) if self._parses(request) else None
        )
        buffer = bytearray()
        try:
            async for chunk in request.body:
                if len(buffer) + len(chunk) > self.max_body:
                    raise MessageTooLarge(self.max_body)
                buffer += chunk
                parse.feed(chunk)
            envelope = parse.close() if buffer else None
        except (MessageTooLarge, QuotaExceeded, DtdRefused) as exc:
            return self._refuse(request, exc)
        body = bytes(buffer)
        values = {f.name: getattr(request, f.name) for f in fields(request)}
        values.update(body=iter_bytes(body), _read=body, envelope=envelope,
                      envelope_error=parse.error)
        return ReadRequest(**values)

    def _refuse(self, request: RelayedRequest, exc: Exception) -> RelayedResponse:
        """413 for size; a Client/Sender fault (500 in SOAP 1.1, else 400) for the rest."""
        log.info("refused %s %s from %s: %s", request.method, request.target,
                 request.remote[0] if request.remote else "?", exc)
        if isinstance(exc, MessageTooLarge):
            return error_response(request, 413, "Payload Too Large", str(exc), self.soap_version)
        version = (
            SoapVersion.from_content_type(request.header("Content-Type") or "")
            or self.soap_version
        )
        text = str(exc) if isinstance(exc, QuotaExceeded) else f"Malformed SOAP request: {exc}"
        if version is None:
            headers = (("Content-Type", "text/plain; charset=utf-8"),)
            return RelayedResponse(400, "Bad Request", headers, text.encode())
        status, reason = (500, "Internal Server Error") if version is SoapVersion.SOAP11 else (
            400, "Bad Request")
        headers = (("Content-Type", f"{version.content_type}; charset=utf-8"),)
        return RelayedResponse(status, reason, headers,
                               fault_envelope(version, Fault(FaultCode.CLIENT, text)))

    async def __call__(self, request: RelayedRequest) -> RelayedResponse:
        prepared = await self.prepare(request)
        if isinstance(prepared, RelayedResponse):
            return prepared
        body = prepared._read or b""
        environ = build_environ(prepared, body)
        if prepared.envelope is not None:
            environ[ENVELOPE_KEY] = prepared.envelope
        elif prepared.envelope_error is not None:
            environ[ENVELOPE_ERROR_KEY] = prepared.envelope_error
        loop = asyncio.get_running_loop()
        try:
            response, result = await loop.run_in_executor(
                self.executor, _run_app, self.app, environ
            )
        except Exception:
            log.exception("WSGI application failed on %s %s", request.method, request.target)
            return error_response(request, 500, "Internal Server Error", _FAULT_REASON)
        if not hasattr(result, "close") and not hasattr(result, "discard"):
            return response

        async def after_sent() -> None:
            await loop.run_in_executor(self.executor, lambda: _finish(result, sent=True))

        async def if_unsent() -> None:
            await loop.run_in_executor(self.executor, lambda: _finish(result, sent=False))

        return replace(response, after_sent=after_sent, if_unsent=if_unsent)

    async def aclose(self) -> None:
        """Close the app (its ``close()``, in a thread) and shut the handler's pool down."""
        close = getattr(self.app, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
        if self._owns_executor:
            await asyncio.to_thread(self.executor.shutdown, True)


class _BodyParse:
    """The quota parse of one body, fed as it arrives; what it found, tree or error.

    A body that is not XML (or not a SOAP envelope) is the application's to
    refuse, in its own words (Spyne's adapter answers a Client fault): the
    error is kept for it, so that it need not parse the body again to find it.
    The body is still held to ``max_body``; a DTD is refused here, at once.
    """

    def __init__(self, parser: QuotaParser | None) -> None:
        self.parser = parser
        self.error: SoapError | None = None

    def feed(self, chunk: bytes) -> None:
        if self.parser is None:
            return
        try:
            self.parser.feed(chunk)
        except DtdRefused:
            raise
        except MalformedXml as exc:
            self.parser, self.error = None, exc

    def close(self) -> Envelope | None:
        """The body's envelope, or None (no parse, or ``error`` says why)."""
        if self.parser is None:
            return None
        try:
            return Envelope.from_element(self.parser.close())
        except DtdRefused:
            raise
        except (MalformedXml, NotAnEnvelope) as exc:
            self.error = exc
            return None
