"""The listener's side of one relayed call: HTTP requests and WebSocket accepts (PROTOCOL.md §3, §4).

Requests arrive in two shapes:

* **inline**: the full request on the control channel, its body (if any) as the
  next binary message there (:class:`~hc.protocol.ControlChannel` joins them into
  one :class:`~hc.events.RequestReceived`);
* **address-only** (no ``method``): the listener opens the request's rendezvous
  ``address``, where the relay sends the full request and its body; the response
  goes back on that socket.

Rendezvous sockets stream bodies (``ControlChannel(stream_bodies=True)``): the
request body reaches the handler in pieces as they arrive (reading pauses while
the handler does not read), and a response body past 64 KiB leaves in pieces as
it is written.

A response goes inline when the request came inline, the channel is open and its
body is at most :data:`~hc.asyncio.http.INLINE_LIMIT`; otherwise on the rendezvous
socket, which the relay closes with 1000 once it has taken the response (anything
else means the response did not reach the sender:
:class:`~hc.asyncio.errors.ConnectionLostError`).  What the handler left unread of
a body answered early is read and dropped meanwhile, for at most
:data:`DISCARD_TIMEOUT` seconds.

An ``accept`` is either refused (``accept_handler`` returned False; the listener
opens the address with ``sb-hc-statusCode``, the relay answers 410) or opened as
a :class:`~hc.asyncio.stream.HybridConnectionStream` with the subprotocol the
sender offered first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from hc.asyncio.connection import (
    Connector,
    WebSocketProtocol,
    mask_keys,
    open_websocket,
    xor_mask,
)
from hc.asyncio.errors import BodyBrokenError, ConnectionLostError
from hc.asyncio.http import (
    INLINE_LIMIT,
    RelayedHttpListenerContext,
    RelayedHttpListenerRequest,
    RelayedHttpListenerResponse,
)
from hc.asyncio.stream import HybridConnectionStream
from hc.events import BodyChunk, ConnectionClosed, RequestReceived
from hc.framing import Side, WebSocketEndpoint
from hc.handshake import HandshakeRejected
from hc.messages import AcceptCommand, RequestCommand, ResponseCommand
from hc.protocol import ControlChannel, Role

__all__ = [
    "DISCARD_TIMEOUT",
    "AcceptHandler",
    "Rendezvous",
    "RequestHandler",
    "accept_context",
]

log = logging.getLogger("hc.asyncio.listener")

#: The largest command (a request's JSON) read on a rendezvous socket.
COMMAND_LIMIT = 256 * 1024
#: Seconds spent waiting for the relay to take a response (and dropping the rest of
#: a body answered before its end) before the socket is closed from this side.
DISCARD_TIMEOUT = 30.0

#: ``request_handler(context)``: answers one relayed HTTP request.
RequestHandler = Callable[[RelayedHttpListenerContext], Awaitable[None]]
#: ``accept_handler(context)``: True to take a WebSocket sender; False refuses it with
#: ``context.response.status_code`` and ``status_description``.
AcceptHandler = Callable[[RelayedHttpListenerContext], Awaitable[bool]]


class Rendezvous:
    """Opens the per-call sockets of one listener.

    Args:
        connector: how sockets are opened (TCP/TLS by default).
        max_message_size: the largest WebSocket message taken from a sender.
        base: the relay's public origin, for request URLs.
    """

    def __init__(self, connector: Connector | None, max_message_size: int, base: str) -> None:
        self.connector, self.max_message_size, self.base = connector, max_message_size, base

    async def open(self, address: str, *, subprotocols: tuple[str, ...] = (),
                   stream: bool = False) -> WebSocketProtocol:
        """A rendezvous socket (bodies streamed), or a plain endpoint for a ``stream``."""
        machine: ControlChannel | WebSocketEndpoint = (
            WebSocketEndpoint(Side.CLIENT, max_message_size=self.max_message_size, mask_key=mask_keys,
                              mask=xor_mask)
            if stream else ControlChannel(Role.LISTENER, max_message_size=COMMAND_LIMIT,
                                         stream_bodies=True, mask_key=mask_keys, mask=xor_mask)
        )
        return await open_websocket(address, machine, subprotocols=subprotocols,
                                    connector=self.connector)

    # -- requests ----------------------------------------------------------------------

    def inline_context(
        self, event: RequestReceived, control: WebSocketProtocol
    ) -> RelayedHttpListenerContext:
        """The context of a request that came on the control channel."""
        command = event.command
        request = RelayedHttpListenerRequest.from_command(command, self.base, event.body)
        writer = _InlineWriter(self, control, command.address)
        return RelayedHttpListenerContext(request, RelayedHttpListenerResponse(command.id, writer))

    async def rendezvous_context(
        self, command: RequestCommand
    ) -> tuple[RelayedHttpListenerContext, WebSocketProtocol] | None:
        """Open an address-only request's socket and read the full request from it.

        Returns None (one INFO line) when the relay closed it before the request came.
        """
        socket = await self.open(command.address)
        try:
            event = await socket.next_event()
        except BaseException:  # cut off (the listener closing) or broken: not left open
            socket.abort()
            raise
        if not isinstance(event, RequestReceived) or event.command.is_address_only:
            log.info("rendezvous %s: the request broke off before its end (%s); the call is"
                     " dropped", command.id, _describe(event))
            await socket.close()
            return None
        full = event.command
        chunks = _Body(socket) if full.body else None
        request = RelayedHttpListenerRequest.from_command(full, self.base, chunks)
        response = RelayedHttpListenerResponse(full.id, _SocketWriter(socket))
        return RelayedHttpListenerContext(request, response), socket

    # -- WebSocket senders -------------------------------------------------------------

    async def accept(self, command: AcceptCommand) -> HybridConnectionStream:
        """Join the sender waiting at ``command.address``."""
        offered = next((v for k, v in command.connect_headers
                        if k.lower() == "sec-websocket-protocol"), "")
        protocols = tuple(p.strip() for p in offered.split(",") if p.strip())
        socket = await self.open(command.address, subprotocols=protocols, stream=True)
        return HybridConnectionStream(socket, tracking_id=command.id, accept=command)

    async def reject(self, command: AcceptCommand, status: int, description: str) -> None:
        """Refuse the sender: the relay answers our rejecting handshake with 410."""
        url = (f"{command.address}&sb-hc-statusCode={status}"
               f"&sb-hc-statusDescription={quote(description)}")
        try:
            socket = await self.open(url, stream=True)
        except HandshakeRejected:
            return  # 410 Gone: the relay took the refusal
        await socket.close()


class _SocketWriter:
    """Writes a response on a rendezvous socket, then waits for the relay to take it."""

    def __init__(self, socket: WebSocketProtocol) -> None:
        self.socket = socket
        channel = socket.machine
        assert isinstance(channel, ControlChannel)
        self.channel = channel

    async def send(self, command: ResponseCommand, body: bytes, wait: bool = True) -> None:
        self._write(lambda: self.channel.send_response(command, body if command.body else None))
        await self._taken()  # even with ``wait=False``: the socket is dropped after the call

    async def begin(self, command: ResponseCommand) -> None:
        self._write(lambda: self.channel.send_response(command, streamed=True))

    async def chunk(self, data: bytes, end: bool) -> None:
        self._write(lambda: self.channel.send_body_chunk(data, end=end))
        try:
            await self.socket.drain()
        except ConnectionResetError as exc:
            raise self._lost() from exc
        if end:
            await self._taken()

    def abort(self) -> None:
        self.socket.abort()

    def _write(self, queue: Callable[[], None]) -> None:
        try:
            self.socket.send(queue)
        except ConnectionResetError as exc:
            raise self._lost() from exc

    def _lost(self) -> ConnectionLostError:
        closed = self.socket.closed
        event = closed.result() if closed.done() else ConnectionClosed(1006)
        return ConnectionLostError(event.code, event.reason)

    async def _taken(self) -> None:
        """Wait for the relay's close (dropping what is left of the request body).

        Raises:
            ConnectionLostError: the relay closed otherwise than with 1000 (1008: an
                unknown id, 1009: too big), so the response did not reach the sender.
        """
        dropped = 0
        try:
            async with asyncio.timeout(DISCARD_TIMEOUT):
                while not isinstance(event := await self.socket.next_event(), ConnectionClosed):
                    if isinstance(event, BodyChunk):
                        dropped += len(event.data)
        except TimeoutError:  # the relay has the response; it just never closed
            log.info("rendezvous: the relay did not close the socket in %g s", DISCARD_TIMEOUT)
            await self.socket.close(1000, "response sent")
            return
        finally:
            if dropped:
                log.info("rendezvous: dropped %d bytes of a body answered early", dropped)
            self.socket.abort()
        if event.code != 1000:
            raise ConnectionLostError(event.code, event.reason)


class _InlineWriter:
    """A response to an inline request: on the control channel when small, else by rendezvous."""

    def __init__(self, rendezvous: Rendezvous, control: WebSocketProtocol, address: str) -> None:
        self.rendezvous, self.control, self.address = rendezvous, control, address
        self.socket: _SocketWriter | None = None

    async def send(self, command: ResponseCommand, body: bytes, wait: bool = True) -> None:
        control, channel = self.control, self.control.machine
        assert isinstance(channel, ControlChannel)
        if len(body) <= INLINE_LIMIT and not control.closed.done():
            control.send_now(lambda: channel.send_response(command, body if command.body else None))
            if wait or control.write_paused:  # back-pressure holds either way
                await control.drain()
            return
        await (await self._open()).send(command, body)

    async def begin(self, command: ResponseCommand) -> None:
        await (await self._open()).begin(command)

    async def chunk(self, data: bytes, end: bool) -> None:
        assert self.socket is not None
        await self.socket.chunk(data, end)

    def abort(self) -> None:
        if self.socket is not None:
            self.socket.abort()

    async def _open(self) -> _SocketWriter:
        self.socket = _SocketWriter(await self.rendezvous.open(self.address))
        return self.socket


def accept_context(command: AcceptCommand) -> RelayedHttpListenerContext:
    """What ``accept_handler`` sees: the sender's connect request; its response refuses."""
    request = RelayedHttpListenerRequest(
        "GET", command.address, command.address, command.connect_headers,
        command.remote_endpoint, command.id,
    )
    return RelayedHttpListenerContext(request, RelayedHttpListenerResponse(command.id, _Refusal()))


