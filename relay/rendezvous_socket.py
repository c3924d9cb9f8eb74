"""The relay's end of one request rendezvous socket, on the sans-I/O core.

A ``ControlChannel(Role.RELAY, stream_bodies=True)`` judges the socket's rules
(the ``response`` command, then exactly one binary message for its body when it
has one; framing; sizes), fed straight from the connection by
:class:`relay.wire.ChannelWire`.  Bodies are never held whole: the sender's
request body leaves in pieces as it is read, the listener's response body comes
in as :class:`~hc.events.BodyChunk` pieces that wait in a short queue for the
sender's writer (reading from the listener pauses while it is full).

What is the relay's, not the channel's: the response must be for the request
the socket was opened for, with a final status (not 1xx), and it comes once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from hc.events import BodyChunk, ConnectionClosed, Event, RenewTokenReceived, ResponseReceived
from hc.exceptions import RemoteProtocolError
from hc.messages import RequestCommand, ResponseCommand
from hc.protocol import ControlChannel, Role, State
from relay.exceptions import ProtocolViolation
from relay.rawws import apply_mask, flow_control
from relay.wire import ChannelWire, upgrade

__all__ = ["RendezvousSocket"]

log = logging.getLogger("relay.rendezvous")

#: The longest command accepted on a rendezvous socket (bodies are not bounded here).
MAX_COMMAND = 256 * 1024
#: Body pieces queued before the relay stops reading from the listener.
_HIGH_WATER = 8
_POLICY = 1008
_SENDING = (State.OPEN, State.AWAITING_BODY)


class RendezvousSocket:
    """One rendezvous socket for request ``request_id``, after its ``101``."""

    def __init__(
        self,
        request_id: str,
        transport: asyncio.BaseTransport,
        drain: Callable[[], Awaitable[None]] | None = None,
        writing_paused: Callable[[], bool] | None = None,
    ) -> None:
        self.request_id = request_id
        self._channel = ControlChannel(
            Role.RELAY, max_message_size=MAX_COMMAND, stream_bodies=True, mask=apply_mask
        )
        loop = asyncio.get_running_loop()
        self._response: asyncio.Future[ResponseCommand] = loop.create_future()
        self._chunks: deque[bytes] = deque()
        self._body_ended = False
        self._broken: str | None = None  # why the socket cannot go on, once it cannot
        self._waiter: asyncio.Future[None] | None = None
        #: Feed the listener's bytes here (aiohttp does, after :meth:`accept`).
        self.wire = ChannelWire(
            transport, self._channel, self._on_input,
            name=f"rendezvous of request {request_id}", drain=drain, writing_paused=writing_paused,
        )

    @classmethod
    async def accept(
        cls, request: web.BaseRequest, request_id: str
    ) -> tuple[RendezvousSocket, web.StreamResponse]:
        """Complete the upgrade of ``request``; returns the socket and its response."""
        response = await upgrade(request)
        assert request.transport is not None
        writing_paused, drain = flow_control(request)
        socket = cls(request_id, request.transport, drain, writing_paused=writing_paused)
        socket.wire.take_over(request)
        return socket, response

    # -- input -----------------------------------------------------------------------

    def _on_input(self, events: list[Event], error: RemoteProtocolError | None) -> None:
        for event in events:
            if isinstance(event, ResponseReceived):
                self._on_response(event.command)
            elif isinstance(event, BodyChunk):
                self._chunks.append(event.data)
                self._body_ended = event.end
            elif isinstance(event, RenewTokenReceived):
                self._violation("renewToken on a rendezvous socket")
            elif isinstance(event, ConnectionClosed):
                self._break(f"the listener closed the rendezvous ({event.code})")
        if error is not None:
            log.warning("rendezvous of request %s: the listener broke the protocol (%d): %s",
                        self.request_id, error.close_code, error.reason)
            self._break(f"the listener broke the protocol: {error.reason}")
        if len(self._chunks) >= _HIGH_WATER and not self.wire.gate.full:
            self.wire.gate.set_full(True)
        self._wake()

    def _on_response(self, command: ResponseCommand) -> None:
        if self._response.done():
            self._violation("a second response on one rendezvous socket")
        elif command.request_id != self.request_id:
            self._violation("rendezvous carried a response for another request")
        elif command.status_code < 200:
            self._violation(f"status {command.status_code} is not a final answer")
        else:
            self._response.set_result(command)
            self._body_ended = not command.body

    def _violation(self, reason: str) -> None:
        """A rule of the relay's broken: 1008, logged once."""
        log.warning("rendezvous of request %s: %s; closing with 1008", self.request_id, reason)
        self.wire.close(_POLICY, reason)
        self._break(reason)

    def _break(self, why: str) -> None:
        if self._broken is None:
            self._broken = why
        if not self._response.done():
            self._response.set_exception(ProtocolViolation(why))
            self._response.exception()  # retrieved: nobody may be waiting yet

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def response(self) -> ResponseCommand:
        """The listener's response command (raises ProtocolViolation if none can come)."""
        return await asyncio.shield(self._response)

    async def body(self) -> AsyncIterator[bytes]:
        """The response body's pieces as they arrive.

        Raises:
            ConnectionResetError: the socket ended in the middle of the body.
        """
        while True:
            while self._chunks:
                data = self._chunks.popleft()
                if self.wire.gate.full and len(self._chunks) < _HIGH_WATER // 2:
                    self.wire.gate.set_full(False)
                if data:
                    yield data
            if self._body_ended:
                return
            if self._broken is not None:
                raise ConnectionResetError(f"WebSocket closed in the middle of a message: {self._broken}")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    # -- output ----------------------------------------------------------------------

    async def send_request(self, command: RequestCommand) -> None:
        """The full request command; its body, if any, follows by :meth:`send_body`."""
        self._check_open()
        self._channel.send_request(command, streamed=bool(command.body))
        self.wire.flush()
        await self.wire.drain()

    async def send_body(self, chunks: AsyncIterator[bytes]) -> int:
        """The request body, as ONE binary message of as many pieces; returns bytes sent."""
        sent = 0
        async for chunk in chunks:
            if chunk:
                self._check_open()
                self._channel.send_body_chunk(chunk)
                self.wire.flush()
                await self.wire.drain()
                sent += len(chunk)
        self._check_open()
        self._channel.send_body_chunk(b"", end=True)
        self.wire.flush()
        return sent

    def _check_open(self) -> None:
        if self._channel.state not in _SENDING or self.wire.closing:
            raise ConnectionResetError("the rendezvous socket is closed")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake (at most ``CLOSE_TIMEOUT`` s), then the TCP connection."""
        if self.wire.gate.full:
            self.wire.gate.set_full(False)
        self.wire.close(code, reason)
        try:
            await asyncio.shield(self.wire.ended)
        finally:
            self.wire.disconnect()
