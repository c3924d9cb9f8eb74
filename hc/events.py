"""What the sans-I/O machines report: small frozen dataclasses. No I/O.

Two layers produce them.  :class:`hc.framing.WebSocketEndpoint` turns bytes
into WebSocket events (:class:`TextReceived`, :class:`BinaryReceived`,
:class:`PingReceived`, :class:`PongReceived`, :class:`ConnectionClosed`);
:class:`hc.protocol.ControlChannel` turns the two data events into
Hybrid Connections commands (:class:`RequestReceived`, :class:`AcceptReceived`,
:class:`ResponseReceived`, :class:`RenewTokenReceived`, and :class:`BodyChunk`
when it streams bodies) and passes the control events through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hc.messages import AcceptCommand, RequestCommand, ResponseCommand

__all__ = [
    "AcceptReceived",
    "BinaryFragment",
    "BinaryReceived",
    "BodyChunk",
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

    # Written out, not generated: compiled by mypyc, a dataclass's generated __init__
    # stays interpreted (~2-11k instructions a call); this one compiles. Same
    # parameters and defaults as the fields (tests/hc/test_inits.py checks).
    def __init__(self, text: str) -> None:
        object.__setattr__(self, "text", text)


@dataclass(frozen=True)
class BinaryReceived:
    """A whole binary message, its fragments joined."""

    data: bytes

    # Written out, not generated: compiled by mypyc, a dataclass's generated __init__
    # stays interpreted (~2-11k instructions a call); this one compiles. Same
    # parameters and defaults as the fields (tests/hc/test_inits.py checks).
    def __init__(self, data: bytes) -> None:
        object.__setattr__(self, "data", data)


@dataclass(frozen=True)
class BinaryFragment:
    """A piece of a binary message, from an endpoint that streams them (``stream_binary``).

    Pieces come as their bytes arrive, not per frame: one 100 MiB frame is many
    pieces, and nothing is held whole.  ``fin`` is true on the message's last piece
    (which may be empty).
    """

    data: bytes = field(repr=False)
    fin: bool = False


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

    On a channel that streams bodies, ``body`` is always None and, when
    ``command.body`` is true, :class:`BodyChunk` events follow with the body.

    An address-only request (``command.is_address_only``) never has a body: the
    listener opens ``command.address`` and receives the full request there.
    """

    command: RequestCommand
    body: bytes | None = field(default=None, repr=False)

    # Written out, not generated: compiled by mypyc, a dataclass's generated __init__
    # stays interpreted (~2-11k instructions a call); this one compiles. Same
    # parameters and defaults as the fields (tests/hc/test_inits.py checks).
    def __init__(self, command: RequestCommand, body: bytes | None = None) -> None:
        object.__setattr__(self, "command", command)
        object.__setattr__(self, "body", body)


@dataclass(frozen=True)
class AcceptReceived:
    """Listener side: a WebSocket sender waits at ``command.address``."""

    command: AcceptCommand


@dataclass(frozen=True)
class ResponseReceived:
    """Relay side: a response; ``body`` is None unless ``command.body`` is true.

    On a channel that streams bodies, ``body`` is always None and, when
    ``command.body`` is true, :class:`BodyChunk` events follow with the body.
    """

    command: ResponseCommand
    body: bytes | None = field(default=None, repr=False)

    # Written out, not generated: compiled by mypyc, a dataclass's generated __init__
    # stays interpreted (~2-11k instructions a call); this one compiles. Same
    # parameters and defaults as the fields (tests/hc/test_inits.py checks).
    def __init__(self, command: ResponseCommand, body: bytes | None = None) -> None:
        object.__setattr__(self, "command", command)
        object.__setattr__(self, "body", body)


@dataclass(frozen=True)
class RenewTokenReceived:
    """Relay side: the listener sent a fresh token (not yet verified: the relay's job)."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class BodyChunk:
    """Streaming channels (``stream_bodies``): a piece of the body of the request or
    response reported just before; ``end`` is true on its last piece (maybe empty)."""

    data: bytes = field(repr=False)
    end: bool = False


#: What :meth:`hc.framing.WebSocketEndpoint.events_received` returns.
WebSocketEvent = (
    TextReceived | BinaryReceived | BinaryFragment | PingReceived | PongReceived | ConnectionClosed
)
#: What :meth:`hc.protocol.ControlChannel.events_received` returns.
Event = (
    RequestReceived
    | AcceptReceived
    | ResponseReceived
    | RenewTokenReceived
    | BodyChunk
    | PingReceived
    | PongReceived
    | ConnectionClosed
)
