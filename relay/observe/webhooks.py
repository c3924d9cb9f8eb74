"""Presence events POSTed to the operator's webhooks, with retries and a bound.

Each ``[[webhook]]`` gets the events it names as a JSON POST (the event object,
``Content-Type: application/json``).  A delivery is tried up to ``tries`` times,
waiting ``backoff``, 2 x ``backoff``, 4 x ... between tries (at most 30 s); any 2xx
is delivered, anything else (another status, a refused or broken connection, no
answer in 10 s) is tried again.  Deliveries wait in one queue of ``queue`` items
for all webhooks, sent in order by one task: when it is full the oldest waiting
delivery is dropped (and counted), so a dead receiver never makes the relay hold
more than ``queue`` events.  Counts by outcome are in the metrics
(``soaprelay_webhook_deliveries_total``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from relay.observe.settings import WebhookSettings

__all__ = ["Webhooks"]

log = logging.getLogger("relay.events")
_TIMEOUT = aiohttp.ClientTimeout(total=10)
_MAX_WAIT = 30.0


class Webhooks:
    """The delivery queue and its one sending task (started with the relay)."""

    def __init__(
        self, hooks: tuple[WebhookSettings, ...], *, queue: int = 1000, tries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self.hooks = hooks
        self.tries, self.backoff = max(1, tries), backoff
        self.waiting: deque[tuple[WebhookSettings, dict[str, Any]]] = deque()
        self.bound = max(1, queue)
        self.outcomes = {"delivered": 0, "failed": 0, "dropped": 0, "retried": 0}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def offer(self, name: str, event: dict[str, Any]) -> None:
        """Queue ``event`` for every webhook that asked for ``name``."""
        for hook in self.hooks:
            if name in hook.events:
                if len(self.waiting) >= self.bound:
                    self.waiting.popleft()
                    self.outcomes["dropped"] += 1
                    if self.outcomes["dropped"] == 1 or self.outcomes["dropped"] % 1000 == 0:
                        log.warning("webhook queue full (%d): dropped the oldest event (%d so far)",
                                    self.bound, self.outcomes["dropped"])
                self.waiting.append((hook, event))
        self._wake.set()

    def start(self) -> None:
        if self.hooks and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        while True:
            if not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            hook, event = self.waiting.popleft()
            await self._deliver(hook, event)

    async def _deliver(self, hook: WebhookSettings, event: dict[str, Any]) -> None:
        assert self._session is not None
        for attempt in range(self.tries):
            if attempt:
                self.outcomes["retried"] += 1
                await asyncio.sleep(min(_MAX_WAIT, self.backoff * 2 ** (attempt - 1)))
            try:
                async with self._session.post(hook.url, json=event) as response:
                    if 200 <= response.status < 300:
                        self.outcomes["delivered"] += 1
                        return
                    why = f"status {response.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                why = str(exc) or type(exc).__name__
        self.outcomes["failed"] += 1
        where = urlsplit(hook.url)  # no query in the log: it may hold the receiver's secret
        log.warning("webhook %s://%s%s: %s not delivered after %d tries (%s)", where.scheme,
                    where.netloc.rpartition("@")[2], where.path, event.get("operationName"),
                    self.tries, why)