class _Refusal:
    """An accept's response is never sent: returning False refuses with its status."""

    async def send(self, command: ResponseCommand, body: bytes, wait: bool = True) -> None:
        raise RuntimeError("an accept's response is not sent; return False to refuse")

    async def begin(self, command: ResponseCommand) -> None:
        raise RuntimeError("an accept's response is not sent; return False to refuse")

    async def chunk(self, data: bytes, end: bool) -> None:
        raise RuntimeError("an accept's response is not sent; return False to refuse")

    def abort(self) -> None:
        """Nothing was sent."""


class _Body:
    """A rendezvous request's body, piece by piece (an iterator class: mypyc compiles no
    async generators).

    Raises:
        BodyBrokenError: the socket closed before the body's end.
    """

    def __init__(self, socket: WebSocketProtocol) -> None:
        self._socket = socket
        self._received = 0
        self._done = False

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            event = await self._socket.next_event()
            if isinstance(event, BodyChunk):
                self._received += len(event.data)
                self._done = event.end
                if event.data:
                    return event.data
            elif isinstance(event, ConnectionClosed):
                raise BodyBrokenError(event.code, event.reason, self._received)
        raise StopAsyncIteration


def _describe(event: object) -> str:
    if isinstance(event, ConnectionClosed):
        return f"the relay closed the rendezvous: {event.code} {event.reason}".strip()
    return type(event).__name__
