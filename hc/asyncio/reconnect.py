"""When a listener reconnects, and when it gives up. No I/O.

Capped exponential backoff with *full jitter* (the delay before retry ``n`` is
uniform in ``[0, min(cap, base * 2**n)]``), so that a thousand listeners cut
off by a relay restart do not all knock at the same instant.

Decisions::

    handshake refused 400/401/403/404 (incl. quota) -> give up (offline)
    handshake failed otherwise (refused, 5xx, TLS)  -> retry after backoff(n), n += 1
    closed 1008 after a stable connection           -> reconnect at once (fresh token)
    closed 1008 again within ``stable_after``       -> backoff (a loop of 1008s slows down)
    closed 1001 / 1011 / dropped                    -> backoff; n restarts at 0 when the
                                                       connection had been stable
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["POLICY_VIOLATION", "Backoff", "ReconnectPolicy"]

#: WebSocket close code 1008: token expired or protocol violation (PROTOCOL.md §3).
POLICY_VIOLATION = 1008


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter.

    Attributes:
        base: the cap of the first delay, in seconds.
        cap: the largest delay.
        rng: returns a float in [0, 1); inject for tests.
    """

    base: float = 0.5
    cap: float = 30.0
    rng: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0-based)."""
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 32))
        return self.rng() * ceiling


class ReconnectPolicy:
    """Counts failures and turns each outcome into a delay, or None to give up.

    Args:
        backoff: the delay schedule.
        stable_after: seconds a connection must last to count as stable.
    """

    def __init__(self, backoff: Backoff | None = None, *, stable_after: float = 5.0) -> None:
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self.attempt = 0

    def _next(self) -> float:
        delay = self.backoff.delay(self.attempt)
        self.attempt += 1
        return delay

    def connect_failed(self, error: Exception) -> float | None:
        """The handshake failed with ``error``: seconds to wait, or None to stop
        (when the error says it is ``permanent``: a refusal retrying cannot cure)."""
        if getattr(error, "permanent", False):
            return None
        return self._next()

    def disconnected(self, close_code: int | None, uptime: float) -> float:
        """An online connection ended after ``uptime`` seconds: seconds to wait."""
        if uptime >= self.stable_after:
            self.attempt = 0
            if close_code == POLICY_VIOLATION:
                return 0.0
        return self._next()
