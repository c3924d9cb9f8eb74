"""One relay node of a cluster: the NATS subscriptions, heartbeats and asks.

Made by ``relay.server.RelayServer`` when the namespace has a ``[cluster]``
table, and set as ``RelayState.cluster`` (the seam, ``relay.cluster.seam``).

- A listener online here: this node subscribes to the entity's connect subject
  (queue group) and event subject, before the listener's ``101`` goes out; the
  last one gone: it unsubscribes.  A dead node's subscriptions die with its NATS
  connection, so routing never waits for a registry to expire.
- A sender here with no listener here: :meth:`ClusterNode.remote` stands in for
  the listener (``relay.cluster.remote``); NATS's "no responders" is the
  immediate "no listener" answer.
- Every :data:`~relay.cluster.peers.HEARTBEAT_EVERY` seconds (and at once when
  its listeners change) the node tells the others its URL and listener counts:
  the quota, the discovery feed, dynamic entities and events use them.
- With direct links on (``relay.cluster.direct``, the default), an ask goes
  straight to a node the heartbeats name as holding listeners, over a link on its
  HTTP port; NATS stays the fallback and the routing authority.
- A graceful stop (:meth:`ClusterNode.draining`, then :meth:`ClusterNode.stop`):
  the asks this node took count as calls in flight, so the relay's drain waits
  for their answers, which go back the way the asks came; meanwhile its heartbeat
  names no listeners and it has no NATS interest, so new asks go to other nodes.
- Malformed or foreign messages are dropped with one WARNING line per 10 s.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from hc.entities import Discovery
from hc.messages import RequestCommand
from relay.cluster.asking import ASK_TIMEOUT, NO_SERVICE, Asking, Deadlines, Outcome
from relay.cluster.config import ClusterConfig
from relay.cluster.console import ConsoleParts
from relay.cluster.direct import DirectLinks, InboundLink, PeerLink
from relay.cluster.link import Link, LinkDown, LinkState, Msg, Subscription
from relay.cluster.messages import (
    Answer,
    AnswerStatus,
    Ask,
    AskKind,
    EntityFact,
    Heartbeat,
    MessageError,
    parse_answer,
    parse_ask,
    parse_heartbeat,
)
from relay.cluster.peers import HEARTBEAT_EVERY, PeerTable
from relay.cluster.remote import RemoteListener
from relay.cluster.seam import EventParts
from relay.cluster.serve import serve_ask, serve_at_once
from relay.cluster.snapshots import PartKind
from relay.cluster.subjects import QUEUE_GROUP, Subjects
from relay.drain import GateState
from relay.exceptions import EntityNotFound, ListenerQuotaExceeded, NoListener, ShuttingDown
from relay.listeners import ListenerConnection
from relay.namespace import EntityConfig
from relay.routing import EntityState
from relay.state import RelayState

__all__ = ["ASK_TIMEOUT", "ClusterNode"]

log = logging.getLogger("relay.cluster")
_event_ids = itertools.count(1)
#: Seconds a listener's handshake waits for the other nodes' counts (the quota).
CENSUS_WAIT = 0.5
#: Most asks of other nodes served at once (each may hold a listener's answer for the
#: entity's timeout); past it an ask is dropped and logged, and its node times out.
MAX_SERVING = 10_000
#: Seconds between WARNING lines about dropped cluster messages.
_DROP_LOG_EVERY = 10.0


class ClusterNode:
    """This node's part in the cluster of ``relay``'s namespace."""

    def __init__(self, relay: RelayState, config: ClusterConfig) -> None:
        self.relay, self.config, self.route = relay, config, config.small_requests
        self.name = config.name
        #: This process's name in request ids: the node's name and a random suffix, so a
        #: restarted node (or two misconfigured with one name) never reuses another's ids.
        self.ident = f"{self.name}-{secrets.token_hex(4)}"
        self.subjects = Subjects(relay.config.name)
        self.peers = PeerTable(self.name)
        #: Direct links to and from the other nodes (None: asks go over NATS only).
        self.direct = DirectLinks(self.name, self.peers, relay.rng) if config.direct else None
        self.link = Link(config, self._link_changed)
        #: The deadlines of this node's asks in flight (one timer for all of them).
        self.deadlines = Deadlines(self.link.loop)
        self.console = ConsoleParts(relay, self.link, self.subjects, self.name, self.peers, self._drop)
        relay.observer.name_node(self.name)  # the metrics' and events' node label
        self._subs: dict[str, list[Subscription]] = {}
        self._nodes_sub: Subscription | None = None
        self._remotes: dict[str, RemoteListener] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._lock = asyncio.Lock()
        self._beat: asyncio.TimerHandle | None = None
        self._dropped, self._dropped_logged = 0, 0.0
        #: Other nodes' asks being served now, and the most at once (more are dropped).
        self.serving, self.max_serving = 0, MAX_SERVING

    # -- life ------------------------------------------------------------------------

    async def start(self) -> None:
        self.relay.registry.fallback = self._resolve
        await self.link.start()
        self._schedule_beat(0)

    @property
    def _draining(self) -> bool:
        """The relay takes no new work (its call gate is draining or closed)."""
        return self.relay.calls.state is not GateState.OPEN

    def draining(self) -> None:
        """The relay begins a graceful stop (its call gate closes to new work now):
        other nodes stop choosing this one (no NATS interest in its entities, a heartbeat
        naming no listeners here) while the asks it took finish; an ask arriving all the
        same is answered "no listener here", which its node takes to another one."""
        for path in list(self._subs):
            for sub in self._subs.pop(path):
                sub.unsubscribe()
        self._schedule_beat(0)

    def drained(self) -> None:
        """The relay's drain is over: the direct links close now (other nodes' links
        are requests on the HTTP server, which waits for its requests as it stops)."""
        if self.direct is not None:
            self.direct.close()

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        try:
            self.link.publish(self.subjects.nodes, self._heartbeat(leaving=True).serialize())
        except LinkDown:
            pass
        for task in list(self._tasks):
            task.cancel()
        if self.direct is not None:
            self.direct.close()
        await self.link.close()

    def _link_changed(self, state: LinkState) -> None:
        if state is LinkState.CONNECTED:
            self._spawn(self._resync())

    async def _resync(self) -> None:
        """(Re)joined: subscribe what was never subscribed, tell the others at once."""
        if self._nodes_sub is None:
            self._nodes_sub = self.link.subscribe(self.subjects.nodes, self._on_heartbeat)
        self.console.subscribe()
        for state in self.relay.registry:
            await self._reconcile(state.path)
        self._schedule_beat(0)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, LinkDown):
                log.error("cluster: task failed", exc_info=exc)

    # -- subscriptions ---------------------------------------------------------------

    async def _reconcile(self, path: str) -> None:
        """Subscribed to ``path``'s subjects exactly while a listener is on it here."""
        async with self._lock:
            state = self.relay.registry.get(path)
            wanted = state is not None and bool(state.listeners) and not self._draining
            subs = self._subs.get(path)
            if wanted and subs is None:
                self._subs[path] = [
                    self.link.subscribe(self.subjects.connect(path), self._on_ask, QUEUE_GROUP),
                    self.link.subscribe(self.subjects.event(path), self._on_ask),
                ]
            elif not wanted and subs is not None:
                del self._subs[path]
                for sub in subs:
                    sub.unsubscribe()

    async def listener_added(self, state: EntityState[ListenerConnection]) -> None:
        if state.path not in self._subs:
            try:
                await asyncio.wait_for(self._reconcile(state.path), 2.0)
            except (TimeoutError, LinkDown) as exc:
                log.info("cluster: %s not routed here yet: %s", state.path, exc or "timeout")
        self._schedule_beat(0)

    def listener_removed(self, state: EntityState[ListenerConnection]) -> None:
        if not state.listeners:
            self._spawn(self._reconcile(state.path))
        self._schedule_beat(0)

    # -- asks from other nodes -------------------------------------------------------

    def _on_ask(self, msg: Msg) -> None:
        try:
            ask = parse_ask(msg.data, self.relay.config.name)
            if msg.subject not in (self.subjects.connect(ask.path), self.subjects.event(ask.path)):
                raise MessageError("its entity is not its subject's")
        except MessageError as exc:
            self._drop(msg.subject, exc)
            return
        self._take(ask, msg.subject, lambda payload: self.link.answer_now(msg, payload))

    def _on_direct(self, inbound: InboundLink, number: int, data: bytes) -> None:
        """An ask over another node's direct link: served as one from NATS."""
        where = f"the direct link from {inbound.node}"
        try:
            ask = parse_ask(data, self.relay.config.name)
        except MessageError as exc:
            self._drop(where, exc)
            return
        self._take(ask, where, lambda payload: inbound.answer(number, payload))

    def _take(self, ask: Ask, where: str, reply: Callable[[bytes], None]) -> None:
        """Serve ``ask``; ``reply`` sends each answer back the way it came.  Until it is
        served it counts as a call in flight here (a graceful stop waits for it)."""
        if self.serving >= self.max_serving:
            self._drop(where, f"{self.serving} asks in hand already", "an ask")
            return
        try:
            self.relay.calls.enter()
        except ShuttingDown:  # stopping: the asking node takes it to another node
            status = AnswerStatus.COUNTED if ask.kind is AskKind.CENSUS else AnswerStatus.NO_LISTENER
            reply(Answer(status, self.name).serialize())  # (counted: none here)
            return
        self.serving += 1
        if not serve_at_once(self.relay, ask, self.name, lambda answer: self._served(reply, answer),
                             lambda: self._posted(reply)):
            self._spawn(self._serve(reply, ask))

    async def _serve(self, reply: Callable[[bytes], None], ask: Ask) -> None:
        try:
            answer = await serve_ask(self.relay, ask, self.name, lambda: self._posted(reply))
        except BaseException:
            self.serving -= 1
            self.relay.calls.leave()
            raise
        self._served(reply, answer)

    def _served(self, reply: Callable[[bytes], None], answer: Answer | None) -> None:
        self.serving -= 1
        self.relay.calls.leave()
        if answer is not None:
            reply(answer.serialize())

    def _posted(self, reply: Callable[[bytes], None]) -> None:
        """A whole request is on a listener's channel here: the asking node watches us."""
        reply(Answer(AnswerStatus.POSTED, self.name).serialize())

    def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = parse_heartbeat(msg.data, self.relay.config.name)
        except MessageError as exc:
            self._drop(msg.subject, exc)
            return
        if beat.node == self.name and beat.url != self.config.node_url:
            self._drop(msg.subject, f"{beat.url} says it is {beat.node} too",
                       "a heartbeat under this node's own name (node names must be unique)")
        self.peers.heard(beat)
        if beat.leaving:
            self.console.forget(beat.node)
        if self.direct is not None:
            self.direct.prune()

    def _drop(self, subject: str, why: object, what: str = "a malformed or foreign message") -> None:
        """Drop a message: one WARNING per :data:`_DROP_LOG_EVERY` seconds, with the count."""
        self._dropped += 1
        now = time.monotonic()
        if now - self._dropped_logged >= _DROP_LOG_EVERY:
            log.warning("cluster: dropped %s on %s: %s (%d dropped so far)",
                        what, subject[:128], why, self._dropped)
            self._dropped_logged = now

    # -- heartbeats ------------------------------------------------------------------

    def _schedule_beat(self, delay: float = HEARTBEAT_EVERY) -> None:
        if self._beat is not None:
            self._beat.cancel()
        loop = asyncio.get_running_loop()
        self._beat = loop.call_later(delay, lambda: self._spawn(self._send_beat()))

    async def _send_beat(self) -> None:
        self._schedule_beat()
        try:
            self.link.publish(self.subjects.nodes, self._heartbeat().serialize())
        except LinkDown:
            pass

    def _heartbeat(self, *, leaving: bool = False) -> Heartbeat:
        facts = () if leaving or self._draining else tuple(
            EntityFact.of(s.config, len(s.listeners)) for s in self.relay.registry if s.listeners)
        ticket = self.direct.ticket if self.direct is not None and not leaving else ""
        return Heartbeat(self.relay.config.name, self.name, self.config.node_url, facts, leaving, ticket)

    # -- the seam (relay.cluster.seam.ClusterSeam) -----------------------------------

    def remote(self, state: EntityState[ListenerConnection]) -> ListenerConnection:
        if self.link.state is not LinkState.CONNECTED:
            raise NoListener(f"{NO_SERVICE} (no listener on this node; the cluster is unreachable)")
        remote = self._remotes.get(state.path)
        if remote is None or remote.timeout != state.config.timeout:
            remote = RemoteListener(state.path, self.ident, self.relay.config.name, self.start_ask, self.ask,
                                    self.route, state.config.timeout)
            self._remotes[state.path] = remote
        return remote

    def start_ask(self, ask: Ask, done: Callable[[Outcome], None]) -> Asking:
        """Ask a node holding listeners over a direct link, else the node NATS picks,
        with no task (``relay.cluster.asking``); the outcome goes to ``done``.  Raises
        NoListener at once when NATS is unreachable (and no link is open)."""
        direct: PeerLink | None = self.direct.choose(ask.path) if self.direct is not None else None
        asking = Asking(self.link, self.subjects.connect(ask.path), ask, done, self._alive, self._drop,
                        self.deadlines, direct)
        asking.start()
        return asking

    async def ask(self, ask: Ask) -> Answer:
        """:meth:`start_ask`, awaited: the answer, or the RelayError it failed with."""
        outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        asking = self.start_ask(ask, outcome.set_result)
        try:
            result = await outcome
        finally:
            asking.cancel()
        if isinstance(result, Answer):
            return result
        raise result

    async def serve_link(self, request: web.BaseRequest) -> web.StreamResponse:
        """Another node's direct link (``relay.cluster.direct``), until it closes."""
        if self.direct is None:
            raise EntityNotFound("this node takes no direct links")
        return await self.direct.accept(request, self._on_direct)

    def _alive(self, node: str) -> bool:
        return any(peer.name == node for peer in self.peers)

    async def scatter_event(
        self, state: EntityState[ListenerConnection], parts: EventParts, body: bytes
    ) -> int:
        request = parts.request
        command = RequestCommand(
            address=self._dummy_address(state.path), id=f"e{next(_event_ids)}",
            request_target=parts.target, method=request.method, request_headers=parts.headers,
            body=bool(body), remote_endpoint=request.remote,
        )
        timeout = state.config.timeout
        ask = Ask(AskKind.EVENT, self.relay.config.name, state.path, self.ident, timeout, command, body)
        return sum((await self._gather(ask, timeout + 1)).values())

    async def check_quota(self, path: str, local: int, limit: int) -> None:
        """A census of the nodes holding ``path`` (a dead one's subscription is gone with
        it, so its listeners no longer count, unlike its last heartbeat's)."""
        command = RequestCommand(address=self._dummy_address(path), id="census")
        ask = Ask(AskKind.CENSUS, self.relay.config.name, path, self.ident, CENSUS_WAIT, command)
        elsewhere = sum((await self._gather(ask, CENSUS_WAIT)).values())
        if local + elsewhere >= limit:
            raise ListenerQuotaExceeded(
                f"listener quota exceeded: entity {path!r} allows at most {limit} listeners"
            )

    def _dummy_address(self, path: str) -> str:
        """The address an event or census ask carries (each node makes its own)."""
        origin = self.relay.rendezvous_origin or "ws://127.0.0.1"
        return f"{origin}/$hc/{path}?sb-hc-action=request&sb-hc-id=scatter"

    async def _gather(self, ask: Ask, timeout: float) -> dict[str, int]:
        """Scatter ``ask`` to every node with a listener on its path; each one's count.

        Waits for the nodes the heartbeats name (until one is forgotten, or ``timeout``);
        none named, or NATS down: nobody is asked.
        """
        holders = set(self.peers.holders(ask.path))
        if not holders or self.link.state is not LinkState.CONNECTED:
            return {}
        subject = self.subjects.event(ask.path)
        counts: dict[str, int] = {}

        def take(data: bytes) -> None:
            try:
                answer = parse_answer(data)
            except MessageError as exc:
                self._drop(subject, exc)
                return
            counts[answer.node] = answer.count

        def done() -> bool:
            return holders.intersection(self.peers.holders(ask.path)) <= counts.keys()

        try:
            await self.link.gather(subject, ask.serialize(), timeout, take, done)
        except LinkDown:
            pass
        return counts

    def _resolve(self, path: str) -> tuple[EntityState[ListenerConnection], str] | None:
        """A dynamic entity made on another node (``relay.routing.EntityRegistry.fallback``)."""
        found = self.peers.dynamic_entity(path)
        return None if found is None else (EntityState(found[0]), found[1])

    def feed(self) -> list[EntityConfig]:
        facts = self.peers.facts().values()
        return [f.config() for f in facts if f.listeners and f.discovery is Discovery.PUBLIC]

    async def console_parts(
        self, kind: str, after: Mapping[str, int] | None = None
    ) -> dict[str, dict[str, Any] | None]:
        return await self.console.gather(PartKind(kind), after)

    async def console_call(self, node: str, seq: int) -> tuple[bool, dict[str, Any] | None]:
        return await self.console.call(node, seq)

    def health(self) -> dict[str, Any]:
        counts = {path: fact.listeners for path, fact in self.peers.facts().items()}
        here = {s.path: len(s.listeners) for s in self.relay.registry if s.listeners}
        for path, count in here.items():
            counts[path] = counts.get(path, 0) + count
        return {
            "node": self.name, "url": self.config.node_url, "cluster": self.link.state.value,
            "peers": sorted(p.name for p in self.peers), "listeners": counts, "here": here,
            "direct": self._direct_health(),
        }

    def _direct_health(self) -> dict[str, Any] | None:
        """The direct links (never the ticket): open ones, asks sent, fallbacks to NATS."""
        direct = self.direct
        if direct is None:
            return None
        return {"links": direct.open_links(), "inbound": len(direct.inbound), "asks": direct.sent,
                "fell_back": direct.fell_back}

