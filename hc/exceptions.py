"""The Hybrid Connections core's exception tree.

Each error carries a ``status`` hint: the HTTP status a server would answer
with, as h11's errors do.  Who broke the rules decides the branch::

    HcError                            root of everything raised by ``hc``
    ├── ProtocolError                  a rule of the protocol was broken
    │   ├── LocalProtocolError         we broke it (500: a bug on this side)
    │   └── RemoteProtocolError        the peer broke it (400; a WebSocket close code)
    │       ├── MalformedMessage       a control frame that is not a valid command
    │       └── MalformedToken         401: SAS token text that cannot be parsed
    ├── TokenRejected                  401: a well-formed token that does not verify
    │                                  (unknown key name, bad signature, expired)
    ├── AccessDenied                   403: a valid token, wrong right or wrong scope
    └── InvalidConnectionString        a connection string that cannot be used (also
                                       a ``ValueError``); the message holds no secret

The shells translate at their boundary: :mod:`relay.exceptions` maps these to
the relay's errors (``relay.exceptions.from_hc``), the bindings to their
``ConfigurationError`` and ``HostError`` branches.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "HcError",
    "InvalidConnectionString",
    "LocalProtocolError",
    "MalformedMessage",
    "MalformedToken",
    "ProtocolError",
    "RemoteProtocolError",
    "TokenRejected",
]


class HcError(Exception):
    """Root of the core's errors.

    Args:
        message: what went wrong, for a log line or an error body.
        status: overrides the class's HTTP status hint for this one error.
    """

    status: int = 500

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class ProtocolError(HcError):
    """A rule of the Hybrid Connections protocol was broken (by one side or the other)."""

    status = 400


class LocalProtocolError(ProtocolError):
    """We broke the rules: this side tried to send or do something the protocol forbids."""

    status = 500


class RemoteProtocolError(ProtocolError):
    """The peer broke the rules: what it sent cannot be accepted.

    Args:
        message: what went wrong; on a WebSocket, also the close frame's reason.
        status: overrides the class's HTTP status hint for this one error.
        close_code: the WebSocket close code to answer with (RFC 6455 §7.4.1):
            1002 for broken framing, 1007 for invalid UTF-8, 1009 for a message
            over the limit, 1008 (the default) for a control-channel rule broken
            (PROTOCOL.md §3: "1008 policy (... protocol violation)").
    """

    status = 400
    close_code: int = 1008

    def __init__(
        self, message: str = "", *, status: int | None = None, close_code: int | None = None
    ) -> None:
        super().__init__(message, status=status)
        if close_code is not None:
            self.close_code = close_code

    @property
    def reason(self) -> str:
        """The message, as a close frame's reason carries it."""
        return str(self)


class MalformedMessage(RemoteProtocolError):
    """A control-channel frame that is not one valid command (PROTOCOL.md §3)."""


class MalformedToken(RemoteProtocolError):
    """SAS token text that cannot be parsed (PROTOCOL.md §2)."""

    status = 401


class TokenRejected(HcError):
    """A well-formed SAS token that does not verify: unknown key, bad signature, expired."""

    status = 401


class AccessDenied(HcError):
    """A valid SAS token that lacks the right, or whose scope does not cover the target."""

    status = 403


class InvalidConnectionString(HcError, ValueError):
    """A connection string that cannot be used; the message names the part, never a key."""

    status = 400
