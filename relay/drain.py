"""Graceful shutdown: calls in flight finish, new ones are refused.

On ``stop()`` the relay keeps its port and its listeners while the calls already
relayed finish (a listener may still need to open a rendezvous, and its answer
must reach the sender), refuses new calls and new listeners with 503, and only
then closes the listeners with 1001.  A call cut off by a shutdown may have run
at the listener, so the sender's retry would run it twice: that is what the grace
period is for.

Life of the gate::

    OPEN --drain()--> DRAINING --no call left, grace over, or cut_short()--> CLOSED
"""

from __future__ import annotations

import asyncio
import enum

from relay.exceptions import ShuttingDown

__all__ = ["CallGate", "GateState"]


class GateState(enum.Enum):
    OPEN = "open"
    DRAINING = "draining"
    CLOSED = "closed"


class CallGate:
    """Counts the calls in flight and turns new ones away once the relay is stopping."""

    def __init__(self) -> None:
        self.state = GateState.OPEN
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._hurry = asyncio.Event()

    def check(self) -> None:
        """Raise ``ShuttingDown`` (503) unless new work is still taken."""
        if self.state is not GateState.OPEN:
            raise ShuttingDown("the relay is shutting down; try again")

    def enter(self) -> None:
        """Count one call in flight (refused once stopping); :meth:`leave` ends it.

        Plain methods, not a context manager: this runs for every relayed request.
        """
        if self.state is not GateState.OPEN:
            raise ShuttingDown("the relay is shutting down; try again")
        if not self.in_flight:
            self._idle.clear()
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self._idle.set()

    async def drain(self, grace: float) -> int:
        """Refuse new calls and wait up to ``grace`` seconds for the others to end.

        Returns:
            How many calls were still in flight when the wait ended.
        """
        self.state = GateState.DRAINING
        idle = asyncio.ensure_future(self._idle.wait())
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            await asyncio.wait({idle, hurry}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            hurry.cancel()
        self.state = GateState.CLOSED
        return self.in_flight

    def cut_short(self) -> None:
        """End a drain now (a second SIGTERM or Ctrl-C)."""
        self._hurry.set()
