"""What the SDK raises, named after ``Microsoft.Azure.Relay``'s exceptions.

    RelayError                         root (.NET ``RelayException``)
    ├── RelayUnreachableError          no connection to the relay (refused, TLS, timeout)
    ├── TokenUnavailableError          the identity provider gave no token (its refusal: permanent)
    ├── ProxyError                     the HTTP proxy in between failed us (not the relay)
    │   ├── ProxyUnreachableError      no connection to the proxy; retried
    │   └── ProxyRefusedError          the proxy refused the CONNECT: status (403 permanent)
    │       └── ProxyAuthenticationRequiredError   407 (or 401): credentials (permanent)
    ├── RelayRejectedError             the relay refused the handshake: status, code, message
    │   ├── AuthorizationFailedError   401, 403 (.NET ``AuthorizationFailedException``)
    │   ├── EndpointNotFoundError      404 (.NET ``EndpointNotFoundException``)
    │   └── QuotaExceededError         403 for a quota (.NET ``QuotaExceededException``)
    └── ConnectionLostError            an open control channel or stream ended: close code, reason
        ├── KeepAliveTimeoutError      the relay left a keep-alive ping unanswered
        └── BodyBrokenError            a request body broke off (the relay closed its socket)
"""

from __future__ import annotations

import json

__all__ = [
    "AuthorizationFailedError",
    "BodyBrokenError",
    "ConnectionLostError",
    "EndpointNotFoundError",
    "KeepAliveTimeoutError",
    "ProxyAuthenticationRequiredError",
    "ProxyError",
    "ProxyRefusedError",
    "ProxyUnreachableError",
    "QuotaExceededError",
    "RelayError",
    "RelayRejectedError",
    "RelayUnreachableError",
    "TokenUnavailableError",
    "error_fields",
    "proxy_refused",
    "rejected",
]


class RelayError(Exception):
    """Root of the SDK's errors."""


class RelayUnreachableError(RelayError, ConnectionError):
    """The relay could not be reached (connection refused, TLS failure, timeout)."""


class TokenUnavailableError(RelayError):
    """No token from the identity provider: it refused the client (``permanent``: wrong
    id, secret or scope) or could not be reached (retried)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ProxyError(RelayError, ConnectionError):
    """The HTTP proxy between us and the relay failed: the relay was never reached.

    Attributes:
        proxy: the proxy's URL, without credentials.
        permanent: retrying will not help (bad credentials, refused by policy, bad setting).
    """

    def __init__(self, proxy: str, message: str, *, permanent: bool = False) -> None:
        super().__init__(f"proxy {proxy}: {message}")
        self.proxy, self.permanent = proxy, permanent


class ProxyUnreachableError(ProxyError):
    """The proxy could not be reached (refused, timeout), or broke off its answer."""


class ProxyRefusedError(ProxyError):
    """The proxy answered the CONNECT with an error status (403: refused by its policy,
    502/503/504: it could not reach the relay).

    Attributes:
        status: the proxy's HTTP status.
        reason: its reason phrase.
        target: the ``host:port`` the tunnel was asked for.
    """

    def __init__(self, proxy: str, target: str, status: int, reason: str) -> None:
        super().__init__(proxy, f"refused the tunnel to {target}: {status} {reason}".rstrip(),
                         permanent=status in (401, 403, 407))
        self.status, self.reason, self.target = status, reason, target


class ProxyAuthenticationRequiredError(ProxyRefusedError):
    """407: the proxy wants (other) credentials, ``http://user:password@host:port``
    (tinyproxy answers wrong ones with 401, which counts the same)."""


def proxy_refused(proxy: str, target: str, status: int, reason: str) -> ProxyRefusedError:
    """The error for a proxy's non-2xx answer to CONNECT."""
    kind = ProxyAuthenticationRequiredError if status in (401, 407) else ProxyRefusedError
    return kind(proxy, target, status, reason)


class RelayRejectedError(RelayError):
    """The relay answered the WebSocket handshake with an HTTP error.

    Attributes:
        status: the HTTP status.
        code: the relay's error code from its JSON body, if any.
        message: the relay's message (or the reason phrase).
        body: the response body as received (at most 64 KiB).
    """

    def __init__(self, status: int, code: str, message: str, body: bytes = b"") -> None:
        super().__init__(f"{status} {code}: {message}" if code else f"{status}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body

    @property
    def permanent(self) -> bool:
        """Retrying will not help (400, 401, 403, 404): the address, key or quota is wrong."""
        return self.status in (400, 401, 403, 404)


class AuthorizationFailedError(RelayRejectedError):
    """401 or 403: the token is missing, wrong, expired or lacks the Listen/Send right."""


class EndpointNotFoundError(RelayRejectedError):
    """404: no such entity (or, for a sender, no listener online)."""


class QuotaExceededError(AuthorizationFailedError):
    """403 for a quota: too many listeners or connections on the entity."""


class ConnectionLostError(RelayError, ConnectionError):
    """An open connection ended: ``close_code`` and ``reason`` are the relay's (1006: dropped)."""

    def __init__(self, close_code: int | None, reason: str = "") -> None:
        text = f"connection closed with {close_code}" + (f": {reason}" if reason else "")
        super().__init__(text)
        self.close_code, self.reason = close_code, reason


class KeepAliveTimeoutError(ConnectionLostError):
    """The relay did not answer a keep-alive ping within ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        super().__init__(1011, f"no pong within {timeout:g} s")
        self.timeout = timeout


class BodyBrokenError(ConnectionLostError):
    """A request body broke off: the relay closed the rendezvous socket before its end
    (the sender went away or was too slow).  Nobody is left to answer."""

    def __init__(self, close_code: int | None, reason: str, received: int) -> None:
        super().__init__(close_code, reason)
        self.received = received
        text = f"the request body broke off after {received} bytes (relay closed the rendezvous: {close_code})"
        self.args = (text,)


def rejected(status: int, reason: str, body: bytes) -> RelayRejectedError:
    """The error for a refused handshake; the relay's body is ``{"error": {"code", "message"}}``."""
    code, message = error_fields(body)
    message = message or reason or "no reason given"
    if status == 403 and "quota" in f"{code} {message} {reason}".lower():
        return QuotaExceededError(status, code, message, body)
    if status in (401, 403):
        return AuthorizationFailedError(status, code, message, body)
    if status == 404:
        return EndpointNotFoundError(status, code, message, body)
    return RelayRejectedError(status, code, message, body)


def error_fields(body: bytes) -> tuple[str, str]:
    """(code, message) of the relay's JSON error body, or ("", the text) for another body."""
    try:
        error = json.loads(body[:65536]).get("error")
        code, message = error.get("code", ""), error.get("message", "")
    except (ValueError, AttributeError, TypeError, RecursionError):
        text = body[:300].decode("utf-8", "replace").strip()
        return "", text if text.isprintable() else ""
    return str(code)[:100], str(message)[:500]
