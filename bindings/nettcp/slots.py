"""Places for a client's calls in flight: taken at once when free, else waited for in turn.

An :class:`asyncio.Semaphore` that can also be taken without awaiting
(:meth:`Slots.try_take`), so that a sync caller's call can start from a plain loop
callback, with no task (:meth:`bindings.nettcp.client.SessionClient.start_call`).
"""

from __future__ import annotations

import asyncio
import collections

__all__ = ["Slots"]


class Slots:
    """At most ``limit`` holders; the others wait, first come first served.

    Args:
        limit: places.
    """

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def __repr__(self) -> str:
        return f"<Slots free={self.free} waiting={len(self._waiters)}>"

    def try_take(self) -> bool:
        """Take a place if one is free and nobody waits for one; whether it was taken."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a place, waiting for one in turn."""
        if self.try_take():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # woken with the place of a holder that left
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a place, but cancelled before taking it: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Leave a place: to the first waiter, else free."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
