"""WARNING lines about peers' mistakes, rate-limited: a peer's mistake is never a flood in the log.

At most ``limit`` lines per ``window`` seconds for the whole process; the first line of
the next window says how many were left out.  (The relay keeps the same rule in
``relay.client_errors``; the bindings may not import the relay.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["PeerLog", "peer_log"]


class PeerLog:
    """WARNING lines, at most ``limit`` per ``window`` seconds."""

    def __init__(self, logger: logging.Logger, *, limit: int = 10, window: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.limit, self.window, self.clock = logger, limit, window, clock
        self._start = -float("inf")
        self._written = 0
        self.suppressed = 0
        self._lock = threading.Lock()  # the sync client's loop and the host's share it

    def warning(self, message: str, *args: object) -> None:
        """Log ``message % args`` unless this window's lines are used up."""
        with self._lock:
            now = self.clock()
            if now - self._start >= self.window:
                if self.suppressed:
                    message += " (and %d similar lines suppressed in the last %g s)"
                    args = (*args, self.suppressed, self.window)
                self._start, self._written, self.suppressed = now, 0, 0
            if self._written >= self.limit:
                self.suppressed += 1
                return
            self._written += 1
        self.logger.warning(message, *args)


#: The NetTcp binding's own (logger ``bindings.nettcp``).
peer_log = PeerLog(logging.getLogger("bindings.nettcp"))
