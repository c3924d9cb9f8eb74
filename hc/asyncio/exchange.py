"""The listener's side of one relayed call: HTTP requests and WebSocket accepts (PROTOCOL.md §3, §4).

Requests arrive in two shapes:

* **inline**: the full request on the control channel, its body (if any) as the
  next binary message there (:class:`~hc.protocol.ControlChannel` joins them into
  one :class:`~hc.events.RequestReceived`);
* **address-only** (no ``method``): the listener opens the request's rendezvous
  ``address``, where the relay sends the full request and its body; the response
  goes back on that socket.

A response goes inline when the request came inline, the channel is open and its
body is at most :data:`INLINE_LIMIT`; otherwise on the rendezvous socket, which
the relay closes with 1000 once it has taken the response (anything else means
the response did not reach the sender: :class:`~hc.asyncio.errors.ConnectionLostError`).

An ``accept`` is either refused (``accept_handler`` returned False; the listener
opens the address with ``sb-hc-statusCode``, the relay answers 410) or opened as
a :class:`~hc.asyncio.stream.HybridConnectionStream` with the subprotocol the
sender offered first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from hc.asyncio.connection import Connector, WebSocketProtocol, open_websocket
from hc.asyncio.errors import ConnectionLostError
from hc.asyncio.http import (
    RelayedHttpListenerContext,
    RelayedHttpListenerRequest,
    RelayedHttpListenerResponse,
)
from hc.asyncio.stream import HybridConnectionStream
from hc.events import ConnectionClosed, RequestReceived
from hc.framing import Side, WebSocketEndpoint
from hc.handshake import HandshakeRejected
from hc.messages import AcceptCommand, RequestCommand, ResponseCommand
from hc.protocol import ControlChannel, Role

__all__ = [
    "INLINE_LIMIT",
    "AcceptHandler",
    "Rendezvous",
    "RequestHandler",
]

log = logging.getLogger("hc.asyncio.listener")

#: PROTOCOL.md §3: response bodies up to 64 KiB may travel inline on the control channel.
INLINE_LIMIT = 64 * 1024
#: Slack over the message size for the JSON command on a rendezvous socket.
SLACK = 256 * 1024

#: ``request_handler(context)``: answers one relayed HTTP request.
RequestHandler = Callable[[RelayedHttpListenerContext], Awaitable[None]]
#: ``accept_handler(context)``: True to take a WebSocket sender; False refuses it with
#: ``context.response.status_code`` and ``status_description``.
AcceptHandler = Callable[[RelayedHttpListenerContext], Awaitable[bool]]


class Rendezvous:
    """Opens the per-call sockets of one listener.

    Args:
        connector: how sockets are opened (TCP/TLS by default).
        max_message_size: the largest request accepted on a rendezvous socket.
        base: the relay's public origin, for request URLs.
    """

    def __init__(self, connector: Connector | None, max_message_size: int, base: str) -> None:
        self.connector, self.max_message_size, self.base = connector, max_message_size, base

    async def open(self, address: str, *, subprotocols: tuple[str, ...] = (),
                   stream: bool = False) -> WebSocketProtocol:
        """A rendezvous socket: a ControlChannel, or a plain endpoint for a ``stream``."""
        size = self.max_message_size + SLACK
        machine: ControlChannel | WebSocketEndpoint = (
            WebSocketEndpoint(Side.CLIENT, max_message_size=size) if stream
            else ControlChannel(Role.LISTENER, max_message_size=size)
        )
        return await open_websocket(address, machine, subprotocols=subprotocols,
                                    connector=self.connector)

    # -- requests ----------------------------------------------------------------------

    def inline_context(
        self, event: RequestReceived, control: WebSocketProtocol
    ) -> RelayedHttpListenerContext:
        """The context of a request that came on the control channel."""
        command = event.command

        async def send(response: ResponseCommand, body: bytes) -> None:
            channel = control.machine
            assert isinstance(channel, ControlChannel)
            if len(body) <= INLINE_LIMIT and not control.closed.done():
                control.send(lambda: channel.send_response(response, body if response.body else None))
                return
            socket = await self.open(command.address)
            await _respond_on(socket, response, body)

        return _context(command, event.body, self.base, send)

    async def rendezvous_context(
        self, command: RequestCommand
    ) -> tuple[RelayedHttpListenerContext, WebSocketProtocol] | None:
        """Open an address-only request's socket and read the full request from it.

        Returns None (one INFO line) when the relay closed it before the request was whole.
        """
        socket = await self.open(command.address)
        event = await socket.next_event()
        if not isinstance(event, RequestReceived) or event.command.is_address_only:
            log.info("rendezvous %s: the request broke off before its end (%s); the call is"
                     " dropped", command.id, _describe(event))
            await socket.close()
            return None

        async def send(response: ResponseCommand, body: bytes) -> None:
            await _respond_on(socket, response, body)

        return _context(event.command, event.body, self.base, send), socket

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


def accept_context(command: AcceptCommand, base: str) -> RelayedHttpListenerContext:
    """What ``accept_handler`` sees: the sender's connect request; its response refuses."""
    request = RelayedHttpListenerRequest(
        "GET", command.address, command.address, command.connect_headers,
        command.remote_endpoint, command.id,
    )

    async def unused(response: ResponseCommand, body: bytes) -> None:
        raise RuntimeError("an accept's response is not sent; return False to refuse")

    return RelayedHttpListenerContext(request, RelayedHttpListenerResponse(command.id, unused))


def _context(
    command: RequestCommand, body: bytes | None, base: str,
    send: Callable[[ResponseCommand, bytes], Awaitable[None]],
) -> RelayedHttpListenerContext:
    request = RelayedHttpListenerRequest.from_command(command, body, base)
    return RelayedHttpListenerContext(request, RelayedHttpListenerResponse(command.id, send))


async def _respond_on(socket: WebSocketProtocol, response: ResponseCommand, body: bytes) -> None:
    """Send the response on a rendezvous socket and wait for the relay to close it.

    Raises:
        ConnectionLostError: the relay closed it otherwise than with 1000 (1008: an
            unknown id, 1009: too big), so the response did not reach the sender.
    """
    channel = socket.machine
    assert isinstance(channel, ControlChannel)
    try:
        socket.send(lambda: channel.send_response(response, body if response.body else None))
        await socket.drain()
    except ConnectionResetError as exc:
        closed = socket.closed.result() if socket.closed.done() else ConnectionClosed(1006)
        raise ConnectionLostError(closed.code, closed.reason) from exc
    closed = await socket.closed
    socket.abort()
    if closed.code != 1000:
        raise ConnectionLostError(closed.code, closed.reason)


def _describe(event: object) -> str:
    if isinstance(event, ConnectionClosed):
        return f"the relay closed the rendezvous: {event.code} {event.reason}".strip()
    return type(event).__name__
