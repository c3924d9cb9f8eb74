"""A request sent to one listener and the reply it owes (``relay.listeners`` keeps them).

A :class:`PendingRequest` lives from the moment a sender's request is queued on
a listener's control channel (inline, or announced address-only) until the
sender is done with the reply; its ``reply`` future resolves to a
:class:`RelayedReply` when the listener's response head arrives, on the control
channel or on the rendezvous socket (``relay.rendezvous``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from hc.messages import RequestCommand, ResponseCommand

__all__ = ["PendingRequest", "RelayedReply", "RequestOwner"]


class RequestOwner(Protocol):
    """What a pending request knows of the listener it was sent to
    (a ``relay.listeners.ListenerConnection``)."""

    id: str
    loop: asyncio.AbstractEventLoop

    def forget(self, pending: PendingRequest) -> None:
        """Stop waiting for ``pending``; a late answer is then dropped quietly."""


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
    listener: RequestOwner
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


