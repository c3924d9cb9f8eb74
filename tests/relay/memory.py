"""An in-memory connection for the relay's sans-I/O shells: no socket, no aiohttp.

The relay's end is a :class:`MemoryTransport` whose writes go straight into the
other end's ``hc.protocol.ControlChannel`` (the listener's role); the test feeds
what that machine sends to the relay's ``ChannelWire.feed_data``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hc.protocol import ControlChannel


class MemoryTransport(asyncio.Transport):
    """The relay's end of an in-memory connection: writes go to the peer's machine."""

    def __init__(self, peer: ControlChannel) -> None:
        super().__init__()
        self.peer = peer
        self.writes: list[bytes] = []
        self.closed = self.aborted = self.paused = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.peer.receive_data(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


async def turn() -> None:
    """Let the event loop run what is due now (the relay writes once per turn)."""
    await asyncio.sleep(0)
