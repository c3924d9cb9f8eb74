"""WebSocket senders: connect, accept, and the frame pump (PROTOCOL.md §4).

The relay holds the sender's upgrade, sends ``accept`` to one listener and waits
(up to the rendezvous timeout) for it to open the accept address.  Then both
``101`` responses are completed with the same subprotocol and frames flow both
ways untouched, close codes included.  A listener that rejects opens the
address with ``sb-hc-statusCode``/``sb-hc-statusDescription``: its handshake is
answered 410 and the sender gets that status as its failed upgrade.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiohttp import web

from hc.headers import TokenLocation, query_pairs
from hc.messages import AcceptCommand
from relay import access
from relay.accepts import ListenerRejected, PendingAccept
from relay.exceptions import BadRequest, EntityNotFound, ListenerGone, ListenerTimeout
from relay.listeners import ListenerConnection, choose_live
from relay.rawws import Opcode, RawWebSocket, close_of
from relay.state import RelayState

__all__ = ["STOPPING", "ListenerRejected", "PendingAccept", "connect", "listener_accepts"]

log = logging.getLogger("relay.ws")
#: The reason of the 1001 a stopping relay closes streams and listeners with.
STOPPING = "relay shutting down"
_CREDENTIALS = {"servicebusauthorization"}


def _protocols(header: str | None) -> list[str]:
    return [p.strip() for p in (header or "").split(",") if p.strip()]


async def connect(
    relay: RelayState, request: web.Request, raw_path: str, tracking: str
) -> web.StreamResponse:
    """Serve a WebSocket sender's ``sb-hc-action=connect`` upgrade."""
    joined: list[str] = []  # the entity, once the sender and a listener are joined
    try:
        return await _connect(relay, request, raw_path, tracking, joined)
    except Exception as exc:
        if not joined:  # refused (a failure after joining is the session's, not a refusal)
            relay.observer.sender_refused(raw_path, exc, request.remote or "")
        raise
    finally:
        if joined:
            relay.observer.sender_disconnected(joined[0])


async def _connect(
    relay: RelayState, request: web.Request, raw_path: str, tracking: str, joined: list[str]
) -> web.StreamResponse:
    resolved = relay.registry.resolve(raw_path)
    if resolved is None:
        raise EntityNotFound(f"no entity at {raw_path!r}")
    state, _ = resolved
    asked = access.AccessRequest(
        request.method, request.host, query_pairs(request.rel_url.raw_query_string),
        request.headers.items(), request.remote,
    )
    where = access.send(asked, state, relay.config, relay.verifier).check().token_location
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise BadRequest("sb-hc-action=connect needs a WebSocket upgrade request")
    timeout = relay.config.rendezvous_timeout
    loop = relay.running_loop
    deadline = loop.time() + timeout
    tried: list[ListenerConnection] = []
    while True:
        pending = PendingAccept(_protocols(request.headers.get("Sec-WebSocket-Protocol")))
        ident = relay.rendezvous.issue(pending)
        try:
            if relay.cluster is not None and not state.listeners:  # cluster seam: on another node
                listener = relay.cluster.remote(state)
            else:
                listener = choose_live(state, relay.rng, loop.time(), tried)
            command = _accept_command(request, state.path, ident, where, relay.rendezvous_origin)
            await listener.send_accept(command.serialize())
            try:
                listener_ws, subprotocol = await _accepted(pending, listener, deadline, timeout)
            except ListenerGone as gone:
                # Dropped before it opened the accept address: the sender's session never
                # started there, so another listener may take it.
                tried.append(listener)
                if all(lst in tried for lst in state.listeners):
                    raise
                log.info("WebSocket sender goes to another listener: %s", gone)
                continue
            sender_ws, response = await RawWebSocket.accept(request, subprotocol)
            relay.observer.sender_connected(state.path, listener.id, request.remote or "")
            joined.append(state.path)
            pair = (sender_ws, listener_ws)
            if not relay.streams.add(pair):  # joined as the relay closes its streams
                await asyncio.gather(*(ws.close(1001, STOPPING) for ws in pair))
                return response
            try:
                await _pump(sender_ws, listener_ws)
            finally:
                relay.streams.discard(pair)
            return response
        finally:
            relay.rendezvous.discard(ident)
            pending.finished.set()


