"""The one object the relay's handlers tell what happened (``RelayState.observer``).

The handlers call a handful of plain methods with facts they already hold:

- :meth:`Observer.call` at the start of each HTTP sender's call, which returns
  the :class:`relay.observe.call.Call` that takes the call's notes, and whose
  ``finished`` hands them back to :meth:`Observer.finish`;
- :meth:`listener_registered`, :meth:`listener_unregistered`, :meth:`listener_refused`
  around a listener's control channel (``relay.listen``);
- :meth:`sender_connected`, :meth:`sender_disconnected`, :meth:`sender_refused`
  around a WebSocket sender (``relay.ws_senders``);
- :meth:`refused` at the error boundary, for the authorization events.

What they feed: the counters (``relay.observe.stats``), the inspector's ring
(``relay.observe.inspector``), and the diagnostic events (``relay.observe.events``).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

from hc.exceptions import HcError, MalformedToken, TokenRejected
from relay.accepts import ListenerRejected
from relay.error_body import new_tracking_id
from relay.exceptions import AccessDenied, AuthError, RelayError
from relay.observe.call import Call, CallNotes, Unobserved
from relay.observe.events import EventHub
from relay.observe.inspector import Inspector
from relay.observe.names import EventName, Outcome
from relay.observe.settings import ObserveSettings
from relay.observe.soapinfo import fault_of, operation_of
from relay.observe.stats import EntityStats
from relay.observe.webhooks import Webhooks
from relay.routing import EntityRegistry
from relay.sender_io import SenderReply, SenderRequest

if TYPE_CHECKING:  # prometheus_client is imported on the first scrape only
    from prometheus_client import CollectorRegistry

__all__ = ["ListenerInfo", "Observer", "status_of"]

#: Entities counted at most (dynamic ones come and go); past it they count as "(other)".
MAX_ENTITIES = 10_000
#: Distinct SOAPAction values whose operation is remembered.
_ACTIONS_CACHED = 1024
#: Why a listener left, as ``ListenerConnection.left_because`` says (``relay.listeners``).
_LEFT = {
    "token expired": EventName.LISTENER_CLOSING_FROM_EXPIRED_TOKEN,
    "unresponsive": EventName.LISTENER_UNRESPONSIVE,
}


@dataclass
class ListenerInfo:
    """A listener online, for the console."""

    id: str
    entity: str
    since: float
    remote: str
    agent: str

    def as_json(self) -> dict[str, Any]:
        """Its fields by name (a compiled build's instances have no ``__dict__`` for ``vars``)."""
        return {"id": self.id, "entity": self.entity, "since": self.since,
                "remote": self.remote, "agent": self.agent}


def status_of(error: BaseException) -> int:
    """The status the boundary (``relay.boundary``) answers ``error`` with."""
    if isinstance(error, RelayError):
        return error.status
    if isinstance(error, HcError) and error.status < 500:
        return error.status
    if isinstance(error, ConnectionError):
        return 502
    return 500


class Observer:
    """Counters, inspector and events of one relay."""

    def __init__(
        self, settings: ObserveSettings, registry: EntityRegistry[Any]
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.enabled = settings.enabled
        #: Wall clock of the calls' and listeners' times (not the relay's token clock,
        #: which tests move and break on purpose).
        self.clock = time.time
        self.stats: dict[str, EntityStats] = {}
        self.inspector = Inspector(settings)
        self.body_limit = settings.capture_body_limit
        self.webhooks = Webhooks(
            settings.webhooks, queue=settings.webhook_queue, tries=settings.webhook_tries,
            backoff=settings.webhook_backoff,
        ) if settings.webhooks else None
        #: The ``node`` label of metrics, events and the console's rows: ``[observe] node``,
        #: else the cluster's node name (:meth:`name_node`), else "" (a single relay).
        self.node = settings.node
        self.events = EventHub(settings.node, self.webhooks)
        self.listeners: dict[str, ListenerInfo] = {}
        #: SOAPAction header value -> its operation (a SOAPAction with a body-named
        #: operation, "", is looked up in the body each time: "" is not cached).
        self._actions: dict[str, str] = {}
        self.presence: deque[dict[str, Any]] = deque(maxlen=200)
        #: The Prometheus registry of this relay, made on the first scrape (``exposition``).
        self.metrics: CollectorRegistry | None = None

    def name_node(self, name: str) -> None:
        """This relay is cluster node ``name``: the label, unless ``[observe] node`` set one."""
        if not self.settings.node:
            self.node = self.events.node = name

    def start(self) -> None:
        if self.webhooks is not None:
            self.webhooks.start()

    async def stop(self) -> None:
        """End the event streams and stop the webhooks' task."""
        self.events.close()
        if self.webhooks is not None:
            await self.webhooks.stop()

    # -- entities --------------------------------------------------------------------

    def stats_for(self, name: str) -> EntityStats:
        stats = self.stats.get(name)
        if stats is None:
            if len(self.stats) >= MAX_ENTITIES:
                name = "(other)"
            stats = self.stats.get(name)
            if stats is None:
                stats = self.stats[name] = EntityStats(name)
        return stats

    def captures(self, entity: str) -> bool:
        return entity in self.inspector.capture

    # -- HTTP senders ----------------------------------------------------------------

    def call(self, request: SenderRequest, reply: SenderReply) -> CallNotes:
        """The notes of one HTTP sender's call, to use as its reply."""
        if not self.enabled:
            return Unobserved(reply)
        return Call(self, request, reply)

    def finish(self, call: Call, error: BaseException | None) -> None:
        """Count and record a finished call."""
        ended = perf_counter()
        request = call.request
        stats = call.entity
        forwarded = stats is not None
        if stats is None:  # refused before it was allowed: its entity, if it names one
            stats = self.stats_for(self._entity_named(request.path))
        tracking = fault_code = fault_string = ""
        if error is None:
            status = call.status
            stats.sender_outcomes[Outcome.SUCCESS] += 1
        else:
            status = status_of(error)
            stats.sender_outcomes[Outcome.of_refusal(status)] += 1
            tracking = new_tracking_id()
            error.tracking_id = tracking  # type: ignore[attr-defined]  # the boundary's answer uses it
        request_bytes = request.content_length or (len(call.body) if call.body else 0)
        if forwarded:
            stats.bytes += request_bytes + call.response_bytes
        listener_time = call.answered_at - call.forwarded_at if call.answered_at and call.forwarded_at else 0.0
        relay_time = ended - call.started - listener_time
        stats.relay_time.observe(relay_time)
        if call.listener:
            stats.listener_time.observe(listener_time)
            if call.rendezvous:
                stats.rendezvous += 1
            else:
                stats.inline += 1
        headers = request.headers
        content_type = headers.get("Content-Type", "")
        operation = self._operation(headers, content_type, call.body)
        if operation and forwarded:
            stats.operation(operation)
        if call.response_body is not None and status >= 400:
            fault_code, fault_string = fault_of(call.response_body)
            if fault_code:
                stats.fault(fault_code)
        if status == 202 and call.headers_out:
            stats.event_deliveries += _delivered(call.headers_out)
        now = self.clock()
        stats.timeline.add(now, status >= 400)
        inspector = self.inspector
        seq = inspector.next_seq()
        inspector.add((  # a plain tuple (a CallRow when rendered): cheap on every call
            seq, now, stats.name, request.method, request.path, content_type,
            operation, status, fault_code, fault_string, request_bytes, call.response_bytes,
            relay_time, listener_time, call.listener, tracking,
        ))
        if call.capture:
            inspector.keep(seq, request.raw_query, headers.items(), call.body, call.headers_out,
                           call.response_body)

    def _operation(self, headers: Any, content_type: str, body: bytes | None) -> str:
        """The SOAP operation, from a small cache keyed by the action when there is one
        (SOAPAction, or SOAP 1.2's in the Content-Type), else from the body."""
        key = headers.get("SOAPAction")
        if key is None or not key.strip('" '):
            key = content_type if "action=" in content_type else None
        if key is None:
            return operation_of(headers, body) if "xml" in content_type else ""
        operation = self._actions.get(key)
        if operation is None:
            operation = operation_of(headers, None)
            if len(self._actions) < _ACTIONS_CACHED:
                self._actions[key] = operation
        return operation

    def _entity_named(self, path: str) -> str:
        """The entity ``path`` names, or "" (no label from a stranger's path)."""
        try:
            resolved = self.registry.resolve(path.removeprefix("/$hc/"))
        except RelayError:
            return ""
        return resolved[0].path if resolved is not None else ""

    # -- listeners -------------------------------------------------------------------

    def listener_registered(self, entity: str, listener: str, remote: str, agent: str) -> None:
        """A listener's control channel is open on ``entity``."""
        stats = self.stats_for(entity)
        stats.listener(Outcome.SUCCESS)
        self.listeners[listener] = ListenerInfo(listener, entity, self.clock(), remote, agent)
        self.events.emit(EventName.NEW_LISTENER_REGISTERED, entity, remote=remote,
                         listenerId=listener)
        self._presence(EventName.LISTENER_CONNECTED, entity, listener, remote, "")

    def listener_unregistered(self, entity: str, listener: str, remote: str, why: str) -> None:
        """A listener's control channel ended (``why``: the relay's reason, or "")."""
        stats = self.stats_for(entity)
        stats.listener_disconnects += 1
        self.listeners.pop(listener, None)
        special = _LEFT.get(why)
        if special is not None:
            self.events.emit(special, entity, remote=remote, reason=why, listenerId=listener)
        self.events.emit(EventName.LISTENER_UNREGISTERED, entity, remote=remote, reason=why,
                         listenerId=listener)
        self._presence(EventName.LISTENER_DISCONNECTED, entity, listener, remote, why)

    def listener_refused(self, entity: str, error: BaseException) -> None:
        """A listener's handshake on ``entity`` was refused with ``error``."""
        status = status_of(error)
        self.stats_for(self._entity_named(entity)).listener(Outcome.of_refusal(status))

    def _presence(self, name: EventName, entity: str, listener: str, remote: str, why: str) -> None:
        event = self.events.emit(name, entity, remote=remote, reason=why, listenerId=listener)
        self.presence.append(event)

    # -- WebSocket senders -------------------------------------------------------------

    def sender_connected(self, entity: str, listener: str, remote: str) -> None:
        stats = self.stats_for(entity)
        stats.sender(Outcome.SUCCESS)
        stats.ws_senders += 1
        self.events.emit(EventName.SENDER_LISTENER_CONNECTION_ESTABLISHED, entity,
                         remote=remote, listenerId=listener)

    def sender_disconnected(self, entity: str) -> None:
        stats = self.stats_for(entity)
        stats.ws_senders -= 1
        stats.sender_disconnects += 1

    def sender_refused(self, entity: str, error: BaseException, remote: str) -> None:
        self.stats_for(self._entity_named(entity)).sender(
            Outcome.of_refusal(status_of(error)))
        if isinstance(error, ListenerRejected):
            self.events.emit(EventName.LISTENER_REJECTED_CONNECTION, entity, remote=remote,
                             reason=str(error)[:200])

    # -- the error boundary ------------------------------------------------------------

    def refused(self, error: RelayError, path: str, remote: str, tracking: str) -> None:
        """The boundary answered ``error``: the authorization events."""
        if not isinstance(error, AuthError | AccessDenied):
            return
        cause = error.__cause__
        invalid = isinstance(cause, MalformedToken | TokenRejected) or isinstance(error, MalformedToken)
        name = EventName.INVALID_SAS_TOKEN if invalid else EventName.AUTHORIZATION_FAILED
        self.events.emit(name, self._entity_named(path), tracking=tracking,
                         remote=remote, reason=str(error)[:200])


def _delivered(headers: Any) -> int:
    for name, value in headers:
        if name == "Relay-Delivered":
            return int(value) if value.isdigit() else 0
    return 0
