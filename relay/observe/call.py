"""One HTTP sender's call as the observer sees it: a reply that takes notes.

``relay.http_senders.relay_http`` hands the relaying code a :class:`Call` in
place of the sender's reply: it passes every answer through to the real reply
and remembers what the metrics and the inspector need (status, sizes, when
the listener's answer came, which listener, a fault).  The relaying code adds
two notes of its own: :meth:`Call.forwarding` once the call is allowed (its
entity and body) and :meth:`Call.answered` once a listener answered.  The
observer reads the notes when the call ends (``relay.observe.observer``).

With observation off, :class:`Unobserved` takes the notes' place: the real
reply's methods and three no-ops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from time import perf_counter
from typing import Any, Protocol

from hc.messages import Headers
from relay.chunks import watched
from relay.observe.stats import EntityStats
from relay.sender_io import SenderReply, SenderRequest

__all__ = ["Call", "CallNotes", "Unobserved"]

log = logging.getLogger("relay")


class Answerer(Protocol):
    """What :meth:`Call.answered` reads of a pending request (``relay.pending``)."""

    taken: bool

    @property
    def listener(self) -> Any: ...


class CallRecorder(Protocol):
    """What a call tells when it ends (``relay.observe.observer.Observer``)."""

    body_limit: int

    def stats_for(self, name: str) -> EntityStats: ...

    def captures(self, entity: str) -> bool: ...

    def finish(self, call: Call, error: BaseException | None) -> None: ...


class CallNotes(SenderReply, Protocol):
    """The reply ``relay.http_senders`` writes to, with the observer's two notes."""

    def forwarding(self, entity: Any, body: bytes | None) -> None: ...

    def answered(self, pending: Answerer) -> None: ...

    def finished(self, error: BaseException | None) -> None: ...


class Call:
    """A :class:`relay.sender_io.SenderReply` that notes what passes through it."""

    __slots__ = (
        "_keep", "_kept", "answered_at", "body", "capture", "entity", "forwarded_at", "headers_out",
        "listener", "observer", "rendezvous", "reply", "request", "response_body",
        "response_bytes", "started", "status",
    )

    def __init__(self, observer: CallRecorder, request: SenderRequest, reply: SenderReply) -> None:
        self.observer, self.request, self.reply = observer, request, reply
        self.started = perf_counter()
        self.forwarded_at = self.answered_at = 0.0
        self.entity: EntityStats | None = None
        self.body: bytes | None = None
        self.capture = False
        self.listener = ""
        self.rendezvous = False
        self.status = 0
        self.response_bytes = 0
        self.response_body: bytes | None = None
        self.headers_out: Headers = ()
        self._keep = 0  # bytes of a streamed answer still to keep, and those kept
        self._kept: list[bytes] | None = None

    # -- the relaying code's notes ---------------------------------------------------

    def forwarding(self, entity: Any, body: bytes | None) -> None:
        """The call is allowed on ``entity`` (an ``EntityState``); ``body`` if at hand."""
        self.forwarded_at = perf_counter()
        stats = self.entity = self.observer.stats_for(entity.path)
        stats.in_flight += 1
        self.body = body
        self.capture = self.observer.captures(stats.name)

    def answered(self, pending: Answerer) -> None:
        """``pending``'s listener answered (its reply head is in)."""
        self.listener = pending.listener.id
        self.rendezvous = pending.taken

    def finished(self, error: BaseException | None) -> None:
        """The call ended (``error``: why it failed, if it did)."""
        if self.entity is not None:
            self.entity.in_flight -= 1
        try:
            self.observer.finish(self, error)
        except Exception:  # a bug of ours in counting must not fail the call it counts
            log.exception("relay.observe: could not record a call to %s", self.request.path)

    # -- SenderReply -----------------------------------------------------------------

    def whole(self, status: int, reason: str | None, headers: Headers, body: bytes) -> None:
        if not self.answered_at:
            self.answered_at = perf_counter()
        self.status, self.response_bytes, self.headers_out = status, len(body), headers
        if status >= 400 or self.capture:
            self.response_body = body
        self.reply.whole(status, reason, headers, body)

    async def stream(
        self, status: int, reason: str | None, headers: Headers, chunks: AsyncIterator[bytes]
    ) -> None:
        if not self.answered_at:
            self.answered_at = perf_counter()
        self.status, self.headers_out = status, headers
        self._keep = self.observer.body_limit if self.capture or status >= 400 else 0
        self._kept = []
        await self.reply.stream(status, reason, headers, watched(chunks, self._count, self._ended))

    def _count(self, chunk: bytes) -> None:
        """A chunk of a streamed answer goes out: counted, and kept while ``_keep`` lasts."""
        self.response_bytes += len(chunk)
        kept = self._kept
        if self._keep > 0 and kept is not None:
            kept.append(chunk[: self._keep])
            self._keep -= len(kept[-1])

    def _ended(self) -> None:
        """The streamed answer is all out: what was kept of it is the response body."""
        if self._kept:
            self.response_body = b"".join(self._kept)

    def abort(self) -> None:
        self.reply.abort()


class Unobserved:
    """The reply itself, with the notes as no-ops (observation off)."""

    __slots__ = ("abort", "stream", "whole")

    def __init__(self, reply: SenderReply) -> None:
        self.whole, self.stream, self.abort = reply.whole, reply.stream, reply.abort

    def forwarding(self, entity: Any, body: bytes | None) -> None:
        pass

    def answered(self, pending: Answerer) -> None:
        pass

    def finished(self, error: BaseException | None) -> None:
        pass
