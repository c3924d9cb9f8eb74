"""HTTP senders: one request to one listener (request-response, oneway) or to all (event).

A request body up to 64 KiB travels inline on the control channel; a larger or
chunked one is announced address-only and streamed over the rendezvous socket
when the listener opens it (``relay.rendezvous``), never held whole in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable

from hc.entities import EntityKind
from hc.fanout import PreparedRequest
from hc.headers import (
    TokenLocation,
    forwarded_request_headers,
    query_pairs,
    request_target,
)
from hc.messages import Headers
from relay import access
from relay.budget import Reservation
from relay.call_heads import reply_head, request_command, request_ids, time_out
from relay.chunks import chained, limited
from relay.exceptions import (
    BadRequest,
    EntityNotFound,
    ListenerGone,
    ListenerTimeout,
    MessageTooLarge,
    RelayError,
)
from relay.listeners import (
    INLINE_LIMIT,
    ListenerConnection,
    PendingRequest,
    RelayedReply,
    choose_live,
)
from relay.observe.call import CallNotes
from relay.routing import EntityState
from relay.sender_io import SenderReply, SenderRequest
from relay.state import SOAP_TOKEN_SCAN_LIMIT, RelayState
from soap.envelope import SoapVersion
from soap.exceptions import SoapError
from soap.relay_token import extract_relay_token

__all__ = [
    "METADATA_METHODS",
    "RELAY_TOKEN_MARK",
    "relay_http",
    "reply_head",
    "request_command",
    "respond",
    "respond_oneway",
    "time_out",
]

log = logging.getLogger("relay.http")
#: Methods a oneway or event entity answers like request-response (WSDL/XSD fetches).
METADATA_METHODS = frozenset({"GET", "HEAD"})
#: A cheap byte test before any XML is looked at: most bodies carry no SOAP token.
RELAY_TOKEN_MARK = b"RelayAccessToken"


async def relay_http(state: RelayState, request: SenderRequest, reply: SenderReply) -> None:
    """Relay one HTTP request to the entity its path names; the answer goes to ``reply``.

    Counted as a call in flight (``relay.drain``): a stopping relay lets it finish.
    Raises ``RelayError`` for the relay's own refusals (before anything was answered).
    """
    calls = state.calls
    calls.enter()
    scan = Reservation(state.scan_budget)
    call = state.observer.call(request, reply)  # observe: the reply that takes notes
    try:
        await _relay_http(state, request, call, scan)
    except BaseException as exc:
        call.finished(exc)  # observe
        raise
    else:
        call.finished(None)  # observe
    finally:
        scan.release()
        calls.leave()


async def _relay_http(
    relay: RelayState, request: SenderRequest, reply: CallNotes, scan: Reservation
) -> None:
    if request.method == "CONNECT":
        raise BadRequest("CONNECT is never relayed")
    if request.headers.get("Upgrade"):
        raise BadRequest("WebSocket senders connect to /$hc/<entity>?sb-hc-action=connect")
    resolved = relay.registry.resolve(request.path)
    if resolved is None:
        raise EntityNotFound(f"no entity at {request.path!r}")
    state, _ = resolved
    limit = state.config.max_message_size
    length = request.content_length
    if length is not None and length > limit:
        raise MessageTooLarge(f"the body ({length} bytes) is over this entity's limit of {limit}")
    body, stream = await _body_at_hand(request, limit, scan)
    soap_token = None
    if body is not None and RELAY_TOKEN_MARK in body:
        # A RelayAccessToken header is a credential: cut out whenever the body is at
        # hand, and used only when no token came in the query or the HTTP headers.
        soap_token, body = _soap_header_token(request, body)
    asked = access.AccessRequest(
        request.method, request.host, query_pairs(request.raw_query), request.headers.items(),
    )
    decision = access.send(
        asked, state, relay.config, relay.verifier, soap_token=soap_token,
        scan_refused=scan.refused,
    ).check()
    where = decision.token_location
    reply.forwarding(state, body)  # observe
    kind = state.config.kind
    if request.method in METADATA_METHODS:
        # Extension: a GET (a WSDL or XSD fetch) on a oneway or event entity is answered
        # by one listener like request-response, so a client can load the contract the
        # way it would from a WCF metadata endpoint; only messages are one-way.
        kind = EntityKind.REQUEST_RESPONSE
    if kind is EntityKind.EVENT:
        if body is None:  # every subscriber gets the same bytes: read them once
            body = b"".join([c async for c in limited(stream or request.iter_body(), limit)])
        exchange = _Exchange(relay, request, reply, where, body, limit)
        # cluster seam: every other node's subscribers too (relay.cluster)
        elsewhere = None if relay.cluster is None else relay.cluster.scatter_event(state, exchange, body)
        await exchange.multicast(list(state.listeners), state.config.timeout, elsewhere)
        return
    # PROTOCOL.md §3: a chunked body goes address-only, even one read whole for its token.
    inline_ok = request.content_length is not None or not request.body_exists
    exchange = _Exchange(relay, request, reply, where, body, limit, stream, inline_ok=inline_ok)
    respond = exchange.respond_oneway if kind is EntityKind.ONEWAY else exchange.respond
    pending, answer = await exchange.send(state, state.config.timeout)
    reply.answered(pending)  # observe
    try:
        await respond(answer)
    finally:
        await exchange.release(pending)


async def _body_at_hand(
    request: SenderRequest, limit: int, scan: Reservation
) -> tuple[bytes | None, AsyncIterator[bytes] | None]:
    """The body when it is read whole before relaying, else None and maybe a stream of it.

    Read whole: no body at all; a body of at most 64 KiB (it travels inline); a SOAP
    body of at most 1 MiB, chunked or not (it may carry a RelayAccessToken header),
    while the relay's scan budget (``relay.budget``) has room for it.  A chunked SOAP
    body found longer than that streams on from what was read.
    """
    length = request.content_length
    if length is None and not request.body_exists:
        # No Content-Length and no Transfer-Encoding: no body (RFC 9112 section 6.3), so a
        # GET goes inline, not address-only (hyco-https would open a rendezvous for each).
        return b"", None
    if length is not None and length <= INLINE_LIMIT:
        return await request.read(), None
    if SoapVersion.from_content_type(request.headers.get("Content-Type", "")) is None:
        return None, None
    if length is not None and length > SOAP_TOKEN_SCAN_LIMIT:
        return None, None
    if not scan.take(SOAP_TOKEN_SCAN_LIMIT if length is None else length):
        return None, None
    if length is not None:
        return await request.read(), None
    return await _head_of(limited(request.iter_body(), limit), SOAP_TOKEN_SCAN_LIMIT)


async def _head_of(
    chunks: AsyncIterator[bytes], limit: int
) -> tuple[bytes | None, AsyncIterator[bytes] | None]:
    """The whole of ``chunks`` if it ends within ``limit`` bytes, else a stream of it all."""
    head: list[bytes] = []
    size = 0
    async for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size > limit:
            return None, chained(head, chunks)
    return b"".join(head), None


def _soap_header_token(request: SenderRequest, body: bytes) -> tuple[str | None, bytes]:
    """PROTOCOL.md §6: the RelayAccessToken SOAP header's token, and the body without
    that header element, every other byte kept."""
    if SoapVersion.from_content_type(request.headers.get("Content-Type", "")) is None:
        return None, body
    try:
        match = extract_relay_token(body)
    except SoapError as exc:
        log.info("no usable RelayAccessToken header: %s", exc)
        return None, body
    if match is None:
        return None, body
    return match.token, match.strip(body)


class _Exchange:
    """One sender request on its way to one or more listeners."""

    def __init__(
        self,
        relay: RelayState,
        request: SenderRequest,
        reply: SenderReply,
        where: TokenLocation | None,
        body: bytes | None,
        limit: int,
        stream: AsyncIterator[bytes] | None = None,
        *,
        inline_ok: bool = True,
    ) -> None:
        self.relay, self.request, self.reply = relay, request, reply
        self.body, self.limit, self.stream = body, limit, stream
        self.inline_ok = inline_ok
        self.relay_host = request.host
        self.headers: Headers = forwarded_request_headers(
            request.headers.items(), where, self.relay_host
        )
        self.target = request_target(request.raw_path, request.raw_query)
        self._tickets: dict[PendingRequest, str] = {}

    def _has_body(self) -> bool:
        if self.body is not None:
            return bool(self.body)
        return self.request.body_exists

    def _new_pending(self, listener: ListenerConnection, ident: str) -> PendingRequest:
        command = request_command(
            self.request, listener, ident, self.target, self.headers, self._has_body(),
            self.relay.rendezvous_origin,
        )
        if self.body is not None:
            return listener.new_request(command, self.body)
        return listener.new_request(
            command, limited(self.stream or self.request.iter_body(), self.limit)
        )

    def post(self, listener: ListenerConnection, timeout: float) -> PendingRequest:
        """Queue the request on ``listener``'s control channel; no waiting (see :meth:`send`)."""
        table = self.relay.rendezvous
        ident = table.new_id()
        pending = self._new_pending(listener, ident)
        table.put(ident, pending, ttl=max(timeout, self.relay.config.rendezvous_timeout))
        self._tickets[pending] = ident
        try:
            if self.inline_ok and self.body is not None and len(self.body) <= INLINE_LIMIT:
                listener.post_inline(pending, self.body if self.body else None)
            else:
                listener.post_address_only(pending)
        except BaseException:
            self.done(pending)
            raise
        return pending

    async def send(
        self, state: EntityState[ListenerConnection], timeout: float
    ) -> tuple[PendingRequest, RelayedReply]:
        """Deliver to one of ``state``'s listeners and wait for its reply head.

        A listener that is dropped before any byte of the request reached it (an
        address-only request whose rendezvous it never opened) has not seen the
        call, so the call goes to another listener, within the same ``timeout``.
        Cleans up on failure.
        """
        loop = self.relay.running_loop
        deadline = loop.time() + timeout
        tried: list[ListenerConnection] = []
        while True:
            now = loop.time()
            cluster = self.relay.cluster
            if cluster is not None and not state.listeners:  # cluster seam: on another node
                listener = cluster.remote(state)
            else:
                listener = choose_live(state, self.relay.rng, now, tried)
            pending = self.post(listener, timeout)
            try:
                return pending, await self._answer(listener, pending, deadline - now, timeout)
            except ListenerGone as gone:
                await self.release(pending)
                tried.append(listener)
                if pending.reached_listener or all(lst in tried for lst in state.listeners):
                    raise
                log.info("request %s goes to another listener: %s", pending.id, gone)
            except BaseException:
                await self.release(pending)
                raise

    async def _answer(
        self, listener: ListenerConnection, pending: PendingRequest, left: float, timeout: float
    ) -> RelayedReply:
        """The reply head, within ``left`` seconds (of the entity's ``timeout``)."""
        await listener.drain()
        # A timer on the reply future: cheaper than wait_for(shield(...)) per request.
        timer = listener.loop.call_later(left, time_out, pending, timeout)
        try:
            return await pending.reply
        finally:
            timer.cancel()

    async def release(self, pending: PendingRequest) -> None:
        """:meth:`done`, then wait until the rendezvous stopped reading the sender's body:
        aiohttp reads what is left of it once the handler returns, and two readers of one
        stream fail (``readany() called while another coroutine is already waiting``)."""
        self.done(pending)
        pump = pending.pump
        if pump is not None and not pump.done():
            pump.cancel()
            await asyncio.wait([pump])

    def done(self, pending: PendingRequest) -> None:
        """Forget ``pending`` everywhere and release its rendezvous socket, if any."""
        pending.listener.forget(pending)
        ticket = self._tickets.pop(pending, None)
        if ticket is not None:
            self.relay.rendezvous.discard(ticket)
        pending.finish()

    async def respond(self, answer: RelayedReply) -> None:
        await respond(self.reply, answer, self.relay_host, self.request.path)

    async def respond_oneway(self, answer: RelayedReply) -> None:
        await respond_oneway(self.reply, answer, self.relay_host, self.request.path)

    async def multicast(
        self, listeners: list[ListenerConnection], timeout: float,
        elsewhere: Awaitable[int] | None = None,
    ) -> None:
        """PROTOCOL.md §6 event: every listener at once; 202 with ``Relay-Delivered``.

        The request is queued on every control channel in one pass (no task per
        subscriber), framed once for all when it travels inline (``hc.fanout``),
        and the answers are counted as they settle, with one future for all.
        """
        fan = _FanOut(self.relay.running_loop)
        remote = None if elsewhere is None else asyncio.ensure_future(elsewhere)  # cluster seam
        posted = self._post_all(listeners, timeout, fan)
        try:
            await fan.wait(timeout)
            answers = [_answer(p) for p, _ in posted]
            streamed = [a for a in answers if isinstance(a, RelayedReply)]
            delivered = sum(1 for a in answers if a is True)
            if streamed:  # an acknowledgement with a body on a rendezvous: rare
                delivered += sum(await asyncio.gather(*(_drained_ok(a) for a in streamed)))
            if remote is not None:  # cluster seam: the other nodes' count
                delivered += await remote
        finally:
            if remote is not None:
                remote.cancel()
            table = self.relay.rendezvous
            for pending, ident in posted:
                pending.listener.forget(pending)
                table.discard(ident)
                pending.finish()
        self.reply.whole(202, None, (("Relay-Delivered", str(delivered)),), b"")

    def _post_all(
        self, listeners: list[ListenerConnection], timeout: float, fan: _FanOut
    ) -> list[tuple[PendingRequest, str]]:
        """Queue the event on every listener; each copy with its rendezvous id."""
        body = self.body
        if not (self.inline_ok and body is not None and len(body) <= INLINE_LIMIT):
            return self._post_each(listeners, timeout, fan)  # address-only: a rendezvous each
        table = self.relay.rendezvous
        new_id, settled = table.new_id, fan.settled
        prepared: dict[str, PreparedRequest] = {}
        posted: list[tuple[PendingRequest, str]] = []
        for listener in listeners:
            # Every copy has its own rendezvous: a subscriber may acknowledge with a
            # body over 64 KiB, which it sends there (as hyco-https does).
            ident = new_id()
            template = prepared.get(listener.entity_path) or prepared.setdefault(
                listener.entity_path, self._prepared(listener))
            pending = PendingRequest(template.command, body, listener, str(next(request_ids)))
            try:
                listener.post_prepared(pending, template, ident)
            except RelayError as exc:
                log.info("event not delivered to %s: %s", listener.id, exc)
                continue
            pending.on_settled = settled
            posted.append((pending, ident))
        fan.left += len(posted)
        table.put_many([(ident, pending) for pending, ident in posted],
                       ttl=max(timeout, self.relay.config.rendezvous_timeout))
        return posted

    def _prepared(self, listener: ListenerConnection) -> PreparedRequest:
        """The event's command and body framed once for the listeners on ``listener``'s path."""
        command = request_command(
            self.request, listener, "", self.target, self.headers, self._has_body(),
            self.relay.rendezvous_origin,
        )
        return PreparedRequest(command, self.body if self.body else None)

    def _post_each(
        self, listeners: list[ListenerConnection], timeout: float, fan: _FanOut
    ) -> list[tuple[PendingRequest, str]]:
        posted = []
        for listener in listeners:
            try:
                pending = self.post(listener, timeout)
            except RelayError as exc:
                log.info("event not delivered to %s: %s", listener.id, exc)
                continue
            pending.on_settled = fan.settled
            fan.left += 1
            posted.append((pending, self._tickets.pop(pending)))
        return posted


