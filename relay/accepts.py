"""A WebSocket sender waiting for its listener (PROTOCOL.md §4), the listener's "no",
and the sender-listener pairs the relay has joined.

Kept apart from ``relay.ws_senders`` (which serves them) so that the relay's state
(``relay.state``) can name what its rendezvous table and its pairs hold without
importing the handlers that use that state.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from relay.exceptions import RelayError
from relay.rawws import RawWebSocket

log = logging.getLogger("relay.ws")

__all__ = ["JoinedStreams", "ListenerRejected", "PendingAccept"]


class ListenerRejected(RelayError):
    """The listener declined the WebSocket sender; status and text are the listener's."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description or "the listener rejected the connection")
        self.status = status if 400 <= status <= 599 else 502
        self.code = "ListenerRejected"


@dataclass(eq=False)
class PendingAccept:
    """A sender waiting for a listener to open its accept address."""

    sender_protocols: list[str]
    listener_socket: asyncio.Future[tuple[RawWebSocket, str | None]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class JoinedStreams:
    """The sender-listener WebSocket pairs the relay is pumping frames between.

    A stream has no natural end the way a call has, so a stopping relay does not wait
    for them: once its calls in flight are done, :meth:`close_all` closes both sides of
    every pair with 1001 and the closing handshake, as it closes its listeners. A pair
    joined after that is closed at once (:meth:`add` returns False).
    """

    def __init__(self) -> None:
        self._pairs: set[tuple[RawWebSocket, RawWebSocket]] = set()
        self.closing = False

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, pair: tuple[RawWebSocket, RawWebSocket]) -> bool:
        """Count ``pair`` as joined; False once the relay is closing them all."""
        if self.closing:
            return False
        self._pairs.add(pair)
        return True

    def discard(self, pair: tuple[RawWebSocket, RawWebSocket]) -> None:
        self._pairs.discard(pair)

    async def close_all(self, code: int, reason: str) -> int:
        """Close both sides of every pair, and refuse those joined from now on
        (:meth:`add`); returns how many were closed."""
        self.closing = True
        pairs = list(self._pairs)
        if pairs:
            log.info("closing %d WebSocket streams: %s", len(pairs), reason)
        await asyncio.gather(*(ws.close(code, reason) for pair in pairs for ws in pair),
                             return_exceptions=True)
        return len(pairs)
