"""Pure bookkeeping of a session channel: calls waiting for replies, and flood control.

:class:`PendingCalls` maps each outgoing request's ``MessageID`` to whatever waits for
its reply (a future, in the asyncio shell): a reply is given to the call its
``RelatesTo`` names and to no other; a reply naming no pending call is refused
(the caller drops and logs it).  :class:`FloodGuard` counts the requests a peer
sends while its session is at its bound of calls in flight.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from bindings.nettcp.errors import NetTcpError

__all__ = ["DuplicateMessageId", "FloodGuard", "PendingCalls", "TooManyCalls"]

T = TypeVar("T")


class TooManyCalls(NetTcpError):
    """The session already has its maximum of calls in flight."""

    def __init__(self, limit: int) -> None:
        calls = "call" if limit == 1 else "calls"
        super().__init__(f"the session already has {limit} {calls} in flight (its limit)")
        self.limit = limit


class DuplicateMessageId(ValueError):
    """A MessageID that a call in flight already uses."""


class PendingCalls(Generic[T]):
    """Calls in flight, by MessageID, at most ``limit`` of them.

    Args:
        limit: calls allowed in flight at once.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._calls: dict[str, T] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, message_id: str, waiter: T, *, bounded: bool = True) -> None:
        """Remember ``waiter`` for the reply to ``message_id``.

        Raises:
            TooManyCalls: ``limit`` calls are in flight (only when ``bounded``).
            DuplicateMessageId: ``message_id`` is in flight already.
        """
        if message_id in self._calls:
            raise DuplicateMessageId(f"MessageID {message_id!r} is already in flight")
        if bounded and len(self._calls) >= self.limit:
            raise TooManyCalls(self.limit)
        self._calls[message_id] = waiter

    def settle(self, relates_to: str) -> T | None:
        """The waiter of the call ``relates_to`` names (now settled), or None if none is."""
        return self._calls.pop(relates_to, None)

    def forget(self, message_id: str) -> None:
        """Drop a call that gave up waiting (timeout, cancellation)."""
        self._calls.pop(message_id, None)

    def waiters(self) -> list[T]:
        """The waiters of the calls in flight (the table unchanged)."""
        return list(self._calls.values())

    def drain(self) -> list[T]:
        """Every waiter, the table emptied: the channel ended."""
        waiters = list(self._calls.values())
        self._calls.clear()
        return waiters


class FloodGuard:
    """Counts requests refused because the session was at its bound.

    A peer may overshoot now and then (it learns of the bound from the faults);
    one that keeps sending ``tolerance`` more requests while refused, with no call
    of its finishing in between, is flooding: the session is closed (1008).

    Args:
        tolerance: refusals in a row that make a flood.
    """

    def __init__(self, tolerance: int) -> None:
        self.tolerance = tolerance
        self.refused = 0

    def refuse(self) -> bool:
        """Count one refusal; True when the peer is flooding."""
        self.refused += 1
        return self.refused > self.tolerance

    def accepted(self) -> None:
        """A request was taken: the count starts again."""
        self.refused = 0
