"""An in-memory Hybrid Connections control channel: a relay and a listener, no socket.

:class:`ControlPair` wires the two roles of ``hc.protocol.ControlChannel`` back to
back, in the style of h11's ``tests/helpers.py::ConnectionPair``: one side's
``data_to_send()`` is the other side's ``receive_data()``, optionally cut into chunks
at given offsets, and each move returns the events the receiving side saw.
``tests/hc/test_protocol.py`` tests every control-channel rule on it; the relay's and
the listener's shells, once on ``hc.protocol``, can be tested on it instead of on sockets.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from hc.events import Event
from hc.protocol import ControlChannel, Role

__all__ = ["MASK_KEY", "ControlPair", "deliver", "split"]

#: The listener's (client's) frame mask: fixed, so that the bytes it sends are known.
MASK_KEY = b"\x01\x02\x03\x04"


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@dataclass
class ControlPair:
    """A RELAY and a LISTENER machine wired back to back in memory."""

    relay: ControlChannel = field(default_factory=lambda: ControlChannel(Role.RELAY))
    listener: ControlChannel = field(
        default_factory=lambda: ControlChannel(Role.LISTENER, mask_key=lambda: MASK_KEY)
    )

    def to_listener(self, cuts: Sequence[int] = ()) -> list[Event]:
        """Deliver what the relay queued (cut at ``cuts``); the listener's new events."""
        return deliver(self.relay, self.listener, cuts)

    def to_relay(self, cuts: Sequence[int] = ()) -> list[Event]:
        """Deliver what the listener queued (cut at ``cuts``); the relay's new events."""
        return deliver(self.listener, self.relay, cuts)


def deliver(source: ControlChannel, target: ControlChannel, cuts: Sequence[int] = ()) -> list[Event]:
    """Feed ``target`` what ``source`` queued (cut at ``cuts``); the events ``target`` saw."""
    for chunk in split(b"".join(source.data_to_send()), cuts):
        target.receive_data(chunk)
    return target.events_received()
