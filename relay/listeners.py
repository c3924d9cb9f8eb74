"""A listener's control channel inside the relay, and the requests it owes answers to.

Each connected listener is one :class:`ListenerConnection`: it owns the control
WebSocket, the map of requests sent to that listener (so a ``response`` for an
id it was not given can never reach another sender) and the token-expiry timer.
A ``request`` JSON frame and its body stay adjacent because they leave in one write.

Life of a listener connection::

    ONLINE --close()/token expired/violation--> CLOSING --socket gone--> CLOSED
    ONLINE --peer vanished / ping unanswered--------------------------> CLOSED

Only ONLINE listeners are chosen for new requests.

Liveness: every frame from the listener (pings and pongs included) counts as a
sign of life.  The relay pings a listener it has not heard from for
``ping_interval`` seconds (:meth:`ListenerConnection.tick`, called by the
server's sweep), and also at once when it sends a request to a listener it has
not heard from for :data:`PROBE_AFTER` seconds.  A ping unanswered for
:data:`SUSPECT_AFTER` seconds makes the listener *suspect* (new requests go to
another listener when there is one); unanswered for ``pong_timeout`` seconds,
the listener is dropped: its connection is aborted and every request it owes
an answer fails at once.  A silent network cut therefore costs the calls
already sent to that listener a few seconds, not the 45 s of a 30 s heartbeat.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from hc.exceptions import MalformedMessage
from hc.messages import (
    RenewTokenCommand,
    RequestCommand,
    ResponseCommand,
    parse_listener_command,
)
from relay.exceptions import (
    InvalidListenerResponse,
    ListenerGone,
    ProtocolViolation,
    RelayError,
)
from relay.rawws import FrameSink, Opcode
from relay.routing import EntityState

__all__ = [
    "ListenerConnection",
    "ListenerState",
    "PendingRequest",
    "RelayedReply",
    "choose_live",
]

log = logging.getLogger("relay.listener")

#: PROTOCOL.md §3: requests and responses up to 64 KiB travel inline on the control channel.
INLINE_LIMIT = 64 * 1024
#: Sending a request to a listener silent for this long also sends it a ping.
PROBE_AFTER = 1.0
#: A ping unanswered this long makes a listener the last choice for new requests.
SUSPECT_AFTER = 0.5
#: Unknown-id responses tolerated before the listener is closed with 1008.
_MAX_VIOLATIONS = 16
#: Ids of requests the sender gave up on (timeout, disconnect) whose late answers
#: are dropped quietly: a slow listener is not a misbehaving one.
_ABANDONED_KEPT = 1024
_ids = itertools.count(1)


class ListenerState(enum.Enum):
    ONLINE = "online"
    CLOSING = "closing"
    CLOSED = "closed"


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


@dataclass
class RelayedReply:
    """A listener's answer: the response command and its body, streamed.

    ``inline`` is the whole body when it came on the control channel (the sender's
    response then goes out in one write), None when it streams from a rendezvous.
    """

    command: ResponseCommand
    body: AsyncIterator[bytes]
    inline: bytes | None = None

    @classmethod
    def whole(cls, command: ResponseCommand, data: bytes) -> RelayedReply:
        return cls(command, _one_chunk(data), data)


@dataclass(eq=False)
class PendingRequest:
    """One request sent to one listener and not yet answered.

    ``command`` is always the full request; whether it travelled inline or is
    still waiting at the rendezvous address is ``delivered``.  ``body`` is the
    request body to send over the rendezvous (bytes, or a stream from the sender).
    """

    command: RequestCommand
    body: bytes | AsyncIterator[bytes] | None
    listener: ListenerConnection
    delivered: bool = False
    #: True once the listener opened this request's rendezvous address.
    taken: bool = False
    reply: asyncio.Future[RelayedReply] = field(init=False)
    #: The rendezvous task moving the request and reply, once the listener opened it.
    pump: asyncio.Task[None] | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        # The listener's loop, not get_running_loop(): on Python 3.11 that makes a
        # getpid() syscall, and this runs for every relayed request.
        self.reply = self.listener.loop.create_future()

    @property
    def id(self) -> str:
        return self.command.id

    @property
    def reached_listener(self) -> bool:
        """False while no byte of the request can have reached the listener: an
        address-only request whose rendezvous was never opened may be sent elsewhere."""
        return self.delivered or self.taken

    @property
    def answered(self) -> bool:
        """True once the listener's reply head arrived (not a timeout or failure)."""
        reply = self.reply
        return reply.done() and not reply.cancelled() and reply.exception() is None

    def resolve(self, reply: RelayedReply) -> bool:
        if self.reply.done():
            return False
        self.reply.set_result(reply)
        return True

    def fail(self, error: BaseException) -> None:
        if not self.reply.done():
            self.reply.set_exception(error)
            self.reply.exception()  # mark retrieved: a sender may have given up already

    def body_chunks(self) -> AsyncIterator[bytes]:
        if self.body is None:
            return _no_body()
        if isinstance(self.body, bytes):
            return _one_chunk(self.body)
        return self.body


