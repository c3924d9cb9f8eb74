"""The front's common call, relayed with no task: queued from one ``data_received``,
answered from another.

Nearly everything a relay of SOAP services carries is one case: a request the
lean front read whole (``relay.front``), to a request-response or one-way
entity, whose body carries no RelayAccessToken header, whose token verifies (or
is not needed), with a live listener whose control channel has room (or, on a
cluster node with no listener for it, the stand-in for the listeners on other
nodes: ``relay.cluster.remote``, which asks over NATS with no task).  Such a
call is queued on the listener's control channel inline, at once, from the
sender's ``data_received``; the listener's answer, parsed in the listener's
``data_received``, settles the call's :class:`relay.pending.PendingRequest`, and
its settle callback writes the sender's answer.  No task, no coroutine, no
awaited future: 7 % fewer instructions per call than through a task
(``bench.relay_micro``, counted by callgrind).

Everything else goes to ``relay.http_senders.relay_http`` in a task, which serves
every case; so does every refusal (a bad token, no listener, a stopping relay),
so that each error is produced in one place.  A reply the listener streams over
a rendezvous (a response over 64 KiB) continues in a task too.

Life of a front call::

    POSTED --listener's answer, inline--> ANSWERED (written, then released)
    POSTED --answer streamed on a rendezvous--> task streams it --> released
    POSTED --listener gone / timeout / bad answer--> error answer --> released

Released means: forgotten by the listener, its rendezvous id dropped, the
rendezvous (if any) told to end, the call gate told, the front told (which
reads the connection's next request).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from hc.entities import EntityKind
from hc.headers import forwarded_request_headers, query_pairs, request_target
from relay import access
from relay.call_heads import reply_head, request_command, time_out
from relay.drain import GateState
from relay.exceptions import RelayError
from relay.front_wire import FastRequest
from relay.http_senders import METADATA_METHODS, RELAY_TOKEN_MARK, respond, respond_oneway
from relay.listeners import ListenerConnection, PendingRequest, RelayedReply, choose_live
from relay.observe.call import CallNotes
from relay.sender_io import SenderReply
from relay.state import RelayState

__all__ = ["CallOwner", "relay_at_once"]


class CallOwner(Protocol):
    """The front connection a call came on (``relay.front.FrontProtocol``)."""

    def reply_to(self, request: FastRequest) -> SenderReply:
        """Where the answer to ``request`` goes."""

    def answer_error(self, exc: BaseException, request: FastRequest, reply: SenderReply) -> None:
        """Answer ``request`` with the relay's error for ``exc`` (``relay.boundary``)."""

    def finished(self, request: FastRequest) -> None:
        """``request`` is answered: read the connection's next one."""


