"""Run any WSGI application (Spyne's included) as a relay :data:`~bindings.handler.Handler`.

The environ is built from the relayed request as PEP 3333 asks, with one rule
that matters for SOAP: the server name, port and scheme are the **relay's**
public origin (``RelayedRequest.public_base``), never this machine's, so a
Spyne WSDL's ``soap:address`` points at the relay.  For a sender's
``POST /payroll/v2?x=1`` on entity ``payroll``::

    SCRIPT_NAME = "/payroll"    PATH_INFO = "/v2"    QUERY_STRING = "x=1"

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

``aclose()`` calls the application's own ``close()``, if it has one (Spyne's
adapter then finishes the one-way work it acknowledged), and shuts the pool down.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import replace
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from bindings.handler import RelayedRequest, RelayedResponse
from soap.envelope import SoapVersion
from soap.fault import Fault, FaultCode, fault_envelope

__all__ = ["WsgiApp", "WsgiHandler", "build_environ"]

log = logging.getLogger("bindings.wsgi")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
_FAULT_REASON = "The server was unable to process the request due to an internal error."


def _latin1(text: str) -> str:
    """A URL path percent-decoded to bytes, as a PEP 3333 "bytes-as-latin-1" string."""
    return unquote_to_bytes(text).decode("latin-1")


def _split_target(target: str, entity_path: str) -> tuple[str, str, str]:
    """``/payroll/v2?x=1`` -> (``/payroll``, ``/v2``, ``x=1``); entity matched case-insensitively."""
    parts = urlsplit(target if target.startswith("/") else "/" + target)
    path = _latin1(parts.path)
    prefix = "/" + entity_path.encode().decode("latin-1")
    head = path[: len(prefix)]
    if head.lower() == prefix.lower() and path[len(prefix) : len(prefix) + 1] in ("", "/"):
        return head, path[len(prefix) :], parts.query
    return "", path, parts.query


def build_environ(request: RelayedRequest, body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ for ``request`` with ``body`` as ``wsgi.input``."""
    origin = urlsplit(request.public_base)
    scheme = origin.scheme or "http"
    port = origin.port or (443 if scheme == "https" else 80)
    script, path_info, query = _split_target(request.target, request.entity_path)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method.upper(),
        "SCRIPT_NAME": script,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": origin.hostname or "localhost",
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": request.remote[0] if request.remote else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if request.remote:
        environ["REMOTE_PORT"] = str(request.remote[1])
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        if "_" in name or not key.replace("_", "").isalnum():
            continue  # "X_Forwarded_For" would pass for X-Forwarded-For: drop, as gunicorn does
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if key == "CONTENT_TYPE":
                environ[key] = value
            continue
        key = "HTTP_" + key
        environ[key] = f"{environ[key]}, {value}" if key in environ else value
    # The relay's public host, whatever Host the listener-side stack would have seen.
    default_port = 443 if scheme == "https" else 80
    host = origin.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    environ["HTTP_HOST"] = host if port == default_port else f"{host}:{port}"
    return environ


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


def error_response(request: RelayedRequest, status: int, reason: str, text: str) -> RelayedResponse:
    """A SOAP fault (of the request's SOAP version) or plain text error response."""
    version = SoapVersion.from_content_type(request.header("Content-Type") or "")
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
    """

    def __init__(
        self,
        app: WsgiApp,
        *,
        max_workers: int = 16,
        executor: Executor | None = None,
        max_body: int = 64 * 1024 * 1024,
    ) -> None:
        self.app, self.max_body = app, max_body
        self._owns_executor = executor is None
        self.executor: Executor = executor or ThreadPoolExecutor(
            max_workers=max(1, max_workers), thread_name_prefix="relay-wsgi"
        )

    def __repr__(self) -> str:
        return f"WsgiHandler({self.app!r})"

    async def _read(self, request: RelayedRequest) -> bytes | None:
        """The body, or None when it is over ``max_body``."""
        buffer = bytearray()
        async for chunk in request.body:
            buffer += chunk
            if len(buffer) > self.max_body:
                return None
        return bytes(buffer)

    async def __call__(self, request: RelayedRequest) -> RelayedResponse:
        body = await self._read(request)
        if body is None:
            text = f"The request body is over this service's limit of {self.max_body} bytes."
            return error_response(request, 413, "Payload Too Large", text)
        environ = build_environ(request, body)
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
