"""The console across nodes: answer the others' asks with this node's part, gather theirs.

Every node subscribes to ``soaprelay.<ns>.console`` (no queue group: each one
answers).  The console API of the node an operator is signed in to
(``relay.observe.api``) asks through :meth:`ConsoleParts.gather`: a
scatter-gather that waits for the nodes the heartbeats name, at most
:data:`PART_WAIT` seconds; a node that does not answer in time (killed, cut
off, too slow) is *missing* in the answer, never an error and never a wait
past the deadline.  A node that answered once is remembered for
:data:`REMEMBER` seconds, so one that died and was forgotten by the heartbeats
still shows as missing; one that stopped cleanly is forgotten at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from relay.cluster.link import Link, LinkDown, LinkState, Msg, Subscription
from relay.cluster.messages import MessageError
from relay.cluster.peers import MAX_PEERS, PeerTable
from relay.cluster.snapshots import (
    PartAnswer,
    PartAsk,
    PartKind,
    parse_part_answer,
    parse_part_ask,
)
from relay.cluster.subjects import Subjects
from relay.observe.snapshot import call_part, calls_part, charts_part, namespace_part
from relay.state import RelayState

__all__ = ["PART_WAIT", "REMEMBER", "ConsoleParts"]

#: Seconds the console waits for the other nodes' parts.
PART_WAIT = 1.0
#: Seconds a node that answered once is still listed (as missing) when it no longer does.
REMEMBER = 600.0
Drop = Callable[[str, object], None]


class ConsoleParts:
    """This node's side of the console's scatter-gather."""

    def __init__(self, relay: RelayState, link: Link, subjects: Subjects, name: str,
                 peers: PeerTable, drop: Drop, clock: Callable[[], float] = time.monotonic) -> None:
        self.relay, self.link, self.name, self.peers = relay, link, name, peers
        self.subject = subjects.console
        self._drop, self._clock = drop, clock
        self._sub: Subscription | None = None
        #: Node name -> when it last answered or beat (monotonic).
        self.seen: dict[str, float] = {}

    def subscribe(self) -> None:
        if self._sub is None:
            self._sub = self.link.subscribe(self.subject, self._on_ask)

    def forget(self, node: str) -> None:
        """``node`` stopped cleanly: no longer listed."""
        self.seen.pop(node, None)

    # -- answering ------------------------------------------------------------------

    def _on_ask(self, msg: Msg) -> None:
        try:
            ask = parse_part_ask(msg.data, self.relay.config.name)
        except MessageError as exc:
            self._drop(msg.subject, exc)
            return
        if ask.origin == self.name or (ask.kind is PartKind.CALL and ask.node != self.name):
            return
        answer = PartAnswer(ask.namespace, ask.kind, self.name, self.part(ask))
        self.link.answer_now(msg, answer.serialize())

    def part(self, ask: PartAsk) -> dict[str, Any] | None:
        """This node's part of the view ``ask`` wants."""
        if ask.kind is PartKind.NAMESPACE:
            return namespace_part(self.relay)
        if ask.kind is PartKind.CHARTS:
            return charts_part(self.relay)
        if ask.kind is PartKind.CALLS:
            return calls_part(self.relay, ask.after.get(self.name, 0))
        return call_part(self.relay, ask.seq)

    # -- asking ---------------------------------------------------------------------

    async def gather(
        self, kind: PartKind, after: Mapping[str, int] | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """The other nodes' parts of view ``kind`` by node name; None: missing."""
        now = self._clock()
        for peer in self.peers:
            self._remember(peer.name, now)
        for name in [n for n, at in self.seen.items() if now - at > REMEMBER]:
            del self.seen[name]
        wanted = {p.name for p in self.peers}
        parts: dict[str, dict[str, Any] | None] = {}
        if wanted:
            await self._scatter(PartAsk(self.relay.config.name, kind, self.name, dict(after or {})),
                                wanted, parts)
        return {name: parts.get(name) for name in sorted((set(self.seen) | set(parts)) - {self.name})}

    async def call(self, node: str, seq: int) -> tuple[bool, dict[str, Any] | None]:
        """Whether ``node`` answered in time, and its call ``seq`` (None: no longer there)."""
        parts: dict[str, dict[str, Any] | None] = {}
        await self._scatter(PartAsk(self.relay.config.name, PartKind.CALL, self.name, {}, node, seq),
                            {node}, parts)
        return node in parts, parts.get(node)

    async def _scatter(self, ask: PartAsk, wanted: set[str],
                       parts: dict[str, dict[str, Any] | None]) -> None:
        def take(data: bytes) -> None:
            try:
                answer = parse_part_answer(data, ask.namespace, ask.kind)
            except MessageError as exc:
                self._drop(self.subject, exc)
                return
            if answer.node == self.name:
                self._drop(self.subject, "an answer under this node's own name")
                return
            parts[answer.node] = answer.part
            self._remember(answer.node, self._clock())

        if self.link.state is not LinkState.CONNECTED:
            return
        try:
            await self.link.gather(self.subject, ask.serialize(), PART_WAIT, take,
                                   lambda: wanted <= parts.keys())
        except LinkDown:
            pass

    def _remember(self, name: str, now: float) -> None:
        if name in self.seen or len(self.seen) < MAX_PEERS:
            self.seen[name] = now