def relay_at_once(relay: RelayState, request: FastRequest, owner: CallOwner) -> bool:
    """Queue ``request`` on a listener now if it is the common case (see above).

    Returns:
        True when the call is on its way (``owner`` hears back); False when
        ``relay_http`` must serve it, nothing having been done.
    """
    if relay.calls.state is not GateState.OPEN:
        return False
    resolved = relay.registry.resolve(request.path)
    if resolved is None:
        return False
    state = resolved[0]
    config = state.config
    kind = config.kind  # compared by identity: an enum's hash is a Python call
    if kind is EntityKind.ONEWAY:
        if request.method in METADATA_METHODS:
            return False
    elif kind is not EntityKind.REQUEST_RESPONSE:
        return False
    body = request.body
    if len(body) > config.max_message_size or RELAY_TOKEN_MARK in body:
        return False
    asked = access.AccessRequest(
        request.method, request.host, query_pairs(request.raw_query), request.headers.items(),
    )
    decision = access.send(asked, state, relay.config, relay.verifier)
    if decision.error is not None:
        return False
    loop = relay.running_loop
    try:
        if state.listeners or relay.cluster is None:
            listener = choose_live(state, relay.rng, loop.time(), [])
        else:  # cluster seam: the listeners on other nodes (relay.cluster.remote), asked
            # at once, not after choose_live's NoListener (an exception and its traceback
            # per cross-node call)
            listener = relay.cluster.remote(state)
    except RelayError:
        return False
    if listener.congested:
        return False
    headers = forwarded_request_headers(request.headers.items(), decision.token_location,
                                        request.host)
    target = request_target(request.raw_path, request.raw_query)
    ident = relay.rendezvous.new_id()
    command = request_command(request, listener, ident, target, headers, bool(body),
                              relay.rendezvous_origin)
    pending = listener.new_request(command, body)
    try:
        listener.post_inline(pending, body or None)
    except RelayError:  # gone meanwhile, or (another node's) NATS unreachable
        listener.forget(pending)
        return False
    timeout = config.timeout
    relay.rendezvous.put(ident, pending, ttl=max(timeout, relay.config.rendezvous_timeout))
    relay.calls.enter()
    reply = owner.reply_to(request)
    notes = relay.observer.call(request, reply)  # relay.observe: the reply that takes notes
    notes.forwarding(state, body)
    call = _FrontCall(relay, request, owner, listener, pending, ident, reply, notes,
                      kind is EntityKind.ONEWAY)  # a metadata GET is never one
    call.timer = loop.call_later(timeout, time_out, pending, timeout)
    pending.on_settled = call.settled
    return True


class _FrontCall:
    """One call queued by :func:`relay_at_once`, until it is released."""

    __slots__ = ("ident", "listener", "notes", "oneway", "owner", "pending", "relay", "reply",
                 "request", "timer")

    def __init__(
        self, relay: RelayState, request: FastRequest, owner: CallOwner,
        listener: ListenerConnection, pending: PendingRequest, ident: str,
        reply: SenderReply, notes: CallNotes, oneway: bool,
    ) -> None:
        self.relay, self.request, self.owner = relay, request, owner
        self.listener, self.pending, self.ident, self.oneway = listener, pending, ident, oneway
        self.reply, self.notes = reply, notes
        self.timer: asyncio.TimerHandle | None = None

    def settled(self, pending: PendingRequest) -> None:
        """The listener answered, or the call failed: answer the sender.

        Runs inside the listener's (or the timer's) callback: nothing may escape.
        """
        if self.timer is not None:
            self.timer.cancel()
        try:
            answer = pending.result()
            self.notes.answered(pending)
            if answer.inline is None:  # streamed from a rendezvous: rare, in a task
                self.relay.running_loop.create_task(self._stream(answer))
                return
            self._answer(answer)
        except BaseException as exc:  # noqa: BLE001 - the one boundary (relay.boundary)
            self._failed(exc)
        else:
            self.notes.finished(None)
        self._release()

    def _answer(self, answer: RelayedReply) -> None:
        if self.oneway and 200 <= answer.command.status_code < 300:
            self.notes.whole(202, None, (), b"")  # PROTOCOL.md §6: the listener acknowledged
            return
        status, reason, headers = reply_head(answer, self.request.host, self.request.path)
        self.notes.whole(status, reason, headers, answer.inline or b"")

    def _failed(self, exc: BaseException) -> None:
        self.notes.finished(exc)  # first: it names the tracking id the answer carries
        self.owner.answer_error(exc, self.request, self.reply)

    async def _stream(self, answer: RelayedReply) -> None:
        request = self.request
        try:
            if self.oneway:
                await respond_oneway(self.notes, answer, request.host, request.path)
            else:
                await respond(self.notes, answer, request.host, request.path)
        except Exception as exc:  # noqa: BLE001 - the one boundary (relay.boundary)
            self._failed(exc)
        else:
            self.notes.finished(None)
        finally:
            self._release()

    def _release(self) -> None:
        pending = self.pending
        pending.on_settled = None
        self.listener.forget(pending)
        self.relay.rendezvous.discard(self.ident)
        pending.finish()
        self.relay.calls.leave()
        self.owner.finished(self.request)

