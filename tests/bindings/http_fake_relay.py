"""A stand-in relay for zeep transport tests: a WSGI server on 127.0.0.1, port 0.

It records every request, strips credentials as the relay does (PROTOCOL.md
section 2) and hands the request to an in-process WSGI app per entity, or
answers with a canned response.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from soap.relay_token import extract_relay_token

WsgiApp = Callable[..., Iterable[bytes]]


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    soap_token: str | None = None


@dataclass
class Canned:
    status: str
    content_type: str = "text/plain"
    body: bytes = b""


@dataclass
class FakeRelay:
    """Routes ``/<entity>`` to a WSGI app or a canned answer; records requests."""

    routes: dict[str, WsgiApp | Canned] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        record = self._record(environ, body)
        if record.soap_token is not None:
            match = extract_relay_token(body)
            assert match is not None
            body = match.strip(body)
        entity = environ["PATH_INFO"].strip("/").split("/")[0]
        route = self.routes.get(entity)
        if route is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no route"]
        if isinstance(route, Canned):
            start_response(route.status, [("Content-Type", route.content_type)])
            return [route.body]
        return self._forward(route, environ, entity, body, start_response)

    def _record(self, environ: dict[str, Any], body: bytes) -> Recorded:
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        record = Recorded(
            environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"], headers, body
        )
        if environ["REQUEST_METHOD"] == "POST" and body.lstrip().startswith(b"<"):
            match = extract_relay_token(body)
            record.soap_token = None if match is None else match.token
        self.requests.append(record)
        return record

    @staticmethod
    def _forward(
        app: WsgiApp,
        environ: dict[str, Any],
        entity: str,
        body: bytes,
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        environ = dict(environ)
        environ.update(
            {
                "wsgi.input": io.BytesIO(body),
                "CONTENT_LENGTH": str(len(body)),
                "SCRIPT_NAME": f"/{entity}",
                "PATH_INFO": environ["PATH_INFO"][len(entity) + 1 :],
            }
        )
        environ.pop("HTTP_SERVICEBUSAUTHORIZATION", None)
        result = app(environ, start_response)
        try:
            return [b"".join(result)]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def fake_relay(routes: dict[str, WsgiApp | Canned] | None = None) -> Iterator[FakeRelay]:
    """Serve a :class:`FakeRelay` on 127.0.0.1:0 in a thread for the ``with`` block."""
    relay = FakeRelay(routes or {})
    server: WSGIServer = make_server("127.0.0.1", 0, relay, handler_class=_QuietHandler)
    relay.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield relay
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def ok_instead_of_accepted(app: WsgiApp) -> WsgiApp:
    """``app`` answering ``200 OK`` where it answers ``202 Accepted``, as Mono's WCF does
    for one-way calls (the body stays empty)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response("200 OK" if status.startswith("202") else status, headers,
                                  exc_info)
        return app(environ, start)

    return wrapped
