"""The bindings' exception tree.

One root per package (the relay's own errors live in ``relay.exceptions``)::

    BindingError                       root of everything raised by ``bindings``
    ├── ConfigurationError             bad settings: connection string, address, binding options
    ├── TokenUnavailable               the identity provider gave no token (.permanent: it refused)
    ├── HostError                      a relay host could not come or stay online
    │   ├── RelayUnreachable           no WebSocket to the relay (DNS, refused, TLS, timeout); retried
    │   ├── ProxyFailed                the HTTP proxy on the way failed (.status; 0: unreachable)
    │   │   └── ProxyAuthenticationFailed  407: the proxy wants (other) credentials; no retry
    │   ├── ListenerRejected           the relay refused the listener handshake (.status, .code)
    │   │   └── ListenerQuotaExceeded  403: the entity already has its maximum of listeners
    │   ├── ListenerDisconnected       the relay closed the control channel (.close_code); retried
    │   │   └── RelayUnresponsive      the relay stopped answering keep-alive pings; retried
    │   └── HostOpenTimeout            ``open()`` did not reach ONLINE in time
    ├── RelayTransportError            a zeep client's request failed without a SOAP fault (WSDL
    │   │                              fetch 401/404/502, JSON error, relay unreachable); also a
    │   │                              ``zeep.exceptions.TransportError``, so it is defined in
    │   │                              ``bindings.relay_errors`` and imported from here lazily
    │   └── ProxyTransportError        the HTTP proxy on the way refused (407...) or is unreachable
    └── UntrustedResponse              a reply failed the client's WS-Security checks (unsigned,
                                       untrusted signer, tampered, expired; ``.fault`` is the
                                       ``soap.exceptions.SecurityFault``); also a
                                       ``zeep.exceptions.SignatureVerificationFailed``, so it is
                                       defined in ``bindings.zeep_security``, imported lazily

Errors from other libraries (aiohttp, websockets, zeep) are translated at the
boundary with ``raise ... from exc``.  Add new classes under the branch they
belong to and extend the drawing above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bindings.relay_errors import RelayTransportError
    from bindings.zeep_security import UntrustedResponse

__all__ = [
    "BindingError",
    "ConfigurationError",
    "HostError",
    "HostOpenTimeout",
    "ListenerDisconnected",
    "ListenerQuotaExceeded",
    "ListenerRejected",
    "ProxyAuthenticationFailed",
    "ProxyFailed",
    "RelayTransportError",
    "RelayUnreachable",
    "RelayUnresponsive",
    "TokenUnavailable",
    "UntrustedResponse",
]


class BindingError(Exception):
    """Root of the bindings' errors."""


class ConfigurationError(BindingError):
    """Settings the bindings cannot work with; the message says which and why.

    Messages never contain keys or tokens.
    """


class TokenUnavailable(BindingError):
    """No token from the identity provider (``TokenProvider.client_credentials``).

    Attributes:
        permanent: the provider refused the client (wrong id, secret or scope);
            otherwise it could not be reached and a retry may help.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class HostError(BindingError):
    """A relay host (listener) could not come online or lost its connection.

    Hosts keep the latest one in ``last_error``.
    """


class RelayUnreachable(HostError):
    """No WebSocket could be opened to the relay; the listener retries with backoff."""


class ProxyFailed(HostError):
    """The HTTP proxy between the host and the relay failed; the relay was never reached.

    Attributes:
        proxy: the proxy's URL (without credentials).
        status: the proxy's answer to CONNECT (403: its policy, 502/503: it cannot
            reach the relay), or 0 when the proxy itself could not be reached.
        permanent: retrying cannot help (credentials, policy, a bad proxy setting).
    """

    def __init__(self, message: str, *, proxy: str, status: int = 0, permanent: bool = False) -> None:
        super().__init__(message)
        self.proxy, self.status, self.permanent = proxy, status, permanent


class ProxyAuthenticationFailed(ProxyFailed):
    """407: the proxy wants credentials, or other ones (``http://user:password@host:port``)."""


class ListenerRejected(HostError):
    """The relay answered the listener's WebSocket handshake with an HTTP error.

    Attributes:
        status: the HTTP status of the handshake response, e.g. 401.
        code: the relay's error code from its JSON body, or "" when absent.
        relay_message: the relay's message, or the HTTP reason phrase.
    """

    def __init__(self, status: int, code: str, relay_message: str) -> None:
        detail = f" ({code})" if code else ""
        super().__init__(f"relay refused the listener: HTTP {status}{detail}: {relay_message}")
        self.status, self.code, self.relay_message = status, code, relay_message

    @property
    def permanent(self) -> bool:
        """True when retrying cannot help (bad request, credentials, rights, entity)."""
        return self.status in (400, 401, 403, 404)


class ListenerQuotaExceeded(ListenerRejected):
    """403: the entity already has its maximum number of listeners (PROTOCOL.md §5)."""


class ListenerDisconnected(HostError):
    """The relay closed the control channel; the listener reconnects.

    Attributes:
        close_code: the WebSocket close code (1001 entity gone or relay stopping,
            1008 policy: token expired or protocol violation, 1011 relay error),
            or None when the connection dropped without a close frame.
        reason: the close reason the relay sent.
    """

    def __init__(self, close_code: int | None, reason: str = "") -> None:
        what = "no close frame" if close_code is None else f"code {close_code}"
        suffix = f": {reason}" if reason else ""
        super().__init__(f"relay closed the listener connection ({what}){suffix}")
        self.close_code, self.reason = close_code, reason


class RelayUnresponsive(ListenerDisconnected):
    """The relay did not answer a keep-alive ping in time: the link is gone (a network cut,
    a dead relay), so the listener dropped the connection itself and reconnects."""

    def __init__(self, timeout: float) -> None:
        HostError.__init__(
            self,
            f"the relay did not answer a keep-alive ping within {timeout:g} s"
            " (connection lost); reconnecting",
        )
        self.close_code, self.reason = 1006, "keep-alive ping unanswered"


class HostOpenTimeout(HostError):
    """The host did not come online in time; the last connection error is the cause."""


def __getattr__(name: str) -> Any:
    # RelayTransportError and UntrustedResponse subclass zeep's errors, and importing
    # zeep costs ~0.3 s: they live in zeep-side modules and are imported on first
    # use, so that the CLI and the hosting side stay light.
    if name == "RelayTransportError":
        from bindings.relay_errors import RelayTransportError

        return RelayTransportError
    if name == "UntrustedResponse":
        from bindings.zeep_security import UntrustedResponse

        return UntrustedResponse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
