"""The relay's counters per entity: plain integers, summed on the hot path. No I/O.

Every relayed call adds to a few integers of its entity's :class:`EntityStats`
(no lock, no label look-up: the relay serves on one event loop); a scrape of
``/$metrics`` reads them (``relay.observe.exposition``) and the console's charts
read the 15-minute :class:`Timeline`.  Label values that come from outside (SOAP
operations, fault codes) are bounded per entity: past :data:`MAX_LABELS` they
count as ``(other)``.
"""

from __future__ import annotations

from bisect import bisect_left

from relay.observe.names import Outcome

__all__ = ["BUCKETS", "MAX_LABELS", "EntityStats", "Histogram", "Timeline"]

#: Upper bounds (seconds) of the time histograms' buckets.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0, 30.0, 60.0)
#: Distinct operations (and fault codes) counted per entity before ``(other)``.
MAX_LABELS = 64
OTHER = "(other)"
#: The console's charts: 90 slots of 10 s, 15 minutes.
SLOT_SECONDS = 10
SLOTS = 90


class Histogram:
    """Counts per bucket (not cumulative: that is done when scraped) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus' buckets: ``(le, count of observations <= le)``, ``+Inf`` last."""
        out, running = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


class Timeline:
    """Calls and errors per 10 s slot over the last 15 minutes (a ring of slots)."""

    __slots__ = ("calls", "errors", "slot_of")

    def __init__(self) -> None:
        self.calls = [0] * SLOTS
        self.errors = [0] * SLOTS
        self.slot_of = [-1] * SLOTS

    def add(self, now: float, error: bool) -> None:
        slot = int(now) // SLOT_SECONDS
        at = slot % SLOTS
        if self.slot_of[at] != slot:
            self.slot_of[at], self.calls[at], self.errors[at] = slot, 0, 0
        self.calls[at] += 1
        if error:
            self.errors[at] += 1

    def series(self, now: float) -> list[tuple[int, int, int]]:
        """``(slot start, calls, errors)`` for the 90 slots up to ``now``, oldest first."""
        last = int(now) // SLOT_SECONDS
        out = []
        for slot in range(last - SLOTS + 1, last + 1):
            at = slot % SLOTS
            live = self.slot_of[at] == slot
            out.append((slot * SLOT_SECONDS, self.calls[at] if live else 0,
                        self.errors[at] if live else 0))
        return out


class EntityStats:
    """Everything counted for one entity (Azure's ``EntityName`` dimension)."""

    __slots__ = (
        "bytes",
        "event_deliveries",
        "faults",
        "in_flight",
        "inline",
        "listener_disconnects",
        "listener_outcomes",
        "listener_time",
        "name",
        "operations",
        "relay_time",
        "rendezvous",
        "sender_disconnects",
        "sender_outcomes",
        "timeline",
        "ws_senders",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        #: Sender requests and connections, listener handshakes: by :class:`Outcome`.
        self.sender_outcomes = [0, 0, 0]
        self.listener_outcomes = [0, 0, 0]
        self.listener_disconnects = 0
        self.sender_disconnects = 0
        self.bytes = 0
        self.inline = 0
        self.rendezvous = 0
        self.event_deliveries = 0
        self.ws_senders = 0
        self.in_flight = 0
        self.relay_time = Histogram()
        self.listener_time = Histogram()
        self.operations: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.timeline = Timeline()

    def sender(self, outcome: Outcome) -> None:
        self.sender_outcomes[outcome] += 1

    def listener(self, outcome: Outcome) -> None:
        self.listener_outcomes[outcome] += 1

    def operation(self, name: str) -> None:
        _bump(self.operations, name)

    def fault(self, code: str) -> None:
        _bump(self.faults, code)


def _bump(counts: dict[str, int], label: str) -> None:
    if label in counts:
        counts[label] += 1
    elif len(counts) < MAX_LABELS:
        counts[label] = 1
    else:
        counts[OTHER] = counts.get(OTHER, 0) + 1