class ListenerConnection:
    """The relay's side of one listener's control channel."""

    def __init__(
        self,
        entity_path: str,
        *,
        token_expiry: float,
        check_renewal: Callable[[str], float],
        clock: Callable[[], float],
    ) -> None:
        """``check_renewal(token)`` verifies a renewed token and returns its expiry."""
        self.entity_path = entity_path
        self.loop = asyncio.get_running_loop()
        self.id = f"L{next(_ids)}"
        self.state = ListenerState.ONLINE
        self._check_renewal = check_renewal
        self._clock = clock
        self._last_reply: ResponseCommand | None = None
        self._ws: web.WebSocketResponse | None = None
        self._sink: FrameSink | None = None
        self._pending: dict[str, PendingRequest] = {}
        self._abandoned: dict[str, None] = {}  # insertion-ordered, bounded
        self._violations = 0
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._token_expiry = token_expiry
        #: Loop time of the last frame from the listener, and of the ping not yet answered.
        self.last_heard = self.loop.time()
        self._ping_sent: float | None = None
        #: Done once the control channel is closed (or the listener was dropped).
        self.gone: asyncio.Future[None] = self.loop.create_future()

    def __repr__(self) -> str:
        return f"<ListenerConnection {self.id} {self.entity_path} {self.state.value}>"

    # -- requests ------------------------------------------------------------------

    def new_request(self, command: RequestCommand, body: bytes | AsyncIterator[bytes] | None) -> PendingRequest:
        pending = PendingRequest(command, body, self)
        self._pending[command.id] = pending
        return pending

    def forget(self, pending: PendingRequest) -> None:
        """Stop waiting for ``pending``; a late answer to it is then dropped, not counted."""
        if self._pending.pop(pending.id, None) is not None and not pending.answered:
            self._abandoned[pending.id] = None
            if len(self._abandoned) > _ABANDONED_KEPT:
                del self._abandoned[next(iter(self._abandoned))]

    def post_inline(self, pending: PendingRequest, body: bytes | None) -> None:
        """Queue the full request JSON and its body as adjacent messages (PROTOCOL.md §3)."""
        self._queue(pending.command.serialize(), body)
        pending.delivered = True

    def post_address_only(self, pending: PendingRequest) -> None:
        """Queue ``{"request": {"address", "id"}}``; the listener fetches the rest there."""
        command = pending.command
        self._queue(RequestCommand(address=command.address, id=command.id).serialize(), None)

    async def drain(self) -> None:
        """Wait while the control channel's write buffer is full."""
        if self._sink is not None:
            try:
                await self._sink.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise ListenerGone("the listener disconnected") from exc

    async def send_accept(self, text: str) -> None:
        self._queue(text, None)
        await self.drain()

    def _queue(self, text: str, body: bytes | None) -> None:
        """A command and its body, if any, in one write: nothing can come between them."""
        ws, sink = self._ws, self._sink
        if ws is None or sink is None or self.state is not ListenerState.ONLINE or ws.closed:
            raise ListenerGone("the listener disconnected")
        frames = [(Opcode.TEXT, text.encode())]
        if body is not None:
            frames.append((Opcode.BINARY, body))
        try:
            sink.queue(*frames)
        except ConnectionError as exc:
            raise ListenerGone("the listener disconnected") from exc

    # -- the control channel ---------------------------------------------------------

    async def run(self, ws: web.WebSocketResponse, sink: FrameSink) -> None:
        """Read commands until the socket closes; then fail whatever is still pending.

        ``ws`` reads, pings and closes; ``sink`` writes the commands (same connection).
        """
        self._ws, self._sink = ws, sink
        self._schedule_expiry(self._token_expiry)
        try:
            await self._read_loop(ws)
        except ProtocolViolation as exc:
            log.warning("listener %s on %s: %s", self.id, self.entity_path, exc)
            await self.close(1008, str(exc)[:120])
        except Exception:
            log.exception("listener %s on %s: internal error", self.id, self.entity_path)
            await self.close(1011, "internal error")
        finally:
            self.state = ListenerState.CLOSED
            if self._expiry_timer is not None:
                self._expiry_timer.cancel()
            self._gone(ListenerGone("the listener disconnected before it answered"))

    async def _read_loop(self, ws: web.WebSocketResponse) -> None:
        awaiting_body: PendingRequest | None = None
        skip_body = discard_empty = False
        sink = self._sink
        assert sink is not None
        async for msg in ws:
            self.heard()
            if msg.type is WSMsgType.PING:  # autoping is off, so that pongs are seen
                sink.queue((Opcode.PONG, msg.data))
                continue
            if msg.type is WSMsgType.PONG:
                continue
            if msg.type is WSMsgType.BINARY:
                if awaiting_body is not None and self._last_reply is not None:
                    awaiting_body.resolve(RelayedReply.whole(self._last_reply, msg.data))
                    awaiting_body = None
                elif skip_body or (discard_empty and not msg.data):
                    pass  # a body for an unknown id, or hyco-https's 0-byte message
                else:
                    raise ProtocolViolation("binary frame where a command was expected")
                skip_body = discard_empty = False
            elif msg.type is WSMsgType.TEXT:
                if awaiting_body is not None or skip_body:
                    raise ProtocolViolation("command frame where a response body was expected")
                awaiting_body, skip_body, discard_empty = self._on_command(msg.data)
            else:
                break

    def _on_command(self, text: str) -> tuple[PendingRequest | None, bool, bool]:
        """Handle one command; returns (request awaiting its body, skip next body, discard 0-byte)."""
        try:
            command = parse_listener_command(text)
        except MalformedMessage as exc:
            raise ProtocolViolation(f"malformed control frame: {exc}") from None
        if isinstance(command, RenewTokenCommand):
            self._renew(command.token)
            return None, False, False
        pending = self._pending.get(command.request_id)
        if pending is None and self._abandoned.pop(command.request_id, 0) is None:
            log.info("listener %s answered request %s after its sender gave up",
                     self.id, command.request_id)
            return None, command.body, not command.body
        if pending is None:
            self._violations += 1
            log.warning("listener %s answered unknown request id %r", self.id, command.request_id)
            if self._violations >= _MAX_VIOLATIONS:
                raise ProtocolViolation("too many responses for request ids it was not given")
            return None, command.body, not command.body
        if command.status_code < 200:  # 1xx is never a final answer; 101 would upgrade
            pending.fail(InvalidListenerResponse(
                f"the listener answered with status {command.status_code}, not a final status"
            ))
            return None, command.body, not command.body
        if command.body:
            self._last_reply = command
            return pending, False, False
        pending.resolve(RelayedReply.whole(command, b""))
        return None, False, True

    # -- liveness --------------------------------------------------------------------

    def heard(self) -> None:
        """A frame arrived: the listener is alive, and any ping is as good as answered."""
        self.last_heard = self.loop.time()
        self._ping_sent = None

    def suspect(self, now: float) -> bool:
        """True when a ping has gone unanswered for :data:`SUSPECT_AFTER` seconds."""
        return self._ping_sent is not None and now - self._ping_sent > SUSPECT_AFTER

    def probe(self, now: float) -> None:
        """Ping the listener unless it was heard from lately or a ping is out already."""
        if self._ping_sent is None and now - self.last_heard > PROBE_AFTER:
            self._ping()

    def tick(self, now: float, ping_interval: float, pong_timeout: float) -> None:
        """The periodic check: ping a quiet listener, drop one whose ping went unanswered."""
        if self.state is not ListenerState.ONLINE:
            return
        if self._ping_sent is not None:
            if now - self._ping_sent > pong_timeout:
                self.unresponsive(f"did not answer a ping within {pong_timeout:g} s")
        elif now - self.last_heard >= ping_interval:
            self._ping()

    def _ping(self) -> None:
        sink = self._sink
        if sink is None or self.state is not ListenerState.ONLINE:
            return
        try:
            sink.queue((Opcode.PING, b""))
        except ConnectionError:
            return
        self._ping_sent = self.loop.time()

    def unresponsive(self, why: str) -> None:
        """Drop a listener that stopped answering: fail its requests now, abort its socket."""
        log.warning("listener %s on %s %s: dropped", self.id, self.entity_path, why)
        self.state = ListenerState.CLOSING
        self._gone(ListenerGone(f"the listener {why}"))
        if self._sink is not None:
            self._sink.abort()

    def _gone(self, error: RelayError) -> None:
        """The listener is of no more use: say so (``gone``) and fail what it owed."""
        if not self.gone.done():
            self.gone.set_result(None)
        for pending in list(self._pending.values()):
            pending.fail(error)

    # -- token life ----------------------------------------------------------------

    def _renew(self, token: str) -> None:
        try:
            expiry = self._check_renewal(token)
        except RelayError as exc:
            raise ProtocolViolation(f"renewToken refused: {exc}") from None
        self._schedule_expiry(expiry)

    def _schedule_expiry(self, expiry: float) -> None:
        loop = asyncio.get_running_loop()
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        delay = max(0.0, expiry - self._clock())
        self._expiry_timer = loop.call_later(delay, self._expired)

    def _expired(self) -> None:
        log.info("listener %s on %s: token expired", self.id, self.entity_path)
        asyncio.get_running_loop().create_task(self.close(1008, "token expired"))

    async def close(self, code: int = 1001, reason: str = "") -> None:
        """Close the control channel with ``code`` (1001 going away, 1008 policy, 1011)."""
        if self.state is ListenerState.ONLINE:
            self.state = ListenerState.CLOSING
        if self._ws is not None and not self._ws.closed:
            await self._ws.close(code=code, message=reason.encode()[:120])


def choose_live(
    state: EntityState[ListenerConnection], rng: random.Random, now: float,
    tried: list[ListenerConnection],
) -> ListenerConnection:
    """One of ``state``'s listeners not in ``tried``, one without an unanswered ping when
    there is one, and pinged now if it has been silent (see Liveness above).

    Raises:
        NoListener: none is left.
    """
    listener = state.choose(rng, lambda lst: lst.suspect(now), tried)
    listener.probe(now)
    return listener
