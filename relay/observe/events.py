"""Diagnostic events: one JSON log line each, a live stream, presence webhooks.

Every event is a flat JSON object with Azure's operation name::

    {"time": "2026-01-02T03:04:05.678Z", "operationName": "NewListenerRegistered",
     "entityName": "payroll", "trackingId": "...", "remoteAddress": "127.0.0.1",
     "reason": "", "listenerId": "L3", "node": ""}

written as one INFO line on the ``relay.events`` logger, queued to every
subscriber of the Server-Sent Events stream (``GET /$events``), and, for the
names a webhook asked for, handed to ``relay.observe.webhooks``.  Nothing in an
event is a token or a key: reasons are the relay's own messages.

A subscriber that does not keep up (:data:`SUBSCRIBER_QUEUE` events behind) is
cut off rather than buffered without bound; it reconnects and carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

from relay.observe.names import EventName
from relay.observe.webhooks import Webhooks

__all__ = ["SUBSCRIBER_QUEUE", "EventHub", "Subscription"]

log = logging.getLogger("relay.events")
#: Events waiting for one stream subscriber before it is cut off.
SUBSCRIBER_QUEUE = 1000
#: Subscribers at once (more: 503).
MAX_SUBSCRIBERS = 64
#: Events the console's presence history shows.
HISTORY = 500


class Subscription:
    """One stream subscriber's queue; ``None`` in it means "cut off"."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(SUBSCRIBER_QUEUE + 1)

    def offer(self, line: str) -> bool:
        """Queue ``line``; False (and the end marker queued) when it is too far behind."""
        if self.queue.qsize() >= SUBSCRIBER_QUEUE:
            self.queue.put_nowait(None)
            return False
        self.queue.put_nowait(line)
        return True


class EventHub:
    """Where the relay's diagnostic events go."""

    def __init__(self, node: str, webhooks: Webhooks | None = None) -> None:
        self.node = node
        self.webhooks = webhooks
        self.subscribers: set[Subscription] = set()
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.counts: dict[str, int] = {}

    def emit(
        self, name: EventName, entity: str, *, tracking: str = "", remote: str = "",
        reason: str = "", **extra: str,
    ) -> dict[str, Any]:
        """Log, stream and deliver one event; returns it."""
        now = datetime.now(UTC)
        event: dict[str, Any] = {
            "time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "operationName": name.value, "entityName": entity, "trackingId": tracking,
            "remoteAddress": remote, "reason": reason, **extra, "node": self.node,
        }
        line = json.dumps(event, ensure_ascii=True)
        log.info("%s", line)
        self.counts[name.value] = self.counts.get(name.value, 0) + 1
        self.history.append(event)
        for subscriber in list(self.subscribers):
            if not subscriber.offer(line):
                self.subscribers.discard(subscriber)
                log.warning("an event stream subscriber fell %d events behind: cut off",
                            SUBSCRIBER_QUEUE)
        if self.webhooks is not None:
            self.webhooks.offer(name.value, event)
        return event

    def subscribe(self) -> Subscription | None:
        """A new stream subscriber, or None when there are :data:`MAX_SUBSCRIBERS`."""
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            return None
        subscription = Subscription()
        self.subscribers.add(subscription)
        return subscription

    def close(self) -> None:
        """End every stream (the relay is stopping)."""
        for subscription in self.subscribers:
            subscription.queue.put_nowait(None)
        self.subscribers.clear()

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)
