"""Routing decisions: which entity, which listener, which rendezvous. No I/O.

The server shell asks these objects and acts on the answers; they never touch a
socket, so every rule here (longest-prefix entity match, listener quota, random
choice, single-use expiring rendezvous ids, the reconnect-flood limiter) is
tested with plain values, an injected clock and injected randomness.
"""

from __future__ import annotations

import base64
import random
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterator
from typing import Generic, TypeVar

from relay.exceptions import (
    BadRequest,
    ListenerQuotaExceeded,
    NoListener,
    RendezvousRejected,
)
from relay.namespace import MAX_PATH_LENGTH, EntityConfig, NamespaceConfig

__all__ = [
    "EntityRegistry",
    "EntityState",
    "FailureLimiter",
    "RendezvousTable",
    "normalize_path",
]

L = TypeVar("L")
V = TypeVar("V")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~!'()*+,;=:@%-]+$")


def normalize_path(path: str) -> str:
    """``/payroll/`` -> ``payroll``; raises ``BadRequest`` for empty or unsafe paths."""
    stripped = path.strip("/")
    if len(stripped) > MAX_PATH_LENGTH:
        raise BadRequest(f"entity path is longer than {MAX_PATH_LENGTH} characters")
    segments = stripped.split("/")
    if not stripped or any(s in ("", ".", "..") or not _PATH_SEGMENT.match(s) for s in segments):
        raise BadRequest(f"malformed entity path {path!r}")
    return stripped


class EntityState(Generic[L]):
    """An entity and the listeners connected to it right now.

    Compared by value, as the dataclass it was (mypyc compiles no generic dataclass).
    """

    def __init__(self, config: EntityConfig, listeners: list[L] | None = None) -> None:
        self.config = config
        self.listeners: list[L] = [] if listeners is None else listeners

    def __repr__(self) -> str:
        return f"EntityState(config={self.config!r}, listeners={self.listeners!r})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, EntityState)
        return (self.config, self.listeners) == (other.config, other.listeners)

    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value

    @property
    def path(self) -> str:
        return self.config.path

    def quota_exceeded(self) -> ListenerQuotaExceeded | None:
        """Why one more listener is refused (``max_listeners`` reached), or ``None``."""
        limit = self.config.max_listeners
        if len(self.listeners) < limit:
            return None
        return ListenerQuotaExceeded(
            f"listener quota exceeded: entity {self.path!r} allows at most {limit} listeners"
        )

    def add(self, listener: L) -> None:
        """Register a listener, refusing the one past ``max_listeners``."""
        error = self.quota_exceeded()
        if error is not None:
            raise error
        self.listeners.append(listener)

    def remove(self, listener: L) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def choose(
        self, rng: random.Random, avoid: Callable[[L], bool] | None = None,
        exclude: Collection[L] = (),
    ) -> L:
        """One listener at random, never one in ``exclude``, and one for which ``avoid``
        is true only when there is no other; raises ``NoListener`` when none is left."""
        listeners = self.listeners
        if exclude:
            listeners = [lst for lst in listeners if lst not in exclude]
        if not listeners:
            raise NoListener("No service is hosted at the specified address.")
        choice = _pick(listeners, rng)
        if avoid is not None and avoid(choice):
            healthy = [lst for lst in listeners if not avoid(lst)]
            if healthy:
                choice = _pick(healthy, rng)
        return choice


def _pick(listeners: list[L], rng: random.Random) -> L:
    """One of ``listeners`` (not empty) at random; the only one without a draw.

    ``random.randrange`` is two Python calls per relayed request; an entity with one
    listener (the common case) has no choice to make, so it draws nothing.
    """
    if len(listeners) == 1:
        return listeners[0]
    return listeners[rng.randrange(len(listeners))]


class EntityRegistry(Generic[L]):
    """Configured and dynamic entities, found by longest path prefix."""

    def __init__(self, config: NamespaceConfig) -> None:
        self._config = config
        self._entities: dict[str, EntityState[L]] = {
            e.path: EntityState(e) for e in config.entities
        }
        #: Asked when no entity here matches (a cluster: dynamic entities of other nodes).
        self.fallback: Callable[[str], tuple[EntityState[L], str] | None] | None = None

    def __iter__(self) -> Iterator[EntityState[L]]:
        return iter(list(self._entities.values()))

    def get(self, path: str) -> EntityState[L] | None:
        return self._entities.get(path)

    def resolve(self, path: str) -> tuple[EntityState[L], str] | None:
        """The entity whose path is the longest ``/``-bounded prefix of ``path``, and the rest."""
        stripped = path.strip("/")
        state = self._entities.get(stripped)  # the whole path: the common case, no split
        if state is not None:
            return state, ""
        segments = stripped.split("/")
        for end in range(len(segments), 0, -1):
            state = self._entities.get("/".join(segments[:end]))
            if state is not None:
                return state, "/".join(segments[end:])
        return self.fallback(path) if self.fallback is not None else None

    def create_dynamic(self, config: EntityConfig) -> EntityState[L]:
        """The entity ``config`` describes, made on a Manage listener's connect (the one
        already there if another listener made it first); gone when its last listener
        leaves."""
        state = self._entities.get(config.path)
        if state is None:
            state = self._entities[config.path] = EntityState(config)
        return state

    def release(self, state: EntityState[L]) -> None:
        """Drop a dynamic entity that has no listener left."""
        if state.config.dynamic and not state.listeners:
            self._entities.pop(state.path, None)


