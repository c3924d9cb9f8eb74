"""A listener's control channel inside the relay, and the requests it owes answers to.

Each connected listener is one :class:`ListenerConnection`.  The control-channel
rules (a command, then exactly its body; the 0-byte message after a bodiless
response; malformed commands; WebSocket framing) are judged by
:class:`hc.protocol.ControlChannel` in the RELAY role, fed straight from the
socket by :class:`relay.wire.ChannelWire`.  What is left here is the relay's own
business: the map of requests sent to this listener (so a ``response`` for an
id it was not given can never reach another sender), the token's expiry, and
liveness.  A ``request`` command and its body stay adjacent: they are queued in
one call and leave in one write.

Life of a listener connection::

    ONLINE --close()/token expired/violation--> CLOSING --channel ended--> CLOSED
    ONLINE --peer vanished / ping unanswered---------------------------> CLOSED

Only ONLINE listeners are chosen for new requests.

Bad input: the state machine's verdict (a Close with 1002, 1007, 1008 or 1009
and its reason) ends only this listener, with one WARNING line naming it.  The
relay's own rules on top: answers for ids never given are counted
(:attr:`ListenerConnection.unknown_answers`; the 16th closes with 1008), late
answers for requests whose sender gave up are dropped quietly, a 1xx status
fails the request (it is never a final answer), and a renewed token that does
not verify closes with 1008.

Token expiry: the server's periodic sweep (:meth:`ListenerConnection.tick`)
compares the injected ``clock`` with the token's expiry (plus grace); once past
it the channel is closed with 1008 "token expired", unless a ``renewToken``
moved the expiry on.

Liveness: every byte from the listener (pings and pongs included) counts as a
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

from aiohttp import web

from hc.events import ConnectionClosed, Event, RenewTokenReceived, ResponseReceived
from hc.exceptions import RemoteProtocolError
from hc.fanout import PreparedRequest
from hc.messages import AcceptCommand, RequestCommand, ResponseCommand, parse_relay_command
from hc.protocol import ControlChannel, Role
from hc.protocol import State as ChannelState
from relay.exceptions import InvalidListenerResponse, ListenerGone, RelayError
from relay.pending import PendingRequest, RelayedReply
from relay.rawws import apply_mask
from relay.routing import EntityState
from relay.wire import ChannelWire

__all__ = [
    "INLINE_LIMIT",
    "ListenerConnection",
    "ListenerState",
    "PendingRequest",
    "RelayedReply",
    "choose_live",
]

log = logging.getLogger("relay.listener")

#: PROTOCOL.md §3: requests and responses up to 64 KiB travel inline on the control channel.
INLINE_LIMIT = 64 * 1024
#: The largest message a listener may send on its control channel (1009 beyond).
MAX_CONTROL_MESSAGE = 4 * INLINE_LIMIT
#: Sending a request to a listener silent for this long also sends it a ping.
PROBE_AFTER = 1.0
#: A ping unanswered this long makes a listener the last choice for new requests.
SUSPECT_AFTER = 0.5
#: Unknown-id responses tolerated before the listener is closed with 1008.
MAX_UNKNOWN_ANSWERS = 16
#: Ids of requests the sender gave up on (timeout, disconnect) whose late answers
#: are dropped quietly: a slow listener is not a misbehaving one.
_ABANDONED_KEPT = 1024
_POLICY = 1008
#: Channel states in which commands may still be sent.
_SENDING = (ChannelState.OPEN, ChannelState.AWAITING_BODY)
_ids = itertools.count(1)


class ListenerState(enum.Enum):
    ONLINE = "online"
    CLOSING = "closing"
    CLOSED = "closed"


class ListenerConnection:
    """The relay's side of one listener's control channel.

    Args:
        entity_path: the entity it listens on.
        token_expiry: when its token (plus grace) expires, in ``clock`` time.
        check_renewal: verifies a renewed token and returns its expiry (plus grace);
            raises ``RelayError`` for a token it refuses.
        clock: the wall clock tokens are judged by (injectable for tests).
    """

    def __init__(
        self,
        entity_path: str,
        *,
        token_expiry: float,
        check_renewal: Callable[[str], float],
        clock: Callable[[], float],
    ) -> None:
        self.entity_path = entity_path
        self.loop = asyncio.get_running_loop()
        self.id = f"L{next(_ids)}"
        self.state = ListenerState.ONLINE
        self._check_renewal = check_renewal
        self._clock = clock
        self._channel = ControlChannel(
            Role.RELAY, max_message_size=MAX_CONTROL_MESSAGE, mask=apply_mask  # websockets' C unmasking
        )
        self._wire: ChannelWire | None = None
        self._pending: dict[str, PendingRequest] = {}
        self._abandoned: dict[str, None] = {}  # insertion-ordered, bounded
        #: Responses for request ids this listener was never given (or another
        #: listener's); the :data:`MAX_UNKNOWN_ANSWERS`-th closes it with 1008.
        self.unknown_answers = 0
        #: When the listener's token (plus grace) expires, in ``clock`` time.
        self.token_expiry = token_expiry
        #: Loop time of the last bytes from the listener, and of the ping not yet answered.
        self.last_heard = self.loop.time()
        self._ping_sent: float | None = None
        #: Done once the listener is of no more use (closing, closed or dropped).
        self.gone: asyncio.Future[None] = self.loop.create_future()
        #: Why the relay ended it ("token expired", "unresponsive"), for relay.observe; "" else.
        self.left_because = ""

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
        """Queue the full request command and its body as adjacent messages (PROTOCOL.md §3)."""
        self._sendable().send_request(pending.command, body)
        pending.delivered = True

    def post_prepared(self, pending: PendingRequest, prepared: PreparedRequest, rendezvous_id: str) -> None:
        """Queue this listener's copy of a request framed once for many (an event,
        ``hc.fanout``) and expect its answer under ``pending.id``."""
        self._sendable().send_prepared(prepared, rendezvous_id, pending.id)
        self._pending[pending.id] = pending
        pending.delivered = True

    def post_address_only(self, pending: PendingRequest) -> None:
        """Queue ``{"request": {"address", "id"}}``; the listener fetches the rest there."""
        command = pending.command
        self._sendable().send_request(RequestCommand(address=command.address, id=command.id))

    @property
    def congested(self) -> bool:
        """True while the control channel's write buffer is full (:meth:`drain` waits)."""
        wire = self._wire
        return wire is not None and wire.congested

    async def drain(self) -> None:
        """Wait while the control channel's write buffer is full."""
        if self._wire is not None:
            try:
                await self._wire.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise ListenerGone("the listener disconnected") from exc

    async def send_accept(self, command: AcceptCommand | str) -> None:
        """Queue an ``accept`` (a WebSocket sender waits at its address), then drain."""
        accept = command if isinstance(command, AcceptCommand) else parse_relay_command(command)
        if not isinstance(accept, AcceptCommand):
            raise TypeError("send_accept takes an accept command")
        self._sendable().send_accept(accept)
        await self.drain()

    def _sendable(self) -> ControlChannel:
        """The channel, to queue on now (written at the end of this loop turn), or ListenerGone."""
        wire = self._wire
        if wire is None or self.state is not ListenerState.ONLINE or wire.closing:
            raise ListenerGone("the listener disconnected")
        if self._channel.state not in _SENDING:
            raise ListenerGone("the listener's control channel is closing")
        wire.flush_soon()
        return self._channel

    # -- the control channel ---------------------------------------------------------

    async def run(self, request: web.BaseRequest) -> None:
        """Serve the control channel of ``request`` (upgraded already) until it ends;
        then fail whatever is still pending."""
        wire = ChannelWire.attach(request, self._channel, self._on_input, name=self._name)
        self._start(wire)
        await asyncio.shield(wire.ended)

    def connect(self, transport: asyncio.BaseTransport) -> ChannelWire:
        """Serve the control channel over ``transport`` (upgraded already); the caller
        feeds the listener's bytes to the wire's ``feed_data``/``feed_eof``."""
        wire = ChannelWire(transport, self._channel, self._on_input, name=self._name)
        self._start(wire)
        return wire

    @property
    def _name(self) -> str:
        return f"listener {self.id} on {self.entity_path}"

    def _start(self, wire: ChannelWire) -> None:
        self._wire = wire
        wire.ended.add_done_callback(self._ended)
        if self.state is not ListenerState.ONLINE:  # closed while its handshake went on
            wire.close(1001, "the listener is closing")

    def _ended(self, _: object) -> None:
        self.state = ListenerState.CLOSED
        self._gone(ListenerGone("the listener disconnected before it answered"))

    def disconnect(self) -> None:
        """Close the TCP connection (writing what is queued first), once :meth:`run` ended."""
        if self._wire is not None:
            self._wire.disconnect()

    def _on_input(self, events: list[Event], error: RemoteProtocolError | None) -> None:
        """What one chunk from the listener parsed to (``ChannelWire`` calls this)."""
        self.heard()
        for event in events:
            if isinstance(event, ResponseReceived):
                if self.state is ListenerState.ONLINE:
                    self._on_response(event.command, event.body)
            elif isinstance(event, RenewTokenReceived):
                if self.state is ListenerState.ONLINE:
                    self._renew(event.token)
            elif isinstance(event, ConnectionClosed):
                self.state = ListenerState.CLOSED
                self._gone(ListenerGone("the listener disconnected before it answered"))
        if error is not None:
            log.warning("listener %s on %s broke the protocol (%d): %s",
                        self.id, self.entity_path, error.close_code, error.reason)
            self._refuse()

    def _on_response(self, command: ResponseCommand, body: bytes | None) -> None:
        pending = self._pending.get(command.request_id)
        if pending is None:
            self._unknown_answer(command.request_id)
        elif command.status_code < 200:  # 1xx is never a final answer; 101 would upgrade
            pending.fail(InvalidListenerResponse(
                f"the listener answered with status {command.status_code}, not a final status"
            ))
        else:
            pending.resolve(RelayedReply.whole(command, body or b""))

    def _unknown_answer(self, request_id: str) -> None:
        if self._abandoned.pop(request_id, 0) is None:
            log.info("listener %s answered request %s after its sender gave up", self.id, request_id)
            return
        self.unknown_answers += 1
        if self.unknown_answers == 1:
            log.warning("listener %s on %s answered request id %r, never given to it",
                        self.id, self.entity_path, request_id[:64])
        if self.unknown_answers >= MAX_UNKNOWN_ANSWERS:
            self._close_for("too many responses for request ids it was not given")

    def _close_for(self, reason: str) -> None:
        """Close with 1008 for a rule of the relay's (logged once, at WARNING)."""
        log.warning("listener %s on %s: %s; closing with 1008", self.id, self.entity_path, reason)
        self._start_close(_POLICY, reason)

    def _refuse(self) -> None:
        """The channel refused the listener's input (its Close is queued): stop now."""
        self.state = ListenerState.CLOSING
        self._gone(ListenerGone("the listener broke the control-channel protocol"))

    # -- liveness --------------------------------------------------------------------

    def heard(self) -> None:
        """Bytes arrived: the listener is alive, and any ping is as good as answered."""
        self.last_heard = self.loop.time()
        self._ping_sent = None

    def suspect(self, now: float) -> bool:
        """True when a ping has gone unanswered for :data:`SUSPECT_AFTER` seconds."""
        return self._ping_sent is not None and now - self._ping_sent > SUSPECT_AFTER

    def probe(self, now: float) -> None:
        """Ping the listener unless it was heard from lately or a ping is out already."""
        if self._ping_sent is None and now - self.last_heard > PROBE_AFTER:
            self._ping(now)

    def tick(self, now: float, ping_interval: float, pong_timeout: float) -> None:
        """The periodic check: close on an expired token, ping a quiet listener, drop one
        whose ping went unanswered (``now`` is loop time; the token's, ``clock``)."""
        if self.state is not ListenerState.ONLINE:
            return
        if self._clock() >= self.token_expiry:
            log.info("listener %s on %s: token expired", self.id, self.entity_path)
            self.left_because = "token expired"  # observe
            self._start_close(_POLICY, "token expired")
        elif self._ping_sent is not None:
            if now - self._ping_sent > pong_timeout:
                self.unresponsive(f"did not answer a ping within {pong_timeout:g} s")
        elif now - self.last_heard >= ping_interval:
            self._ping(now)

    def _ping(self, now: float) -> None:
        try:
            self._sendable().send_ping()
        except ListenerGone:
            return
        self._ping_sent = now

    def unresponsive(self, why: str) -> None:
        """Drop a listener that stopped answering: fail its requests now, abort its socket."""
        log.warning("listener %s on %s %s: dropped", self.id, self.entity_path, why)
        self.left_because = "unresponsive"  # observe
        self.state = ListenerState.CLOSING
        self._gone(ListenerGone(f"the listener {why}"))
        if self._wire is not None:
            self._wire.abort()

    def _gone(self, error: RelayError) -> None:
        """The listener is of no more use: say so (``gone``) and fail what it owed."""
        if not self.gone.done():
            self.gone.set_result(None)
        for pending in list(self._pending.values()):
            pending.fail(error)

    # -- token life and closing ----------------------------------------------------

    def _renew(self, token: str) -> None:
        try:
            self.token_expiry = self._check_renewal(token)
        except RelayError as exc:
            self._close_for(f"renewToken refused: {exc}")

    def _start_close(self, code: int, reason: str) -> None:
        if self.state is ListenerState.ONLINE:
            self.state = ListenerState.CLOSING
        self._gone(ListenerGone("the listener's control channel is closing"))
        if self._wire is not None:
            self._wire.close(code, reason)

    async def close(self, code: int = 1001, reason: str = "") -> None:
        """Close the control channel with ``code`` (1001 going away, 1008 policy, 1011)
        and wait until it ended (the peer's Close, or ``relay.rawws.CLOSE_TIMEOUT``)."""
        self._start_close(code, reason)
        if self._wire is not None:
            await asyncio.shield(self._wire.ended)


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
