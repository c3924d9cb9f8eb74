"""The listener's node: hand another node's ask to a listener here. No NATS in here.

``REQUEST`` address-only: queue the ``{"request": {"address", "id"}}`` on one
listener's control channel (its address is the ASKING node's, so the listener
opens the rendezvous there) and answer ``POSTED``.  ``REQUEST`` whole: queue the
full request and its body inline and send the listener's inline answer back
(``REPLIED``), saying ``POSTED`` first only if the listener takes longer than
:data:`POSTED_AFTER`; the common case (:func:`serve_at_once`) runs with no task,
from the NATS message's callback to the listener's answer's.  ``ACCEPT``: queue the
accept (the sender waits on the asking node).  ``EVENT``: deliver to every listener
here like a local event and answer with the count (``DELIVERED``).  ``CENSUS``: how
many listeners are here (``COUNTED``), for the namespace-wide quota.  A listener
that drops before it got the command is replaced by another one here; none left is
``NO_LISTENER``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from hc.messages import AcceptCommand, RequestCommand
from relay.cluster.messages import Answer, AnswerStatus, Ask, AskKind
from relay.exceptions import ListenerGone, ListenerTimeout, NoListener, RelayError
from relay.listeners import INLINE_LIMIT, ListenerConnection, PendingRequest, choose_live
from relay.routing import EntityState
from relay.state import RelayState

__all__ = ["POSTED_AFTER", "serve_ask", "serve_at_once"]

log = logging.getLogger("relay.cluster")
#: Seconds a whole request's listener may take before this node says "posted" (the
#: asking node watches this node from then on): a quick call crosses NATS twice, not
#: three times (bench S7, docs/cluster.md).
POSTED_AFTER = 0.1


async def serve_ask(
    relay: RelayState, ask: Ask, node: str, posted: Callable[[], None],
) -> Answer | None:
    """The answer to ``ask`` (None: no answer in time; the asking node times out itself).
    A whole request calls ``posted()`` once its listener took :data:`POSTED_AFTER`
    seconds without answering (the asking node watches this node from then on)."""
    state = relay.registry.get(ask.path)
    if state is None or not state.listeners:
        if ask.kind is AskKind.CENSUS:
            return Answer(AnswerStatus.COUNTED, node, 0)
        return Answer(AnswerStatus.NO_LISTENER, node)
    if ask.kind is AskKind.CENSUS:
        return Answer(AnswerStatus.COUNTED, node, len(state.listeners))
    if ask.body is not None and len(ask.body) > state.config.max_message_size:
        log.warning("cluster: a %s from %s is over %s's limit of %d bytes; refused",
                    ask.kind.value, ask.origin, ask.path, state.config.max_message_size)
        return Answer(AnswerStatus.NO_LISTENER, node)
    if ask.kind is AskKind.EVENT:
        assert isinstance(ask.command, RequestCommand)
        return Answer(AnswerStatus.DELIVERED, node, await _deliver_event(relay, state, ask))
    tried: list[ListenerConnection] = []
    while True:
        try:
            listener = choose_live(state, relay.rng, relay.running_loop.time(), tried)
        except NoListener:
            return Answer(AnswerStatus.NO_LISTENER, node)
        try:
            return await _hand_over(listener, ask, node, posted)
        except ListenerGone as gone:
            log.info("cluster: %s from %s goes to another listener: %s", ask.kind.value, ask.origin, gone)
            tried.append(listener)


async def _hand_over(
    listener: ListenerConnection, ask: Ask, node: str, posted: Callable[[], None],
) -> Answer | None:
    command = ask.command
    if isinstance(command, AcceptCommand):
        await listener.send_accept(command)
        return Answer(AnswerStatus.POSTED, node)
    if command.is_address_only:
        listener.post_address_only(PendingRequest(command, None, listener))
        await listener.drain()
        return Answer(AnswerStatus.POSTED, node)
    return await _whole(listener, ask, command, node, posted)


async def _whole(
    listener: ListenerConnection, ask: Ask, command: RequestCommand, node: str,
    posted: Callable[[], None],
) -> Answer | None:
    pending = listener.new_request(command, ask.body)
    hint = None
    try:
        listener.post_inline(pending, ask.body or None)
        hint = listener.loop.call_later(POSTED_AFTER, posted)
        await listener.drain()
        try:
            reply = await asyncio.wait_for(asyncio.shield(pending.reply), ask.timeout)
        except TimeoutError:
            return None
        except ListenerGone:
            return Answer(AnswerStatus.GONE, node)
        if reply.inline is None:  # answered on a rendezvous: that went to the asking node
            return None
        return Answer(AnswerStatus.REPLIED, node, response=reply.command, body=reply.inline)
    finally:
        if hint is not None:
            hint.cancel()
        listener.forget(pending)


def serve_at_once(
    relay: RelayState, ask: Ask, node: str, finish: Callable[[Answer | None], None],
    posted: Callable[[], None],
) -> bool:
    """Hand a whole request to a listener here now, with no task, if it is the common
    case (a live listener whose control channel has room); ``finish(answer)`` once it is
    settled (None: no answer, the asking node times out itself), ``posted()`` once it
    took :data:`POSTED_AFTER` seconds.  False: :func:`serve_ask` must serve it, nothing
    having been done."""
    command = ask.command
    if ask.kind is not AskKind.REQUEST or not isinstance(command, RequestCommand) \
            or command.is_address_only:
        return False
    state = relay.registry.get(ask.path)
    if state is None or len(ask.body or b"") > state.config.max_message_size:
        return False  # serve_ask answers these
    loop = relay.running_loop
    try:
        listener = choose_live(state, relay.rng, loop.time(), [])
    except NoListener:
        return False
    if listener.congested:
        return False
    pending = listener.new_request(command, ask.body)
    try:
        listener.post_inline(pending, ask.body or None)
    except RelayError:
        listener.forget(pending)
        return False
    pending.on_settled = _Served(loop, listener, pending, node, finish, posted, ask.timeout).settled
    return True


class _TimedOut(ListenerTimeout):
    """The listener did not answer within the ask's timeout: no answer is sent."""


