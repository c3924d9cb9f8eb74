"""What the other nodes hold, as their heartbeats told it. No I/O; the clock is injected.

Routing never depends on this table (a connect ask goes to whoever is subscribed
on the entity's subject, and NATS forgets a dead node's subscriptions with its
connection); the table serves what needs numbers: the namespace-wide listener
quota, listener counts, the discovery feed, dynamic entities made on another
node, and how many nodes an event should hear from.  A node that stops beating
is forgotten after :data:`PEER_TTL` seconds; one that stops cleanly says so.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from relay.cluster.messages import EntityFact, Heartbeat
from relay.namespace import EntityConfig

__all__ = ["HEARTBEAT_EVERY", "MAX_PEERS", "PEER_TTL", "Peer", "PeerTable"]

#: Seconds between a node's heartbeats (and at once when its listeners change).
HEARTBEAT_EVERY = 1.0
#: Seconds after its last heartbeat a silent node is forgotten.
PEER_TTL = 3.5
#: Most nodes remembered (a flood of made-up names cannot grow the table further).
MAX_PEERS = 1024


@dataclass(frozen=True)
class Peer:
    """Another node: its name, rendezvous URL, entities, when it was last heard, and
    its direct links' ticket ("": it takes none; never shown)."""

    name: str
    url: str
    entities: dict[str, EntityFact]
    heard: float
    ticket: str = field(default="", repr=False)


class PeerTable:
    """The other nodes of the namespace, by name."""

    def __init__(self, own_name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.own_name, self._clock = own_name, clock
        self._peers: dict[str, Peer] = {}

    def __iter__(self) -> Iterator[Peer]:
        self._expire()
        return iter(list(self._peers.values()))

    def __len__(self) -> int:
        self._expire()
        return len(self._peers)

    def heard(self, beat: Heartbeat) -> bool:
        """Record ``beat``; False when it is our own, or the table is full of others."""
        if beat.node == self.own_name:
            return False
        if beat.leaving:
            self._peers.pop(beat.node, None)
            return True
        if beat.node not in self._peers and len(self._peers) >= MAX_PEERS:
            self._expire()
            if len(self._peers) >= MAX_PEERS:
                return False
        entities = {fact.path: fact for fact in beat.entities}
        self._peers[beat.node] = Peer(beat.node, beat.url, entities, self._clock(), beat.ticket)
        return True

    def forget(self, name: str) -> None:
        self._peers.pop(name, None)

    def listeners(self, path: str) -> int:
        """Listeners on ``path`` at the other nodes."""
        return sum(fact.listeners for fact in self._facts(path))

    def holders(self, path: str) -> list[str]:
        """Names of the other nodes with at least one listener on ``path``."""
        return [p.name for p in self if path in p.entities and p.entities[path].listeners]

    def pick(self, path: str, rng: random.Random) -> Peer | None:
        """One of the other nodes with listeners on ``path``, at random, weighted by how
        many each holds (the spread NATS's queue group and the listener choice give)."""
        holders = [p for p in self if p.entities.get(path) is not None and p.entities[path].listeners]
        if len(holders) <= 1:
            return holders[0] if holders else None
        return rng.choices(holders, [p.entities[path].listeners for p in holders])[0]

    def fact(self, path: str) -> EntityFact | None:
        """What another node says of ``path`` (for a dynamic entity this node lacks)."""
        return next(iter(self._facts(path)), None)

    def dynamic_entity(self, path: str) -> tuple[EntityConfig, str] | None:
        """The dynamic entity another node made whose path is the longest prefix of
        ``path``, and the rest of ``path``; None when there is none."""
        segments = path.strip("/").split("/")
        for end in range(len(segments), 0, -1):
            fact = self.fact("/".join(segments[:end]))
            if fact is not None and fact.dynamic:
                return fact.config(), "/".join(segments[end:])
        return None

    def facts(self) -> dict[str, EntityFact]:
        """One fact per path over all other nodes, listener counts summed."""
        merged: dict[str, EntityFact] = {}
        for peer in self:
            for path, fact in peer.entities.items():
                known = merged.get(path)
                count = fact.listeners + (known.listeners if known else 0)
                merged[path] = _with_count(fact, count)
        return merged

    def _facts(self, path: str) -> Iterator[EntityFact]:
        for peer in self:
            fact = peer.entities.get(path)
            if fact is not None and fact.listeners:
                yield fact

    def _expire(self) -> None:
        oldest = self._clock() - PEER_TTL
        for name in [n for n, p in self._peers.items() if p.heard < oldest]:
            del self._peers[name]


def _with_count(fact: EntityFact, count: int) -> EntityFact:
    return EntityFact(fact.path, count, fact.kind, fact.discovery, fact.dynamic,
                      fact.requires_client_authorization, fact.max_message_size, fact.timeout)
