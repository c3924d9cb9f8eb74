"""A WebSocket sender waiting for its listener (PROTOCOL.md §4), and the listener's "no".

Kept apart from ``relay.ws_senders`` (which serves them) so that the relay's state
(``relay.state``) can name what its rendezvous table holds without importing the
handlers that use that state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from relay.exceptions import RelayError
from relay.rawws import RawWebSocket

__all__ = ["ListenerRejected", "PendingAccept"]


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