class _FanOut:
    """An event's copies in flight: a count of those not settled yet, one future for all."""

    __slots__ = ("_waiter", "left", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.left = 0
        self._waiter: asyncio.Future[None] | None = None

    def settled(self, _: PendingRequest) -> None:
        self.left -= 1
        waiter = self._waiter
        if self.left <= 0 and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until every copy is settled, or ``timeout`` seconds."""
        if self.left <= 0:
            return
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def respond(reply: SenderReply, answer: RelayedReply, relay_host: str, path: str) -> None:
    """The listener's reply to the sender: whole if it came inline, else streamed (chunked)."""
    status, reason, headers = reply_head(answer, relay_host, path)
    if answer.inline is not None:  # headers and body leave in one write
        reply.whole(status, reason, headers, answer.inline)
        return
    try:
        await reply.stream(status, reason, headers, answer.body)
    except (ConnectionError, RelayError) as exc:
        log.warning("listener vanished mid-response on %s: %s", path, exc)
        reply.abort()


async def respond_oneway(
    reply: SenderReply, answer: RelayedReply, relay_host: str, path: str
) -> None:
    """PROTOCOL.md §6: 202 once the listener acknowledged; its errors pass through."""
    if not 200 <= answer.command.status_code < 300:
        await respond(reply, answer, relay_host, path)
        return
    async for _ in answer.body:
        pass
    reply.whole(202, None, (), b"")


def _answer(pending: PendingRequest) -> bool | RelayedReply:
    """Whether a subscriber acknowledged (2xx) in time, or its reply if the body streams."""
    try:
        reply = pending.result()
    except asyncio.InvalidStateError:
        log.info("event not delivered to %s: no answer in time", pending.listener.id)
        pending.fail(ListenerTimeout("no acknowledgement in time"))
        return False
    except Exception as exc:  # noqa: BLE001 - why it failed, logged
        log.info("event not delivered to %s: %s", pending.listener.id, exc)
        return False
    if not 200 <= reply.command.status_code < 300:
        return False
    return True if reply.inline is not None else reply


async def _drained_ok(reply: RelayedReply) -> bool:
    try:
        async for _ in reply.body:
            pass
    except (RelayError, ConnectionError) as exc:
        log.info("event acknowledgement broke off: %s", exc)
        return False
    return True
