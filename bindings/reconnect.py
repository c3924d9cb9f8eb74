"""When a listener reconnects, and when it gives up. No I/O.

Capped exponential backoff with *full jitter* (the delay before retry ``n`` is
uniform in ``[0, min(cap, base * 2**n)]``), so that a thousand listeners
cut off by a relay restart do not all knock at the same instant.

Decisions::

    handshake refused 400/401/403/404 (incl. quota) -> give up (OFFLINE)
    handshake failed otherwise (refused, 5xx, TLS)  -> retry after backoff(n), n += 1
    closed 1008 after a stable connection           -> reconnect at once (fresh token)
    closed 1008 again within ``stable_after``       -> backoff (a loop of 1008s slows down)
    closed 1001 / 1011 / dropped                    -> backoff; n restarts at 0 when the
                                                       connection had been stable
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bindings.exceptions import HostError, ListenerQuotaExceeded, ListenerRejected

__all__ = ["POLICY_VIOLATION", "Backoff", "ReconnectPolicy", "rejection"]

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

    def connect_failed(self, error: HostError) -> float | None:
        """The handshake failed with ``error``: seconds to wait, or None to stop."""
        if isinstance(error, ListenerRejected) and error.permanent:
            return None
        return self._next()

    def disconnected(self, close_code: int | None, uptime: float) -> float:
        """An online connection ended after ``uptime`` seconds: seconds to wait."""
        if uptime >= self.stable_after:
            self.attempt = 0
            if close_code == POLICY_VIOLATION:
                return 0.0
        return self._next()


def rejection(status: int, reason: str, body: bytes) -> ListenerRejected:
    """The error for a refused handshake, from the relay's response.

    The relay's error body is ``{"error": {"code": ..., "message": ...}}``; a 403
    whose code, message or reason mentions the quota is :class:`ListenerQuotaExceeded`.
    """
    code, message = _error_fields(body)
    message = message or reason or "no reason given"
    if status == 403 and "quota" in f"{code} {message} {reason}".lower():
        return ListenerQuotaExceeded(status, code, message)
    return ListenerRejected(status, code, message)


def _error_fields(body: bytes) -> tuple[str, str]:
    try:
        error = json.loads(body[:65536]).get("error")
        code, message = error.get("code", ""), error.get("message", "")
    except (ValueError, AttributeError, TypeError, RecursionError):
        text = body[:300].decode("utf-8", "replace").strip()
        return "", text if text.isprintable() else ""
    return str(code)[:100], str(message)[:500]