class RandomIds:
    """Unguessable ids: 192 bits from ``secrets`` each, URL-safe base64 (32 characters).

    The bits come from one ``os.urandom`` call per 256 ids rather than one each, and
    are encoded in one go (24 bytes are exactly 32 characters, so each id is a slice
    of the batch's encoding): every relayed request needs an id, an event one per
    subscriber, and on a VM the syscall costs more than the rest.
    """

    _BYTES = 24
    _BATCH = 256
    _CHARS = 32  # _BYTES in base64: 4 characters per 3 bytes

    def __init__(self) -> None:
        self._pool, self._at = "", 0

    def __call__(self) -> str:
        if self._at >= len(self._pool):
            self._pool = base64.urlsafe_b64encode(secrets.token_bytes(self._BYTES * self._BATCH)).decode()
            self._at = 0
        start = self._at
        self._at = start + self._CHARS
        return self._pool[start : self._at]


#: Seconds between sweeps of expired rendezvous ids (``take`` checks expiry itself).
_SWEEP_EVERY = 1.0


class RendezvousTable(Generic[V]):
    """Single-use, expiring, unguessable ids for rendezvous and accept addresses.

    PROTOCOL.md §1: ids carry >= 128 bits from ``secrets``, are valid for one use
    and about 30 s, and are answered 403 when expired or reused, 400 when malformed.
    """

    def __init__(
        self,
        ttl: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self._ttl, self._clock = ttl, clock
        self._new_id = id_factory or RandomIds()
        #: id -> (value, expiry): a tuple, not an object, as one is made per relayed request.
        self._slots: dict[str, tuple[V, float]] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._slots)

    def issue(self, value: V, ttl: float | None = None) -> str:
        """Store ``value`` under a fresh id and return the id."""
        ident = self.new_id()
        self.put(ident, value, ttl)
        return ident

    def new_id(self) -> str:
        """A fresh id, for values that must embed their own id before they are stored."""
        return self._new_id()

    def put(self, ident: str, value: V, ttl: float | None = None) -> None:
        """Store ``value`` under ``ident`` for ``ttl`` seconds (default: the table's).

        A longer ``ttl`` serves the rendezvous of an inline request, which must stay
        valid as long as the request may still be answered: hyco-https opens it only
        when its response outgrows 64 KiB.
        """
        now = self._clock()
        if now >= self._next_sweep:  # at most once a second: a sweep per put is O(n^2) in a burst
            self._next_sweep = now + _SWEEP_EVERY
            self.expire()
        self._slots[ident] = (value, now + (self._ttl if ttl is None else ttl))

    def put_many(self, items: list[tuple[str, V]], ttl: float | None = None) -> None:
        """:meth:`put` for each ``(ident, value)`` of ``items`` (an event's subscribers)."""
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY
            self.expire()
        expires, slots = now + (self._ttl if ttl is None else ttl), self._slots
        for ident, value in items:
            slots[ident] = (value, expires)

    def take(self, ident: str | None) -> V:
        """The value for ``ident``, removing it; raises ``BadRequest``/``RendezvousRejected``."""
        if not ident or len(ident) > 128 or not _PATH_SEGMENT.match(ident):
            raise BadRequest("malformed rendezvous id")
        slot = self._slots.pop(ident, None)
        if slot is None:
            raise RendezvousRejected("rendezvous id is unknown, expired or already used")
        value, expires = slot
        if expires <= self._clock():
            raise RendezvousRejected("rendezvous id has expired")
        return value

    def discard(self, ident: str) -> None:
        self._slots.pop(ident, None)

    def expire(self) -> None:
        now = self._clock()
        for ident in [i for i, (_, expires) in self._slots.items() if expires <= now]:
            del self._slots[ident]


class FailureLimiter:
    """A token bucket per client key that only failed handshakes drain.

    hyco-ws 1.0.5 retries a refused listener about 1000 times a second; once a
    client has burnt its bucket the relay answers 429 without verifying anything,
    and other clients are not affected.  At most ``max_clients`` buckets are kept:
    the least recently failed are forgotten first (a forgotten client starts full).
    """

    def __init__(
        self,
        burst: float = 20,
        per_second: float = 5,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst, self._rate, self._clock = burst, per_second, clock
        self._max = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # oldest failure first

    def __len__(self) -> int:
        return len(self._buckets)

    def allowed(self, client: str) -> bool:
        return self._level(client) >= 1

    def record_failure(self, client: str) -> None:
        level = self._level(client)
        self._buckets.pop(client, None)  # re-inserted last: most recent failure
        self._buckets[client] = (max(level - 1, 0.0), self._clock())
        while len(self._buckets) > self._max:
            del self._buckets[next(iter(self._buckets))]

    def _level(self, client: str) -> float:
        level, since = self._buckets.get(client, (self._burst, self._clock()))
        return min(self._burst, level + (self._clock() - since) * self._rate)