async def _accepted(
    pending: PendingAccept, listener: ListenerConnection, deadline: float, timeout: float
) -> tuple[RawWebSocket, str | None]:
    """The listener's accept socket, once it opens it; ``ListenerGone`` if it goes first."""
    accepted = pending.listener_socket
    left = deadline - asyncio.get_running_loop().time()
    either: set[asyncio.Future[Any]] = {accepted, listener.gone}
    await asyncio.wait(either, timeout=max(left, 0), return_when=asyncio.FIRST_COMPLETED)
    if accepted.done():
        return accepted.result()
    if listener.gone.done():
        raise ListenerGone("the listener disconnected before it accepted the connection")
    raise ListenerTimeout(f"the listener did not accept the connection within {timeout:g} s")


def _accept_command(
    request: web.Request, path: str, ident: str, where: TokenLocation | None,
    origin: str | None = None,
) -> AcceptCommand:
    """The accept for a listener; its address is ``origin`` (a cluster node's own), else
    the address the sender used."""
    scheme = "wss" if request.secure else "ws"
    origin = origin or f"{scheme}://{request.host}"
    address = f"{origin}/$hc/{path}?sb-hc-action=accept&sb-hc-id={ident}"
    drop = set(_CREDENTIALS)
    if where is TokenLocation.AUTHORIZATION_HEADER:
        drop.add("authorization")
    headers = tuple((k, v) for k, v in request.headers.items() if k.lower() not in drop)
    peer = request.transport.get_extra_info("peername") if request.transport else None
    remote = (str(peer[0]), int(peer[1])) if peer else None
    return AcceptCommand(address, str(uuid.uuid4()), headers, remote)


async def listener_accepts(request: web.Request, pending: PendingAccept) -> web.StreamResponse:
    """The listener opened the accept address: reject (410) or join the two sockets."""
    status = request.query.get("sb-hc-statusCode")
    if status is not None:
        description = request.query.get("sb-hc-statusDescription", "")
        code = int(status) if status.isdigit() else 502
        if not pending.listener_socket.done():
            pending.listener_socket.set_exception(ListenerRejected(code, description))
        return web.Response(status=410, text="rejected\n")
    for_listener, for_sender = _subprotocols(
        _protocols(request.headers.get("Sec-WebSocket-Protocol")), pending.sender_protocols
    )
    ws, response = await RawWebSocket.accept(request, for_listener)
    if pending.listener_socket.done():  # the sender gave up meanwhile
        await ws.close(1001, "the sender went away")
        return response
    pending.listener_socket.set_result((ws, for_sender))
    await pending.finished.wait()
    return response


def _subprotocols(listener: list[str], sender: list[str]) -> tuple[str | None, str | None]:
    """The subprotocol each 101 carries: never one its peer did not offer (RFC 6455 §4.1).

    A listener that names subprotocols gets the first of them the sender offered too,
    and both sides agree on it (or on none).  A listener that names none leaves the
    choice to the relay: its own 101 carries none, and the sender's carries the
    sender's first (ws 1.x clients fail when a requested subprotocol is not echoed).
    """
    if listener:
        common = next((p for p in listener if p in sender), None)
        return common, common
    return None, sender[0] if sender else None


async def _pump(sender: RawWebSocket, listener: RawWebSocket) -> None:
    """Copy frames both ways until both sides are closed; close codes pass through.

    The side that closes first gets its Close answered by the relay; its code and
    reason go on to the other side, whose closing handshake the relay completes too
    (``RawWebSocket.close``), so neither peer sees its TCP connection dropped early.
    Data frames go across as each side's bytes are parsed (``RawWebSocket.forward_to``);
    the two copy tasks take what is queued: control frames, and data frames held back by
    a full or closing side.
    """
    sender.forward_to(listener)
    listener.forward_to(sender)
    tasks = [asyncio.ensure_future(_copy(sender, listener)), asyncio.ensure_future(_copy(listener, sender))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _sendable(code: int) -> int:
    """A close code both peers can take: 1005/1006/1015 are never sent on the wire, and
    ws 1.1.5 (inside hyco-ws) fails on anything outside 1000-1003, 1007-1011, 3000-4999."""
    if 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999:
        return code
    return 1011 if 1012 <= code <= 1014 else 1000


async def _copy(source: RawWebSocket, sink: RawWebSocket) -> None:
    """Forward ``source``'s frames to ``sink`` until ``source`` closes, then close ``sink``.

    Frames that arrive once ``sink`` is closing have nowhere to go and are dropped.
    """
    while True:
        frame = await source.recv_frame()
        if frame is None:
            await sink.close(1001, "the peer went away")
            return
        if frame.opcode is Opcode.CLOSE:
            close = close_of(frame)
            await sink.close(_sendable(close.code), close.reason)
            return
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT) and sink.open:
            await sink.send_frame(frame.opcode, bytes(frame.data), frame.fin)
