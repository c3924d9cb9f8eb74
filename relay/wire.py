"""A sans-I/O ``ControlChannel`` on an aiohttp connection, after its ``101``.

The relay's side of a listener's control channel is judged by
:class:`hc.protocol.ControlChannel`; this module only moves its bytes.  After the
upgrade (:func:`upgrade` writes the ``101``), aiohttp's connection hands every
chunk it reads to :meth:`ChannelWire.feed_data` (the ``set_parser`` hook its
own WebSocket reader uses), which feeds the channel and passes what it parsed to
the owner's callback at once: no task, no queue, no generic WebSocket reader.

Writes are batched: whatever the channel has to send leaves in ONE write at
the end of the event-loop turn (:meth:`ChannelWire.flush_soon`), so under load
dozens of requests to one listener share a syscall, and a command and its body
are always adjacent in it.

Life of a wire::

    OPEN --bytes--> (events to the owner) ... --peer's Close / EOF / abort--> ENDED
    OPEN --close() queued--> (waits for the peer's Close, at most CLOSE_TIMEOUT) --> ENDED

Once ENDED (:attr:`ChannelWire.ended`) the owner returns from its handler and
aiohttp closes the TCP connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hc.events import Event, PingReceived
from hc.exceptions import RemoteProtocolError
from hc.handshake import accept_key, opening_problem
from hc.protocol import ControlChannel, State
from relay.exceptions import BadRequest
from relay.rawws import CLOSE_TIMEOUT, ReadingGate, flow_control

__all__ = ["ChannelWire", "OnInput", "upgrade"]

log = logging.getLogger("relay.wire")

#: ``on_input(events, error)``: what one chunk of input parsed to, and the peer's
#: violation that stopped the parsing, if any (its Close is queued already).
OnInput = Callable[[list[Event], RemoteProtocolError | None], None]


def upgrade_problem(request: web.BaseRequest) -> str | None:
    """Why ``request`` is not a WebSocket opening handshake (RFC 6455 §4.2.1), or None."""
    return opening_problem(request.method, request.headers.get)


async def upgrade(request: web.BaseRequest) -> web.StreamResponse:
    """Answer ``request`` with ``101 Switching Protocols`` (no extension, no subprotocol).

    Raises:
        BadRequest: the request is not a valid WebSocket opening handshake.
    """
    problem = upgrade_problem(request)
    if problem is not None:
        raise BadRequest(problem)
    response = web.StreamResponse(status=101, headers={
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": accept_key(request.headers["Sec-WebSocket-Key"]),
    })
    await response.prepare(request)
    return response


def _never() -> bool:
    return False


async def _nothing() -> None:
    return None


class ChannelWire:
    """Moves a :class:`ControlChannel`'s bytes over a transport, after the ``101``.

    Args:
        transport: the connection (an aiohttp request's, or an in-memory one in tests).
        channel: the state machine; the owner sends through it, then calls
            :meth:`flush_soon`.
        on_input: called with each chunk's events (see :data:`OnInput`).
        name: who is at the other end, for log lines ("listener L3 on orders").
        drain: waits while the transport's write buffer is full (none by default).
        writing_paused: whether it is full now (never, by default).
    """

    def __init__(
        self,
        transport: asyncio.BaseTransport,
        channel: ControlChannel,
        on_input: OnInput,
        *,
        name: str,
        drain: Callable[[], Awaitable[None]] | None = None,
        writing_paused: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._writing_paused = writing_paused
        self._transport: Any = transport  # a WriteTransport; BaseTransport in aiohttp's types
        #: When the peer's bytes are read (a reader behind that is full; Pongs not read).
        self.gate = ReadingGate(transport, writing_paused or _never, drain or _nothing)
        self._channel = channel
        self._on_input = on_input
        self._drain = drain
        self._loop = asyncio.get_running_loop()
        self._flush_due = False
        self._close_timer: asyncio.TimerHandle | None = None
        #: Done once the channel is closed, the transport lost, or the peer's input refused.
        self.ended: asyncio.Future[None] = self._loop.create_future()

    @classmethod
    def attach(
        cls, request: web.BaseRequest, channel: ControlChannel, on_input: OnInput, *, name: str
    ) -> ChannelWire:
        """A wire on ``request``'s upgraded connection, taking its bytes from now on."""
        transport = request.transport
        assert transport is not None
        writing_paused, drain = flow_control(request)
        wire = cls(transport, channel, on_input, name=name, drain=drain,
                   writing_paused=writing_paused)
        wire.take_over(request)
        return wire

    def take_over(self, request: web.BaseRequest) -> None:
        """Take the bytes of ``request``'s connection from now on (those read already
        come at once), in place of aiohttp's HTTP parser."""
        http = request.protocol
        http.set_parser(self)  # type: ignore[arg-type]
        http.keep_alive(False)
        if self._transport.is_closing():
            self.feed_eof()

    # -- the parser interface aiohttp's RequestHandler calls -----------------------------

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """One chunk from the peer: parse it, hand the events over, write the answers."""
        channel = self._channel
        error: RemoteProtocolError | None = None
        try:
            channel.receive_data(data)
        except RemoteProtocolError as exc:
            error = exc
        except Exception:  # a bug of ours: this connection goes, the relay stays
            log.exception("%s: internal error", self.name)
            self.abort_with(1011, "internal error")
            return False, b""
        self._hand_over(error)
        if error is not None or channel.state is State.CLOSED:
            self._end()
        return False, b""

    def feed_eof(self) -> None:
        """The connection is lost: the channel ends with ConnectionClosed(1006)."""
        if self.ended.done():
            return
        self._channel.receive_eof()
        self._hand_over(None)
        self._end()

    def _hand_over(self, error: RemoteProtocolError | None) -> None:
        events = self._channel.events_received()
        try:
            self._on_input(events, error)
        except Exception:  # a bug of ours: this connection goes, the relay stays
            log.exception("%s: internal error", self.name)
            self.abort_with(1011, "internal error")
        self.flush()
        if self.congested and any(type(event) is PingReceived for event in events):
            self.gate.pinged()  # its Pongs are not read: read no more Pings until they are

    # -- writing ---------------------------------------------------------------------

    def flush_soon(self) -> None:
        """Write what the channel has to send at the end of this loop turn (one write)."""
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what the channel has to send now."""
        self._flush_due = False
        data = self._channel.data_to_send()
        if data and not self._transport.is_closing():
            self._transport.write(data[0] if len(data) == 1 else b"".join(data))

    @property
    def closing(self) -> bool:
        """True once nothing more can be written (ended, or the transport closing)."""
        return self.ended.done() or self._transport.is_closing()

    @property
    def congested(self) -> bool:
        """True while the connection's write buffer is over its high-water mark
        (:meth:`drain` would wait)."""
        return self._writing_paused is not None and self._writing_paused()

    async def drain(self) -> None:
        """Wait while the connection's write buffer is over its high-water mark."""
        if self._drain is not None:
            await self._drain()

    # -- ending ----------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Queue a Close; the wire ends on the peer's Close, or after ``CLOSE_TIMEOUT`` s."""
        if self._channel.state in (State.OPEN, State.AWAITING_BODY):
            self._channel.send_close(code, reason.encode()[:120].decode(errors="ignore"))
            self.flush()
        if not self.ended.done() and self._close_timer is None:
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self.abort)

    def abort_with(self, code: int, reason: str) -> None:
        """Queue a Close, write it, and end without waiting for the peer's (a bug of ours)."""
        if self._channel.state in (State.OPEN, State.AWAITING_BODY):
            self._channel.send_close(code, reason)
        self.flush()
        self._end()

    def abort(self) -> None:
        """Drop the connection now, unsent bytes and all: the peer stopped answering."""
        self._channel.data_to_send()
        self._transport.abort()
        self._end()

    def disconnect(self) -> None:
        """Close the TCP connection, after what is queued (RFC 6455 §7.1.1: the server
        closes it first).  aiohttp would otherwise linger on the upgraded request."""
        self.flush()
        self._end()
        if not self._transport.is_closing():
            self._transport.close()

    def _end(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if not self.ended.done():
            self.ended.set_result(None)
