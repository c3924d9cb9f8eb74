"""What the sans-I/O machines report: small frozen dataclasses. No I/O.

Two layers produce them.  :class:`hc.framing.WebSocketEndpoint` turns bytes
into WebSocket events (:class:`TextReceived`, :class:`BinaryReceived`,
:class:`PingReceived`, :class:`PongReceived`, :class:`ConnectionClosed`);
:class:`hc.protocol.ControlChannel` turns the two data events into
Hybrid Connections commands (:class:`RequestReceived`, :class:`AcceptReceived`,
:class:`ResponseReceived`, :class:`RenewTokenReceived`) and passes the control
events through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hc.messages import AcceptCommand, RequestCommand, ResponseCommand

__all__ = [
    "AcceptReceived",
    "BinaryReceived",
    "ConnectionClosed",
    "Event",
    "PingReceived",
    "PongReceived",
    "RenewTokenReceived",
    "RequestReceived",
    "ResponseReceived",
    "TextReceived",
    "WebSocketEvent",
]


@dataclass(frozen=True)
class TextReceived:
    """A whole text message, its fragments joined and checked to be UTF-8."""

    text: str


@dataclass(frozen=True)
class BinaryReceived:
    """A whole binary message, its fragments joined."""

    data: bytes


@dataclass(frozen=True)
class PingReceived:
    """A Ping; the endpoint has already queued the Pong that answers it."""

    data: bytes


@dataclass(frozen=True)
class PongReceived:
    """A Pong (the answer to one of our Pings, or an unsolicited heartbeat)."""

    data: bytes


@dataclass(frozen=True)
class ConnectionClosed:
    """The closing handshake completed, or the transport ended (``code`` 1006).

    ``code`` and ``reason`` are the peer's Close frame's (1005 when it had no code).
    """

    code: int
    reason: str = ""


@dataclass(frozen=True)
class RequestReceived:
    """Listener side: an HTTP request; ``body`` is None unless ``command.body`` is true.

    An address-only request (``command.is_address_only``) never has a body: the
    listener opens ``command.address`` and receives the full request there.
    """

    command: RequestCommand
    body: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AcceptReceived:
    """Listener side: a WebSocket sender waits at ``command.address``."""

    command: AcceptCommand


@dataclass(frozen=True)
class ResponseReceived:
    """Relay side: a response; ``body`` is None unless ``command.body`` is true."""

    command: ResponseCommand
    body: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RenewTokenReceived:
    """Relay side: the listener sent a fresh token (not yet verified: the relay's job)."""

    token: str = field(repr=False)


#: What :meth:`hc.framing.WebSocketEndpoint.events_received` returns.
WebSocketEvent = TextReceived | BinaryReceived | PingReceived | PongReceived | ConnectionClosed
#: What :meth:`hc.protocol.ControlChannel.events_received` returns.
Event = (
    RequestReceived
    | AcceptReceived
    | ResponseReceived
    | RenewTokenReceived
    | PingReceived
    | PongReceived
    | ConnectionClosed
)
