"""Call a WSGI app in-process, the way the relay host does (no sockets)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.util import setup_testing_defaults

RELAY_ORIGIN = "relay.example.com:9350"


@dataclass
class WsgiResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    result: Iterable[bytes] = ()

    def close(self) -> None:
        """Call the WSGI result's ``close()``, as a server does once the response is sent."""
        close = getattr(self.result, "close", None)
        if close is not None:
            close()


def call_wsgi(
    app: Callable[..., Iterable[bytes]],
    method: str = "GET",
    *,
    query: str = "",
    body: bytes = b"",
    content_type: str = "text/xml; charset=utf-8",
    host: str = RELAY_ORIGIN,
    script_name: str = "/payroll",
    path_info: str = "",
    extra: dict[str, Any] | None = None,
    close: bool = True,
) -> WsgiResponse:
    """Run one request through ``app`` and collect the response (calling ``close()``)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": host,
        "wsgi.input": io.BytesIO(body),
    }
    environ.update(extra or {})
    setup_testing_defaults(environ)
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        captured["status"], captured["headers"] = status, headers

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        if close and hasattr(result, "close"):
            result.close()
    return WsgiResponse(
        int(captured["status"].split()[0]), dict(captured["headers"]), data, result
    )