class _Served:
    """A whole request :func:`serve_at_once` handed to a listener, until it is settled.

    One timer, not two: it fires after :data:`POSTED_AFTER` seconds to say "posted",
    then again at the ask's timeout (or only at the timeout, when that is sooner).
    """

    __slots__ = ("deadline", "finish", "hinted", "listener", "loop", "node", "pending", "posted",
                 "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, listener: ListenerConnection,
                 pending: PendingRequest, node: str, finish: Callable[[Answer | None], None],
                 posted: Callable[[], None], timeout: float) -> None:
        self.loop, self.listener, self.pending, self.node = loop, listener, pending, node
        self.finish, self.posted = finish, posted
        self.hinted = timeout <= POSTED_AFTER  # the time is up first: no "posted"
        self.deadline = loop.time() + timeout
        self.timer: asyncio.TimerHandle | None = loop.call_later(min(POSTED_AFTER, timeout), self._tick)

    def _tick(self) -> None:
        """POSTED_AFTER is up: say "posted" and wait for the rest; else the time is up."""
        self.timer = None
        if not self.hinted:
            self.hinted = True
            self.posted()
            self.timer = self.loop.call_at(self.deadline, self._tick)
        else:
            self.pending.fail(_TimedOut())

    def settled(self, pending: PendingRequest) -> None:
        """The listener answered, went away, or the time is up (in a callback: nothing
        may escape)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pending.on_settled = None
        self.listener.forget(pending)
        answer: Answer | None = None
        try:
            reply = pending.result()
            if reply.inline is not None:  # else answered on a rendezvous, on the asking node
                answer = Answer(AnswerStatus.REPLIED, self.node, response=reply.command,
                                body=reply.inline)
        except ListenerGone:
            answer = Answer(AnswerStatus.GONE, self.node)
        except _TimedOut:
            pass
        except RelayError as exc:
            log.info("cluster: a request from another node failed here: %s", exc)
        self.finish(answer)


async def _deliver_event(relay: RelayState, state: EntityState[ListenerConnection], ask: Ask) -> int:
    """Every listener here at once; how many acknowledged (2xx) within the timeout."""
    body = ask.body or b""
    posted: list[tuple[PendingRequest, str]] = []
    for listener in list(state.listeners):
        ident = relay.rendezvous.new_id()
        pending = listener.new_request(_event_command(relay, state.path, ask, ident), body)
        relay.rendezvous.put(ident, pending, ttl=ask.timeout)
        try:
            if len(body) <= INLINE_LIMIT:
                listener.post_inline(pending, body or None)
            else:
                listener.post_address_only(pending)
        except RelayError as exc:
            log.info("cluster: event not delivered to %s: %s", listener.id, exc)
            _done(relay, pending, ident)
            continue
        posted.append((pending, ident))
    try:
        if posted:
            await asyncio.wait([p.reply for p, _ in posted], timeout=ask.timeout)
        return sum([await _acknowledged(p) for p, _ in posted])
    finally:
        for pending, ident in posted:
            _done(relay, pending, ident)


def _event_command(relay: RelayState, path: str, ask: Ask, ident: str) -> RequestCommand:
    """The event's request for one listener here: its own id, and a rendezvous on THIS node."""
    assert isinstance(ask.command, RequestCommand)
    origin = relay.rendezvous_origin or "ws://127.0.0.1"
    address = f"{origin}/$hc/{path}?sb-hc-action=request&sb-hc-id={ident}"
    return replace(ask.command, address=address, id=f"{ask.origin}.{ask.command.id}.{ident[:12]}")


async def _acknowledged(pending: PendingRequest) -> bool:
    if not pending.answered:
        pending.fail(ListenerTimeout("no acknowledgement in time"))
        return False
    reply = pending.reply.result()
    if not 200 <= reply.command.status_code < 300:
        return False
    if reply.inline is None:
        try:
            async for _ in reply.body:
                pass
        except (RelayError, ConnectionError):
            return False
    return True


def _done(relay: RelayState, pending: PendingRequest, ident: str) -> None:
    pending.listener.forget(pending)
    relay.rendezvous.discard(ident)
    pending.finished.set()
