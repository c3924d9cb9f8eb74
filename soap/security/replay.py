"""Replay caches: remember nonces and signatures until they can no longer be accepted.

A UsernameToken's ``Nonce`` and a signature's ``SignedInfo`` may be seen once.
Entries are kept until the moment the message they came from would be refused
as too old anyway (:meth:`~soap.security.timestamp.Freshness.remember_until`),
so the cache stays bounded by the traffic of one replay window.

The cache is injected (any :class:`ReplayCache`), so a farm of services can
share one; :class:`MemoryReplayCache` is the in-process default. It fails
closed: when full of live entries it refuses new ones rather than forgetting
entries an attacker could then replay.
"""

from __future__ import annotations

import heapq
import threading
from datetime import datetime
from typing import Protocol

__all__ = ["MemoryReplayCache", "ReplayCache"]


class ReplayCache(Protocol):
    """Where seen nonces and signatures are remembered."""

    def add(self, key: str, now: datetime, until: datetime) -> bool:
        """Remember ``key`` until ``until``.

        Args:
            key: What was seen (already namespaced by the caller, e.g. ``nonce:...``).
            now: The current time, to expire older entries.
            until: When the entry may be forgotten.

        Returns:
            True if the key was new; False if it is still remembered (a replay)
            or the cache cannot take it.
        """
        ...  # pragma: no cover - protocol


class MemoryReplayCache:
    """A thread-safe in-memory :class:`ReplayCache` with a size bound.

    Args:
        max_entries: Live entries kept at most; beyond that :meth:`add` refuses.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._until: dict[str, datetime] = {}
        self._expiry: list[tuple[datetime, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._until)

    def __repr__(self) -> str:
        return f"MemoryReplayCache({len(self)}/{self._max} entries)"

    def add(self, key: str, now: datetime, until: datetime) -> bool:
        """See :meth:`ReplayCache.add`."""
        with self._lock:
            self._expire(now)
            if key in self._until or len(self._until) >= self._max:
                return False
            self._until[key] = until
            heapq.heappush(self._expiry, (until, key))
            return True

    def _expire(self, now: datetime) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            until, key = heapq.heappop(self._expiry)
            if self._until.get(key) == until:
                del self._until[key]
