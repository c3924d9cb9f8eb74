"""Reading a relay's metrics and diagnostic events the way an operator would: over HTTP."""

from __future__ import annotations

import json
from typing import Any, Self

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.relay import RelayHandle

__all__ = ["EventStream", "Samples", "scrape"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: aiohttp.ClientSession, relay: RelayHandle, base: str | None = None,
                 token: str | None = "manage") -> Samples:
    """Every sample of ``/$metrics``, keyed by (name, sorted labels)."""
    headers = {"Authorization": relay.token()} if token == "manage" else {}
    async with http.get(f"{base or relay.base_url}/$metrics", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the relay has none (a counter never bumped)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class EventStream:
    """A subscriber of ``/$events`` (Server-Sent Events), read event by event."""

    def __init__(self, http: aiohttp.ClientSession, relay: RelayHandle) -> None:
        self.http, self.relay = http, relay
        self.response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> Self:
        headers = {"Authorization": self.relay.token()}
        self.response = await self.http.get(f"{self.relay.base_url}/$events", headers=headers)
        assert self.response.status == 200
        assert self.response.headers["Content-Type"] == "text/event-stream"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.response is not None
        self.response.close()

    async def next(self) -> dict[str, Any]:
        assert self.response is not None
        while True:
            line = await self.response.content.readline()
            assert line, "the event stream ended"
            if line.startswith(b"data: "):
                event: dict[str, Any] = json.loads(line[6:])
                return event

    async def until(self, name: str, **fields: str) -> dict[str, Any]:
        """The next event called ``name`` (with ``fields``), skipping others."""
        while True:
            event = await self.next()
            if event["operationName"] == name and all(event.get(k) == v for k, v in fields.items()):
                return event
