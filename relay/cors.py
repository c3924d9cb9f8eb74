"""CORS for the relay's own answers, so that a browser page can be a sender. No I/O.

An entity may name the origins whose pages call it (``cors_origins``, config
only).  For a request whose ``Origin`` is one of them:

* the relay's own error responses (401, 403, 413, 429, 502, 504, ...) carry
  ``Access-Control-Allow-Origin: <that origin>``, ``Vary: Origin`` and
  ``Access-Control-Expose-Headers`` naming the relay's headers, so the page can
  read the status, the SOAP fault or JSON body, the tracking id and the
  ``WWW-Authenticate`` challenge instead of a bare "Failed to fetch";
* a CORS preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is
  answered by the relay itself, 204, allowing the method and headers asked for:
  the browser sends it without the ``ServiceBusAuthorization`` header, and the
  token header is the relay's business, not the listener's.

The listener's own responses are never touched: CORS on them is the listener's
(it sets ``Access-Control-Allow-Origin`` itself, or the page cannot read them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from relay.exceptions import RelayError

__all__ = [
    "ANY_ORIGIN",
    "PREFLIGHT_MAX_AGE",
    "CorsPreflight",
    "allowed_origin",
    "error_headers",
    "is_preflight",
    "normalize_origin",
    "preflight_headers",
]

#: The ``cors_origins`` entry that admits every origin.
ANY_ORIGIN = "*"
#: Seconds a browser may cache the relay's preflight answer (Chromium caps it at 7,200).
PREFLIGHT_MAX_AGE = 600
#: What a page may read of the relay's own errors besides the CORS-safelisted headers.
EXPOSED = "X-Relay-Tracking-Id, WWW-Authenticate, Retry-After"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_ORIGIN = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Longest ``Access-Control-Request-Headers`` value echoed back.
_MAX_ECHO = 2048


class CorsPreflight(RelayError):
    """Not a failure: the relay answers this preflight itself (see :func:`preflight_headers`)."""

    status = 204
    code = "CorsPreflight"

    def __init__(self, origin: str) -> None:
        super().__init__(f"CORS preflight from {origin}")
        self.origin = origin


def normalize_origin(value: str) -> str:
    """``"HTTPS://App.Example.com:443"`` -> ``"https://app.example.com"``, as browsers send it.

    Raises ``ValueError`` naming the problem for anything but ``scheme://host[:port]``
    or ``"*"``.
    """
    if value == ANY_ORIGIN:
        return value
    match = _ORIGIN.fullmatch(value)
    if match is None:
        if _ORIGIN.match(value) and value.endswith("/"):
            raise ValueError(f"{value!r} is not an origin: drop the trailing '/'")
        raise ValueError(
            f"{value!r} is not an origin (expected scheme://host[:port], no path, or \"*\")"
        )
    scheme, host = match["scheme"].lower(), match["host"].lower()
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{value!r} has a port out of range")
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def allowed_origin(origins: tuple[str, ...], origin: str | None) -> str | None:
    """``origin`` if the entity's ``origins`` admit it, else ``None``."""
    if not origins or not origin or origin == "null":
        return None
    if ANY_ORIGIN in origins or origin in origins:
        return origin if _ORIGIN.fullmatch(origin) else None
    return None


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    """A CORS preflight: ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``."""
    return method == "OPTIONS" and "Origin" in headers and "Access-Control-Request-Method" in headers


def error_headers(origin: str) -> tuple[tuple[str, str], ...]:
    """The headers that let a page at ``origin`` read one of the relay's own errors."""
    return (
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Expose-Headers", EXPOSED),
    )


def preflight_headers(origin: str, headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The relay's answer to a preflight from ``origin``: what was asked for is allowed."""
    method = headers.get("Access-Control-Request-Method", "")
    answer = [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", method if _TOKEN.fullmatch(method) else "POST"),
        ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE)),
        ("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    ]
    asked = _tokens(headers.get("Access-Control-Request-Headers", "")[:_MAX_ECHO].split(","))
    if asked:
        answer.append(("Access-Control-Allow-Headers", ", ".join(asked)))
    return tuple(answer)


def _tokens(items: Iterable[str]) -> list[str]:
    """The well-formed header names among ``items`` (anything else is not echoed)."""
    return [item.strip() for item in items if _TOKEN.fullmatch(item.strip())]
