"""The PEP 3333 environ of a relayed request, as the relay's public origin shows it.

The server name, port and scheme are the **relay's** public origin
(``RelayedRequest.public_base``), never this machine's, so a Spyne WSDL's
``soap:address`` points at the relay.  For a sender's ``POST /payroll/v2?x=1``
on entity ``payroll``::

    SCRIPT_NAME = "/payroll"    PATH_INFO = "/v2"    QUERY_STRING = "x=1"
"""

from __future__ import annotations

import io
import sys
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from bindings.handler import RelayedRequest

__all__ = ["build_environ"]


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
