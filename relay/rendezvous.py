"""One-time rendezvous sockets that listeners open (PROTOCOL.md §1, §3, §4).

``sb-hc-action=request``: the listener fetches an address-only request (the
relay sends the full ``request`` JSON and streams the body as one binary
message), or delivers a response too large for the control channel.  The reply
(``response`` JSON, then the body as one binary message of any number of frames)
is handed to the waiting sender frame by frame.

``sb-hc-action=accept``: the listener takes a WebSocket sender (``ws_senders``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hc.exceptions import MalformedMessage
from hc.messages import ResponseCommand, parse_listener_command
from relay import ws_senders
from relay.exceptions import (
    ListenerGone,
    MessageTooLarge,
    ProtocolViolation,
    RelayError,
    RendezvousRejected,
)
from relay.listeners import PendingRequest, RelayedReply
from relay.rawws import Opcode, RawWebSocket

if TYPE_CHECKING:
    from relay.state import RelayState

__all__ = ["handle"]

log = logging.getLogger("relay.rendezvous")
_MAX_COMMAND = 256 * 1024


async def handle(server: RelayState, request: web.Request, action: str) -> web.StreamResponse:
    """Serve a listener opening a rendezvous ``address``; the id is its only credential."""
    entry = server.rendezvous.take(request.query.get("sb-hc-id"))
    if action == "accept" and isinstance(entry, ws_senders.PendingAccept):
        return await ws_senders.listener_accepts(request, entry)
    if action == "request" and isinstance(entry, PendingRequest):
        entry.taken = True
        return await _serve_request(request, entry)
    raise RendezvousRejected(f"this id is not a {action} rendezvous")


async def _serve_request(request: web.Request, pending: PendingRequest) -> web.StreamResponse:
    ws, response = await RawWebSocket.accept(request)
    try:
        await _until_finished(pending, _exchange(ws, pending))
    except MessageTooLarge as exc:
        pending.fail(exc)
        await ws.close(1009, "message too big")
    except (ConnectionError, ProtocolViolation) as exc:
        log.info("rendezvous for request %s failed: %s", pending.id, exc)
        pending.fail(ListenerGone(f"the listener's rendezvous connection failed: {exc}"))
    except RelayError as exc:  # the sender's body broke off (too slow, say): tell the sender
        log.info("request %s: the sender's body failed: %s", pending.id, exc)
        pending.fail(exc)
        await ws.close(1011, "the sender's request failed")
    finally:
        await ws.close(1000)
    return response


async def _until_finished(pending: PendingRequest, work: Awaitable[None]) -> None:
    """Run ``work``, then hold the socket until the sender is done with the reply.

    If the sender gives up first (timeout, disconnect), stop at once.
    """
    task = pending.pump = asyncio.ensure_future(work)
    finished = asyncio.ensure_future(pending.finished.wait())
    try:
        await asyncio.wait({task, finished}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            await finished
    finally:
        for t in (task, finished):
            t.cancel()


async def _exchange(ws: RawWebSocket, pending: PendingRequest) -> None:
    body_task: asyncio.Future[int] | None = None
    if not pending.delivered:
        await ws.send_text(pending.command.serialize())
        pending.delivered = True
        if pending.command.body:
            body_task = asyncio.ensure_future(ws.send_stream(pending.body_chunks()))
    command = await _response_while_sending(ws, pending, body_task)
    body = _body(ws) if command.body else _empty()
    pending.resolve(RelayedReply(command, body))


async def _response_while_sending(
    ws: RawWebSocket, pending: PendingRequest, body_task: asyncio.Future[int] | None
) -> ResponseCommand:
    """The listener's response, read while the request body is still being sent.

    A listener may answer before the body ended (413, a reader-quota fault): the rest
    of the body is then not sent (the message stays unfinished: the relay closes the
    socket after the reply), and the sender gets the answer at once.  An error of the
    sender's body (too large, too slow) ends the exchange.
    """
    reading = asyncio.ensure_future(_read_response(ws, pending))
    try:
        while True:
            waiting: set[asyncio.Future[Any]] = {reading}
            if body_task is not None and not body_task.done():
                waiting.add(body_task)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if body_task is not None and body_task.done():
                body_task.result()  # the sender's body failed: raise why
            if reading.done():
                return reading.result()
    finally:
        await _cancel_and_wait(reading, body_task)


async def _cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` and wait until they have ended, even if cancelled meanwhile.

    The body task reads the sender's stream: it must be gone before the sender's
    handler returns (aiohttp then reads the rest of that stream itself).
    """
    left = {t for t in tasks if t is not None and not t.done()}
    for task in left:
        task.cancel()
    interrupted = False
    while left:
        try:
            await asyncio.wait(left)
        except asyncio.CancelledError:
            interrupted = True
        left = {t for t in left if not t.done()}
    if interrupted:
        raise asyncio.CancelledError


async def _read_response(ws: RawWebSocket, pending: PendingRequest) -> ResponseCommand:
    parts: list[bytes] = []
    async for frame in ws.recv_message_frames():
        if frame.opcode is Opcode.BINARY:
            raise ProtocolViolation("binary frame where the response command was expected")
        parts.append(bytes(frame.data))
        if sum(map(len, parts)) > _MAX_COMMAND:
            raise ProtocolViolation("response command is too long")
    try:
        command = parse_listener_command(b"".join(parts))
    except MalformedMessage as exc:
        raise ProtocolViolation(f"malformed response on rendezvous: {exc}") from None
    if not isinstance(command, ResponseCommand) or command.request_id != pending.id:
        raise ProtocolViolation("rendezvous carried a command for another request")
    if command.status_code < 200:
        raise ProtocolViolation(f"status {command.status_code} is not a final answer")
    return command


async def _body(ws: RawWebSocket) -> AsyncIterator[bytes]:
    async for frame in ws.recv_message_frames():
        if frame.data:
            yield bytes(frame.data)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover
