"""One-time rendezvous sockets that listeners open (PROTOCOL.md §1, §3, §4).

``sb-hc-action=request``: the listener fetches an address-only request (the
relay sends the full ``request`` JSON and streams the body as one binary
message), or delivers a response too large for the control channel.  The reply
(``response`` JSON, then the body as one binary message of any number of frames)
is handed to the waiting sender piece by piece.  The socket's rules are the
core's (``hc.protocol.ControlChannel`` streaming bodies, in
``relay.rendezvous_socket``); this module pairs the socket with the sender.

``sb-hc-action=accept``: the listener takes a WebSocket sender (``ws_senders``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hc.messages import ResponseCommand
from relay import ws_senders
from relay.exceptions import (
    ListenerGone,
    MessageTooLarge,
    ProtocolViolation,
    RelayError,
    RendezvousRejected,
)
from relay.listeners import PendingRequest, RelayedReply
from relay.rendezvous_socket import RendezvousSocket

if TYPE_CHECKING:
    from relay.state import RelayState

__all__ = ["handle"]

log = logging.getLogger("relay.rendezvous")


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
    socket, response = await RendezvousSocket.accept(request, pending.id)
    try:
        await _until_finished(pending, _exchange(socket, pending))
    except MessageTooLarge as exc:
        pending.fail(exc)
        await socket.close(1009, "message too big")
    except (ConnectionError, ProtocolViolation) as exc:
        log.info("rendezvous for request %s failed: %s", pending.id, exc)
        pending.fail(ListenerGone(f"the listener's rendezvous connection failed: {exc}"))
    except RelayError as exc:  # the sender's body broke off (too slow, say): tell the sender
        log.info("request %s: the sender's body failed: %s", pending.id, exc)
        pending.fail(exc)
        await socket.close(1011, "the sender's request failed")
    finally:
        await socket.close(1000)
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


async def _exchange(socket: RendezvousSocket, pending: PendingRequest) -> None:
    body_task: asyncio.Future[int] | None = None
    if not pending.delivered:
        await socket.send_request(pending.command)
        pending.delivered = True
        if pending.command.body:
            body_task = asyncio.ensure_future(socket.send_body(pending.body_chunks()))
    command = await _response_while_sending(socket, body_task)
    body = socket.body() if command.body else _empty()
    pending.resolve(RelayedReply(command, body))


async def _response_while_sending(
    socket: RendezvousSocket, body_task: asyncio.Future[int] | None
) -> ResponseCommand:
    """The listener's response, read while the request body is still being sent.

    A listener may answer before the body ended (413, a reader-quota fault): the rest
    of the body is then not sent (the message stays unfinished: the relay closes the
    socket after the reply), and the sender gets the answer at once.  An error of the
    sender's body (too large, too slow) ends the exchange.
    """
    reading = asyncio.ensure_future(socket.response())
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
    given = [t for t in tasks if t is not None]
    left = {t for t in given if not t.done()}
    for task in left:
        task.cancel()
    interrupted = False
    while left:
        try:
            await asyncio.wait(left)
        except asyncio.CancelledError:
            interrupted = True
        left = {t for t in left if not t.done()}
    for task in given:  # what they raised is told by the caller or moot: never "unretrieved"
        if not task.cancelled():
            task.exception()
    if interrupted:
        raise asyncio.CancelledError


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover
