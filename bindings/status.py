"""The life of a relay host as one enum, and the object that tracks it.

Transitions (anything else is a bug and raises ``ValueError``)::

    CONNECTING --handshake accepted---------------> ONLINE
    CONNECTING --transient failure (retry)--------> CONNECTING   (last_error set)
    ONLINE     --connection lost (reconnecting)---> CONNECTING   (last_error set)
    CONNECTING --permanent failure (401/403/404)--> OFFLINE      (last_error set; no retry)
    ONLINE     --permanent failure on reconnect---> OFFLINE      (via CONNECTING)
    any but CLOSED --close()----------------------> CLOSING      (draining in-flight calls)
    CLOSING    --drained or timed out-------------> CLOSED

Callbacks run in the host's event loop thread and must not block.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

__all__ = ["HostStatus", "StatusCallback", "StatusTracker"]

log = logging.getLogger(__name__)


class HostStatus(enum.Enum):
    """Where a listener (or a whole host) stands with the relay."""

    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"
    CLOSING = "closing"
    CLOSED = "closed"


StatusCallback = Callable[[HostStatus], None]

_ALLOWED: dict[HostStatus, frozenset[HostStatus]] = {
    HostStatus.CONNECTING: frozenset(
        {HostStatus.CONNECTING, HostStatus.ONLINE, HostStatus.OFFLINE, HostStatus.CLOSING}
    ),
    HostStatus.ONLINE: frozenset({HostStatus.CONNECTING, HostStatus.CLOSING}),
    HostStatus.OFFLINE: frozenset({HostStatus.CLOSING}),
    HostStatus.CLOSING: frozenset({HostStatus.CLOSED}),
    HostStatus.CLOSED: frozenset(),
}


class StatusTracker:
    """Holds a status and the last error, checks transitions, notifies callbacks.

    Args:
        callbacks: called with the new status after every change (not on
            CONNECTING -> CONNECTING retries).
    """

    def __init__(self, callbacks: list[StatusCallback] | None = None) -> None:
        self.status = HostStatus.CONNECTING
        self.last_error: BaseException | None = None
        self._callbacks: list[StatusCallback] = list(callbacks or [])
        self._waiters: list[tuple[frozenset[HostStatus], asyncio.Future[HostStatus]]] = []

    def add_callback(self, callback: StatusCallback) -> None:
        self._callbacks.append(callback)

    def set(self, status: HostStatus, error: BaseException | None = None) -> None:
        """Move to ``status``; ``error`` (if any) becomes ``last_error``.

        Raises:
            ValueError: the transition is not in the table above.
        """
        if status not in _ALLOWED[self.status]:
            raise ValueError(f"host status cannot go from {self.status.name} to {status.name}")
        if error is not None:
            self.last_error = error
        changed, self.status = status is not self.status, status
        if not changed:
            return
        for statuses, future in list(self._waiters):
            if status in statuses and not future.done():
                future.set_result(status)
        self._waiters = [(s, f) for s, f in self._waiters if not f.done()]
        for callback in list(self._callbacks):
            try:
                callback(status)
            except Exception:  # a user's callback must not break the listener
                log.exception("on_status callback failed")

    async def wait_for(self, *statuses: HostStatus) -> HostStatus:
        """Wait until the status is one of ``statuses``; return it."""
        if self.status in statuses:
            return self.status
        future: asyncio.Future[HostStatus] = asyncio.get_running_loop().create_future()
        self._waiters.append((frozenset(statuses), future))
        return await future
