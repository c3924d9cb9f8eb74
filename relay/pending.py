"""A request sent to one listener and the reply it owes (``relay.listeners`` keeps them).

A :class:`PendingRequest` lives from the moment a sender's request is queued on
a listener's control channel (inline, or announced address-only) until the
sender is done with the reply; its ``reply`` future resolves to a
:class:`RelayedReply` when the listener's response head arrives, on the control
channel or on the rendezvous socket (``relay.rendezvous``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from hc.messages import RequestCommand, ResponseCommand
from relay.chunks import no_chunks, one_chunk

__all__ = ["PendingRequest", "RelayedReply", "RequestOwner"]


class RequestOwner(Protocol):
    """What a pending request knows of the listener it was sent to
    (a ``relay.listeners.ListenerConnection``)."""

    id: str
    loop: asyncio.AbstractEventLoop

    def forget(self, pending: PendingRequest) -> None:
        """Stop waiting for ``pending``; a late answer is then dropped quietly."""


class RelayedReply:
    """A listener's answer: the response command and its body, streamed.

    ``inline`` is the whole body when it came on the control channel (the sender's
    response then goes out in one write), None when it streams from a rendezvous.
    A plain class with slots, not a dataclass: one is made for every answer, and the
    stream of an inline body only when someone asks for ``body``.
    """

    __slots__ = ("_body", "command", "inline")

    def __init__(
        self, command: ResponseCommand, body: AsyncIterator[bytes] | None = None,
        inline: bytes | None = None,
    ) -> None:
        self.command, self.inline = command, inline
        self._body = body

    def __repr__(self) -> str:
        return f"<RelayedReply {self.command!r}{'' if self.inline is None else ' inline'}>"

    @property
    def body(self) -> AsyncIterator[bytes]:
        """The body in chunks (an inline one as one chunk, made when first asked for)."""
        if self._body is None:
            self._body = one_chunk(self.inline or b"")
        return self._body

    @classmethod
    def whole(cls, command: ResponseCommand, data: bytes) -> RelayedReply:
        return cls(command, None, data)


class PendingRequest:
    """One request sent to one listener and not yet answered.

    ``command`` is the full request; whether it travelled inline or is still
    waiting at the rendezvous address is ``delivered``.  ``body`` is the request
    body to send over the rendezvous (bytes, or a stream from the sender).  An
    event's copies (``relay.http_senders``) share one ``command`` whose address
    lacks the rendezvous id: they are delivered inline at once, so no rendezvous
    ever sends it, and each has its own ``id``.

    A plain class with slots, not a dataclass: one is made for every relayed
    request (a thousand for an event to a thousand subscribers), and its
    ``reply`` future only when someone awaits it: until then the outcome is kept
    here and ``on_settled`` is told.
    """

    __slots__ = ("_done", "_error", "_finished", "_future", "_reply", "body", "command", "delivered",
                 "id", "listener", "on_settled", "pump", "taken")

    def __init__(
        self, command: RequestCommand, body: bytes | AsyncIterator[bytes] | None,
        listener: RequestOwner, ident: str | None = None,
    ) -> None:
        self.command, self.body, self.listener = command, body, listener
        self.id = command.id if ident is None else ident
        self.delivered = False
        #: True once the listener opened this request's rendezvous address.
        self.taken = False
        self._reply: RelayedReply | None = None
        self._error: BaseException | None = None
        self._future: asyncio.Future[RelayedReply] | None = None
        #: Called (synchronously) once the request is settled, answered or failed: the
        #: front's calls (``relay.front_calls``) and an event's fan-out wait on this
        #: instead of awaiting ``reply``.
        self.on_settled: Callable[[PendingRequest], None] | None = None
        #: The rendezvous task moving the request and reply, once the listener opened it.
        self.pump: asyncio.Task[None] | None = None
        self._done = False
        self._finished: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<PendingRequest {self.id} to {self.listener.id}>"

    @property
    def reply(self) -> asyncio.Future[RelayedReply]:
        """A future of the listener's reply head (made when first asked for)."""
        future = self._future
        if future is None:
            # The listener's loop, not get_running_loop(): on Python 3.11 that makes a
            # getpid() syscall.
            future = self._future = self.listener.loop.create_future()
            if self._reply is not None:
                future.set_result(self._reply)
            elif self._error is not None:
                future.set_exception(self._error)
                future.exception()  # retrieved: failed before anyone asked
        return future

    @property
    def settled(self) -> bool:
        """True once answered or failed."""
        return self._reply is not None or self._error is not None

    def result(self) -> RelayedReply:
        """The listener's reply; raises why there is none (``InvalidStateError`` when
        the request is not settled yet)."""
        if self._reply is not None:
            return self._reply
        if self._error is not None:
            raise self._error
        raise asyncio.InvalidStateError("the request is not settled yet")

    @property
    def finished(self) -> asyncio.Event:
        """Set once the sender is done with the reply (made when first asked for)."""
        if self._finished is None:
            self._finished = asyncio.Event()
            if self._done:
                self._finished.set()
        return self._finished

    def finish(self) -> None:
        """The sender is done with the reply: a rendezvous holding it may end."""
        self._done = True
        if self._finished is not None:
            self._finished.set()

    @property
    def reached_listener(self) -> bool:
        """False while no byte of the request can have reached the listener: an
        address-only request whose rendezvous was never opened may be sent elsewhere."""
        return self.delivered or self.taken

    @property
    def answered(self) -> bool:
        """True once the listener's reply head arrived (not a timeout or failure)."""
        return self._reply is not None

    def _open(self) -> bool:
        """Neither answered nor failed, and its future (if any) not cancelled."""
        if self._reply is not None or self._error is not None:
            return False
        future = self._future
        return future is None or not future.done()

    def resolve(self, reply: RelayedReply) -> bool:
        if not self._open():
            return False
        self._reply = reply
        if self._future is not None:
            self._future.set_result(reply)
        if self.on_settled is not None:
            self.on_settled(self)
        return True

    def fail(self, error: BaseException) -> None:
        if self._open():
            self._error = error
            future = self._future
            if future is not None:
                future.set_exception(error)
                future.exception()  # mark retrieved: a sender may have given up already
            if self.on_settled is not None:
                self.on_settled(self)

    def body_chunks(self) -> AsyncIterator[bytes]:
        if self.body is None:
            return no_chunks()
        if isinstance(self.body, bytes):
            return one_chunk(self.body)
        return self.body
