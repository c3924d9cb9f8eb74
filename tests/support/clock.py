"""A wall clock a test sets by hand, for code that takes ``clock: Callable[[], float]``.

``RelayServer(config, clock=...)`` (token checks and a listener's token expiry),
``TokenProvider.shared_access_key(..., clock=...)`` and the SOAP security hooks read
the time through such a parameter; a :class:`ManualClock` there lets a test put that
time anywhere (a token 100 ms from its expiry) without waiting for real seconds.
"""

from __future__ import annotations

__all__ = ["T0", "ManualClock"]

#: A fixed moment to sign tokens at (``create_token(..., now=T0)``): 2023-11-14 22:13:20 UTC.
T0 = 1_700_000_000.0


class ManualClock:
    """Reads ``now`` until the test moves it; raises ``failure`` while one is set.

    Args:
        now: the time it reads, in seconds since the epoch.
    """

    def __init__(self, now: float = T0) -> None:
        self.now = now
        #: While set, reading the clock raises it: a fault injected into the code under test.
        self.failure: BaseException | None = None

    def __call__(self) -> float:
        if self.failure is not None:
            raise self.failure
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
