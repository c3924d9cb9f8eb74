"""The NetTcp binding's errors, under :class:`bindings.exceptions.BindingError`::

    BindingError
    └── NetTcpError                 a session channel could not carry a call
        ├── SessionOpenFailed       the relay refused the session (.status) or is unreachable
        ├── SessionClosed           the session ended (.code, .reason): every call in flight
        │                           fails with it at once; the next call opens a new session
        ├── TooManyCalls            max_calls_per_session in flight (bindings.nettcp.calls); the
        │                           client queues its own calls instead of raising it
        ├── DirectConnectionLost    Hybrid: the direct connection dropped with the call in flight
        │                           (its outcome is unknown; the session goes on relayed)
        └── CallTimeout             no reply within the call timeout (also a TimeoutError)
"""

from __future__ import annotations

from bindings.exceptions import BindingError

__all__ = ["CallTimeout", "DirectConnectionLost", "NetTcpError", "SessionClosed", "SessionOpenFailed"]


class NetTcpError(BindingError):
    """Root of the NetTcp binding's errors."""


class SessionOpenFailed(NetTcpError, ConnectionError):
    """The session could not be opened.

    Attributes:
        status: the relay's HTTP status when it refused (401, 403, 404...), else None.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SessionClosed(NetTcpError, ConnectionError):
    """The session ended before the call's reply came.

    Attributes:
        code: the WebSocket close code (1006: the connection dropped).
        reason: the close reason, or why this side ended it.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the session ended ({code}{': ' + reason if reason else ''})")
        self.code, self.reason = code, reason


class DirectConnectionLost(NetTcpError, ConnectionError):
    """Hybrid mode: the direct connection dropped while the call was in flight."""

    def __init__(self) -> None:
        super().__init__("the direct connection dropped with the call in flight; its outcome"
                         " is unknown (the session goes on relayed)")


class CallTimeout(NetTcpError, TimeoutError):
    """No reply within the call timeout (the session stays up)."""
