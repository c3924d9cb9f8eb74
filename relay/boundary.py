"""The one place where an exception from a handler becomes the sender's answer. No I/O.

Both shells that serve requests, the lean front (``relay.front``) and aiohttp
(``relay.server``), hand whatever a handler raised to :func:`error_answer` and
write what it returns, so the same failure gets the same status, headers and
body whichever served it (PROTOCOL.md §5)::

    RelayError                 its status and code; INFO line (DEBUG when throttled)
    CorsPreflight              204 with the CORS preflight headers (relay.cors)
    hc ProtocolError/HcError   the relay's error for it (relay.exceptions.from_hc)
                               with the core's status hint; a hint of 500 (a
                               LocalProtocolError: we broke the rules) is a bug
    ConnectionError            502 ListenerGone: a peer's socket broke off
    anything else              500 InternalError: a bug of ours, so ONE ERROR line
                               with the traceback and the tracking id

Every answer carries ``X-Relay-Tracking-Id`` (also in the log line and the body),
a SOAP fault of the sender's SOAP version or a JSON body (``relay.error_body``),
``WWW-Authenticate`` on a 401, ``Retry-After`` on a 429, and the CORS headers
that let a page from one of the entity's ``cors_origins`` read it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hc.exceptions import HcError
from hc.headers import reason_phrase
from relay import cors
from relay.error_body import new_tracking_id, render_error
from relay.exceptions import ListenerGone, RelayError, RequestTimeout, Throttled, from_hc
from relay.request_head import host_name

if TYPE_CHECKING:
    from relay.state import RelayState

__all__ = ["TRACKING_HEADER", "ErrorAnswer", "ErrorRequest", "error_answer"]

log = logging.getLogger("relay")
#: The response header naming the tracking id of the relay's own answers.
TRACKING_HEADER = "X-Relay-Tracking-Id"
_HC_PREFIX = "/$hc/"
_REALM = re.compile(r"[A-Za-z0-9.:-]+")


class ErrorRequest(Protocol):
    """What the boundary reads of the request that failed (a ``SenderRequest`` or an
    aiohttp request both have it)."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """The relay's own answer to a failed request.

    Attributes:
        status: the HTTP status.
        reason: the reason phrase (the error's message, made safe), or ``None``.
        headers: content type, tracking id and the rest (no framing headers).
        body: a SOAP fault, JSON, or nothing (a 204 preflight).
        close: close the connection after the answer (a slow body is not waited for).
        error: the relay's error the answer is made of.
    """

    status: int
    reason: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes
    close: bool
    error: RelayError


def error_answer(
    exc: BaseException, request: ErrorRequest, state: RelayState, tracking: str = ""
) -> ErrorAnswer:
    """The answer to ``exc``, raised while serving ``request``; logs it (once).

    Args:
        exc: what the handler raised.
        request: the request it was serving.
        state: the relay's state (entities for CORS, the namespace's host for the realm).
        tracking: the tracking id, or ``""`` for a new one.
    """
    # The observer names a failed call's tracking id first (relay.observe: the inspector shows it).
    tracking = getattr(exc, "tracking_id", "") or tracking or new_tracking_id()
    error = _relay_error(exc, request, tracking)
    state.observer.refused(error, request.path, _remote(request), tracking)
    if isinstance(error, cors.CorsPreflight):
        preflight = cors.preflight_headers(error.origin, request.headers)
        return ErrorAnswer(204, None, preflight, b"", False, error)
    rendered = render_error(error, request.headers.get("Content-Type"), tracking)
    reason = reason_phrase(str(error).replace("\r", " ").replace("\n", " "))
    headers = [("Content-Type", rendered.content_type), (TRACKING_HEADER, tracking)]
    if isinstance(error, Throttled):
        headers.append(("Retry-After", "1"))
    if rendered.status == 401:  # RFC 9110 §11.6.1: a 401 MUST carry a challenge
        realm = _realm(request.host, state.config.host)
        headers.append(("WWW-Authenticate", f'SharedAccessSignature realm="{realm}"'))
    origins = _cors_origins(state, request.path)
    if origins:
        headers.append(("Vary", "Origin"))
        origin = cors.allowed_origin(origins, request.headers.get("Origin"))
        if origin is not None:
            headers.extend(cors.error_headers(origin))
    close = isinstance(error, RequestTimeout)
    return ErrorAnswer(rendered.status, reason, tuple(headers), rendered.body, close, error)


def _relay_error(exc: BaseException, request: ErrorRequest, tracking: str) -> RelayError:
    """The relay's error for ``exc``, logged: one line, a traceback only for a bug."""
    if isinstance(exc, HcError) and not isinstance(exc, RelayError) and exc.status < 500:
        error = from_hc(exc)  # the relay's code for it, and the core's status hint
        error.status = exc.status
        if type(error) is RelayError:  # no relay error of its own
            error.code = type(exc).__name__
        exc = error
    elif isinstance(exc, ConnectionError):
        exc = ListenerGone(f"a connection broke off: {exc or type(exc).__name__}")
    if isinstance(exc, RelayError):
        # A throttled client is retrying in a tight loop: one line per refusal would
        # flood the log (hyco-ws makes ~1000 attempts a second), so those are DEBUG.
        log.log(
            logging.DEBUG if isinstance(exc, Throttled) else logging.INFO,
            "%s %s -> %d %s: %s [tracking %s]",
            request.method, request.path, exc.status, exc.code, exc, tracking,
        )
        return exc
    log.error("%s %s -> 500: internal error [tracking %s]", request.method, request.path,
              tracking, exc_info=exc)
    return RelayError("internal error")


def _remote(request: ErrorRequest) -> str:
    """The client's address, if the request knows it (a front request: a tuple)."""
    remote = getattr(request, "remote", None)
    if isinstance(remote, tuple):
        return str(remote[0])
    return remote if isinstance(remote, str) else ""


def _realm(host: str, default: str) -> str:
    """The host name SAS tokens for this request are scoped to (the challenge's realm)."""
    try:
        name = host_name(host)
    except RelayError:  # a Host the relay refuses anyway
        name = ""
    return name if _REALM.fullmatch(name) else default


def _cors_origins(state: RelayState, path: str) -> tuple[str, ...]:
    """The ``cors_origins`` of the entity ``path`` names; none when there is no entity."""
    resolved = state.registry.resolve(path.removeprefix(_HC_PREFIX))
    return resolved[0].config.cors_origins if resolved is not None else ()
