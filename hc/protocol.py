"""The Hybrid Connections control channel as a sans-I/O state machine, both roles.

The one place where the control-channel rules (PROTOCOL.md §3) are judged, in
the style of websockets' ``Protocol`` and h11's ``Connection``: bytes in
(:meth:`ControlChannel.receive_data`, :meth:`~ControlChannel.receive_eof`),
events out (:meth:`~ControlChannel.events_received`), bytes to write
(:meth:`~ControlChannel.data_to_send`).  Nothing here reads a socket.

    >>> relay, listener = ControlChannel(Role.RELAY), ControlChannel(Role.LISTENER)
    >>> relay.send_request(RequestCommand("ws://h/$hc/p?sb-hc-id=1", "1", "/p", "POST", body=True), b"hi")
    >>> for chunk in relay.data_to_send():
    ...     listener.receive_data(chunk)
    >>> listener.events_received()[0].body
    b'hi'

The rules:

- Text messages carry one JSON command, binary messages carry bodies.
- A ``request`` (relay -> listener) or ``response`` (listener -> relay) with
  ``"body": true`` "is followed at once by exactly one binary message, with
  nothing else in between on that socket".  The sender here queues both in one
  call; the receiver reports the command only once its body has arrived.
- hyco-https sends a 0-byte binary message after a ``"body": false``
  response: "accept and discard it".
- An address-only request (``command.is_address_only``) has no body.
- A malformed command, a binary message where a command is due, or a text
  message where a body is due, is a protocol violation: 1008.

States (:attr:`ControlChannel.state`) and transitions::

    OPEN          --command with "body": true received-----> AWAITING_BODY
    AWAITING_BODY --the binary message (event reported)-----> OPEN
    OPEN, AWAITING_BODY --send_close()----------------------> CLOSING
    OPEN, AWAITING_BODY --bad input (Close queued, raised)--> CLOSING
    OPEN, AWAITING_BODY --peer's Close----------------------> CLOSED   ConnectionClosed
    CLOSING       --peer's Close----------------------------> CLOSED   ConnectionClosed
    any           --receive_eof()---------------------------> CLOSED   ConnectionClosed(1006)

AWAITING_BODY is a sub-state of OPEN: sending is allowed in it.  Under it,
:mod:`hc.framing` does RFC 6455 (masking, fragments, Ping/Pong, Close).

Streaming (rendezvous sockets, where bodies may be any size).  A channel made
with ``stream_bodies=True`` reports a command with ``"body": true`` at once and
its body as :class:`~hc.events.BodyChunk` pieces as they arrive, the last with
``end`` set; nothing is held whole, and the reader bounds the size.  Either
role may send a body in pieces: ``send_request(command, streamed=True)`` (or
``send_response``), then :meth:`ControlChannel.send_body_chunk` until one with
``end=True``.  Until then no other command may be sent: the body's message must
follow its command with nothing in between.  Pings, Pongs and Close may, as
RFC 6455 allows control frames between fragments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import Enum

from hc import framing
from hc.events import (
    AcceptReceived,
    BinaryFragment,
    BinaryReceived,
    BodyChunk,
    Event,
    RenewTokenReceived,
    RequestReceived,
    ResponseReceived,
    TextReceived,
    WebSocketEvent,
)
from hc.exceptions import LocalProtocolError, MalformedMessage, RemoteProtocolError
from hc.fanout import PreparedRequest
from hc.frames import Mask, apply_mask
from hc.messages import (
    AcceptCommand,
    RenewTokenCommand,
    RequestCommand,
    ResponseCommand,
    parse_listener_command,
    parse_relay_command,
)

__all__ = ["ControlChannel", "Role", "State"]

#: PROTOCOL.md §3: "1008 policy (token expired, protocol violation)".
POLICY_VIOLATION = 1008


class Role(Enum):
    """RELAY is the WebSocket server of a listener's channel, LISTENER its client."""

    RELAY = "relay"
    LISTENER = "listener"


class State(Enum):
    """The channel's life; the transitions are in the module docstring."""

    OPEN = "open"
    AWAITING_BODY = "awaiting body"
    CLOSING = "closing"
    CLOSED = "closed"


class _Inbound(Enum):
    """What the next data message from the peer must be."""

    COMMAND = "command"
    BODY = "body"
    COMMAND_OR_EMPTY = "command, or the 0-byte message hyco-https sends after a bodiless response"


