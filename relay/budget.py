"""A bound on the bytes the relay holds for one purpose across all connections. No I/O.

A sender's SOAP body of up to 1 MiB is read whole before any token was checked,
to look for a ``RelayAccessToken`` header in it (``relay.http_senders``).  Each
such body is bounded, but many senders at once could still make the relay hold
a gigabyte for nobody it has authenticated.  Those reads therefore draw from one
:class:`ByteBudget`; when it is spent, the body is not read for a token (it
streams to the listener as any other body, and a sender that needs the SOAP
header token gets a 401 that says why: the HTTP header works at any time).
"""

from __future__ import annotations

__all__ = ["ByteBudget", "Reservation"]


class ByteBudget:
    """At most ``limit`` bytes reserved at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def reserve(self, size: int) -> bool:
        """Reserve ``size`` bytes if they fit; ``False`` (and nothing reserved) if not."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used -= size


class Reservation:
    """What one call reserved from a budget, released once when the call ends."""

    __slots__ = ("_budget", "refused", "size")

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.size = 0
        #: True when the call asked for bytes the budget did not have.
        self.refused = False

    def take(self, size: int) -> bool:
        if self._budget.reserve(size):
            self.size += size
            return True
        self.refused = True
        return False

    def release(self) -> None:
        self._budget.release(self.size)
        self.size = 0