class ControlChannel:
    """One end of a Hybrid Connections control channel (or of a rendezvous socket).

    Args:
        role: RELAY (parses responses and renewToken; sends requests and accepts)
            or LISTENER (the reverse).
        max_message_size: the largest message accepted, a body or a command (1009 beyond).
        mask_key: a fresh 4-byte masking key per frame, used by the LISTENER (a client).
        mask: the masking function; :func:`hc.frames.apply_mask` by default.
        stream_bodies: report bodies as :class:`~hc.events.BodyChunk` pieces as they
            arrive (a rendezvous socket) instead of whole with their command;
            ``max_message_size`` then bounds commands only.
    """

    def __init__(
        self,
        role: Role,
        *,
        max_message_size: int = framing.DEFAULT_MAX_MESSAGE_SIZE,
        mask_key: Callable[[], bytes] = lambda: os.urandom(4),
        mask: Mask = apply_mask,
        stream_bodies: bool = False,
    ) -> None:
        self.role = role
        self.stream_bodies = stream_bodies
        side = framing.Side.SERVER if role is Role.RELAY else framing.Side.CLIENT
        self._ws = framing.WebSocketEndpoint(
            side, max_message_size=max_message_size, mask_key=mask_key, mask=mask,
            on_event=self._on_websocket_event, stream_binary=stream_bodies,
        )
        self._events: list[Event] = []
        self._inbound = _Inbound.COMMAND
        self._pending: RequestCommand | ResponseCommand | None = None  # awaiting its body
        self._sending_body: str | None = None  # what we send a body in pieces for

    @property
    def state(self) -> State:
        """OPEN, AWAITING_BODY, CLOSING or CLOSED."""
        ws_state = self._ws.state
        if ws_state is framing.State.OPEN:
            return State.AWAITING_BODY if self._inbound is _Inbound.BODY else State.OPEN
        return State.CLOSING if ws_state is framing.State.CLOSING else State.CLOSED

    @property
    def buffered(self) -> int:
        """Bytes held for incomplete frames and messages (bounded by ``max_message_size``)."""
        return self._ws.buffered

    @property
    def sending_body(self) -> bool:
        """Whether a body being sent in pieces still lacks its last piece."""
        return self._sending_body is not None

    # -- input -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Parse the next bytes from the peer.

        Raises:
            RemoteProtocolError: the peer broke RFC 6455 (``close_code`` 1002, 1007, 1009)
                or a control-channel rule (1008; :class:`~hc.exceptions.MalformedMessage`
                for a command that does not parse).  The Close is queued, the state is
                CLOSING, and the events parsed before the bad input stay available.
        """
        self._ws.receive_data(data)

    def receive_eof(self) -> None:
        """The peer's end of the stream: CLOSED, with ConnectionClosed(1006) unless it was."""
        self._ws.receive_eof()

    def events_received(self) -> list[Event]:
        """The events parsed since the last call, in order."""
        events = self._events[:]
        self._events.clear()
        return events

    def data_to_send(self) -> list[bytes]:
        """The bytes to write, in order, since the last call."""
        return self._ws.data_to_send()

    def _on_websocket_event(self, event: WebSocketEvent) -> None:
        if isinstance(event, TextReceived):
            self._on_text(event.text)
        elif isinstance(event, BinaryReceived):
            self._on_binary(event.data)
        elif isinstance(event, BinaryFragment):
            self._on_fragment(event.data, event.fin)
        else:
            self._events.append(event)

    def _on_text(self, text: str) -> None:
        if self._inbound is _Inbound.BODY:
            assert self._pending is not None
            raise self._violation(f"text message where the body of {_describe(self._pending)} is due")
        self._inbound = _Inbound.COMMAND
        try:
            command = (parse_listener_command if self.role is Role.RELAY else parse_relay_command)(text)
        except MalformedMessage as exc:  # its close_code is 1008 already
            self._ws.fail(exc.close_code, exc.reason)
            raise
        if isinstance(command, RenewTokenCommand):
            self._events.append(RenewTokenReceived(command.token))
        elif isinstance(command, AcceptCommand):
            self._events.append(AcceptReceived(command))
        elif command.body:  # PROTOCOL.md §3: "exactly one binary WebSocket message ... follows"
            self._pending, self._inbound = command, _Inbound.BODY
            if self.stream_bodies:  # reported now; its body follows as BodyChunk events
                self._events.append(
                    ResponseReceived(command) if isinstance(command, ResponseCommand)
                    else RequestReceived(command)
                )
        elif isinstance(command, ResponseCommand):
            self._events.append(ResponseReceived(command))
            self._inbound = _Inbound.COMMAND_OR_EMPTY
        else:
            self._events.append(RequestReceived(command))

    def _on_binary(self, data: bytes) -> None:
        inbound, pending = self._inbound, self._pending
        self._inbound, self._pending = _Inbound.COMMAND, None
        if inbound is _Inbound.BODY:
            if isinstance(pending, ResponseCommand):
                self._events.append(ResponseReceived(pending, data))
            elif isinstance(pending, RequestCommand):
                self._events.append(RequestReceived(pending, data))
        elif inbound is _Inbound.COMMAND_OR_EMPTY and not data:
            return  # PROTOCOL.md §3: the 0-byte message after "body": false, discarded
        else:
            raise self._violation(f"binary message of {len(data)} bytes where a command is due")

    def _on_fragment(self, data: bytes, fin: bool) -> None:
        inbound = self._inbound
        if inbound is _Inbound.BODY:
            self._events.append(BodyChunk(data, fin))
        elif inbound is not _Inbound.COMMAND_OR_EMPTY or data:
            raise self._violation(f"binary message where a command is due ({len(data)} bytes in)")
        if fin:  # the body (or the 0-byte message after a bodiless response) is over
            self._inbound, self._pending = _Inbound.COMMAND, None

    def _violation(self, reason: str) -> RemoteProtocolError:
        return self._ws.fail(POLICY_VIOLATION, reason)

    # -- output ------------------------------------------------------------------------

    def send_request(
        self, command: RequestCommand, body: bytes | None = None, *, streamed: bool = False
    ) -> None:
        """RELAY: queue a request, and its body as the very next message when it has one.

        With ``streamed``, the body follows through :meth:`send_body_chunk`.

        Raises:
            LocalProtocolError: not the RELAY, not OPEN, a body still being sent, or
                ``body`` (or ``streamed``) given exactly when ``command.body`` is false
                (or absent, as in an address-only request).
        """
        self._check_role(Role.RELAY, "a request")
        self._send_command(command.serialize(), bool(command.body), body, "request", streamed)

    def send_prepared(self, prepared: PreparedRequest, rendezvous_id: str, request_id: str) -> None:
        """RELAY: queue one listener's copy of a request framed once for many
        (``hc.fanout``: an event), its body as the very next message.

        Raises:
            LocalProtocolError: as :meth:`send_request`, or an id that is not URL-safe.
        """
        self._check_role(Role.RELAY, "a request")
        if self._sending_body is not None:
            raise LocalProtocolError(f"cannot send a request: the body of {self._sending_body} "
                                     "is still being sent")
        self._ws.send_framed(prepared.frames(rendezvous_id, request_id))

    def send_accept(self, command: AcceptCommand) -> None:
        """RELAY: queue an accept (a WebSocket sender waits at ``command.address``)."""
        self._check_role(Role.RELAY, "an accept")
        self._send_command(command.serialize(), False, None, "accept")

    def send_response(
        self, command: ResponseCommand, body: bytes | None = None, *, streamed: bool = False
    ) -> None:
        """LISTENER: queue a response, and its body as the very next message when it has one.

        With ``streamed``, the body follows through :meth:`send_body_chunk`.

        Raises:
            LocalProtocolError: not the LISTENER, not OPEN, a body still being sent, or
                ``body`` (or ``streamed``) given exactly when ``command.body`` is false.
        """
        self._check_role(Role.LISTENER, "a response")
        self._send_command(command.serialize(), command.body, body, "response", streamed)

    def send_body_chunk(self, data: bytes, *, end: bool = False) -> None:
        """Queue the next piece of the body begun with ``streamed=True``; ``end`` on the last.

        Raises:
            LocalProtocolError: no body is being sent, or the channel is not OPEN.
        """
        if self._sending_body is None:
            raise LocalProtocolError("no body is being sent: send a command with streamed=True first")
        self._ws.send_binary_fragment(data, fin=end)
        if end:
            self._sending_body = None

    def send_renew_token(self, token: str) -> None:
        """LISTENER: queue a renewToken with a fresh SAS token."""
        self._check_role(Role.LISTENER, "renewToken")
        self._send_command(RenewTokenCommand(token).serialize(), False, None, "renewToken")

    def send_ping(self, data: bytes = b"") -> None:
        """Queue a Ping (a keep-alive; the peer's Pong comes back as PongReceived)."""
        self._ws.send_ping(data)

    def send_pong(self, data: bytes = b"") -> None:
        """Queue an unsolicited Pong (Pings are answered already)."""
        self._ws.send_pong(data)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (1001 going away, 1008 policy, 1011 internal error)."""
        self._ws.send_close(code, reason)

    def _check_role(self, role: Role, what: str) -> None:
        if self.role is not role:
            raise LocalProtocolError(f"only the {role.value} sends {what}")

    def _send_command(
        self, text: str, has_body: bool, body: bytes | None, name: str, streamed: bool = False
    ) -> None:
        if self._sending_body is not None:
            raise LocalProtocolError(f"cannot send a {name}: the body of {self._sending_body} "
                                     "is still being sent")
        if streamed and (not has_body or body is not None):
            raise LocalProtocolError(f'a streamed {name} needs "body": true and no body bytes')
        if has_body and body is None and not streamed:
            raise LocalProtocolError(f'a {name} with "body": true needs its body')
        if not has_body and body is not None:
            raise LocalProtocolError(f'a {name} without "body": true cannot carry a body')
        self._ws.send_text(text)  # raises LocalProtocolError unless OPEN
        if streamed:
            self._sending_body = f"a {name}"
        if body is not None:
            self._ws.send_binary(body)  # adjacent: queued in the same call, nothing between


def _describe(command: RequestCommand | ResponseCommand) -> str:
    if isinstance(command, RequestCommand):
        return f"request {command.id!r}"
    return f"the response to {command.request_id!r}"
