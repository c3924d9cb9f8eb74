"""Diagnostic events: JSON log lines, the ``/$events`` stream, presence webhooks."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Self

import aiohttp
import pytest
import websockets
from aiohttp import web
from websockets.exceptions import InvalidStatus

from relay.namespace import EntityConfig
from relay.observe.events import SUBSCRIBER_QUEUE, EventHub
from relay.observe.names import EventName
from relay.observe.settings import ObserveSettings, WebhookSettings
from relay.observe.webhooks import Webhooks
from tests.relay.test_liveness import SilentListener
from tests.relay.test_server_websockets import accepting_listener
from tests.support.observe import EventStream, scrape, value
from tests.support.raw_listener import RawListener
from tests.support.relay import RelayFactory, RelayHandle


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "relay.events"]


async def test_presence_events_are_logged_and_streamed(
    make_relay: RelayFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay.events")
    relay = await make_relay(EntityConfig("payroll"))
    token = relay.token("payroll")
    async with EventStream(http, relay) as events:
        async with RawListener(relay.ws_url, "payroll", token):
            registered = await events.until("NewListenerRegistered")
            connected = await events.until("ListenerConnected")
        unregistered = await events.until("ListenerUnregistered")
        disconnected = await events.until("ListenerDisconnected")
    for event in (registered, connected, unregistered, disconnected):
        assert event["entityName"] == "payroll"
        assert event["remoteAddress"] == "127.0.0.1"
        assert event["listenerId"] == registered["listenerId"]
    names = [e["operationName"] for e in logged(caplog)]
    assert names == ["NewListenerRegistered", "ListenerConnected", "ListenerUnregistered",
                     "ListenerDisconnected"]
    assert all(token not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("credential", "name"), [
    (None, "AuthorizationFailed"),
    (("SharedAccessSignature sr=http%3a%2f%2f127.0.0.1%2f&sig=Zm9v&se=99999999999"
     "&skn=RootManageSharedAccessKey"), "InvalidSasToken"),
])
async def test_refused_senders_are_authorization_events_with_the_tracking_id(
    make_relay: RelayFactory, http: aiohttp.ClientSession, credential: str | None, name: str
) -> None:
    relay = await make_relay(EntityConfig("payroll"))
    headers = {"ServiceBusAuthorization": credential} if credential else {}
    async with EventStream(http, relay) as events:
        async with http.post(f"{relay.base_url}/payroll", data=b"x", headers=headers) as resp:
            assert resp.status == 401
            tracking = resp.headers["X-Relay-Tracking-Id"]
        event = await events.next()
    assert event["operationName"] == name
    assert event["trackingId"] == tracking and event["entityName"] == "payroll"
    assert event["reason"] and "Zm9v" not in json.dumps(event)


async def test_expired_and_unresponsive_listeners_say_why(
    make_relay: RelayFactory, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    relay = await make_relay(EntityConfig("exp"), EntityConfig("cut"), clock=clock,
                             ping_interval=0.2, pong_timeout=0.3)
    async with EventStream(http, relay) as events:
        async with RawListener(relay.ws_url, "exp", relay.token("exp", ttl=60)):
            await events.until("NewListenerRegistered", entityName="exp")
            clock.offset = 60 + relay.server.config.token_grace + 1
            expired = await events.until("ListenerClosingFromExpiredToken")
            gone = await events.until("ListenerUnregistered", entityName="exp")
        clock.offset = 0
        async with SilentListener(relay, "cut"):
            unresponsive = await events.until("ListenerUnresponsive")
            await events.until("ListenerDisconnected", entityName="cut")
    assert expired["entityName"] == "exp" and gone["reason"] == "token expired"
    assert unresponsive["entityName"] == "cut"


def test_a_stream_subscriber_that_does_not_read_is_cut_off() -> None:
    hub = EventHub("")
    slow = hub.subscribe()
    assert slow is not None
    for _ in range(SUBSCRIBER_QUEUE + 5):
        hub.emit(EventName.LISTENER_CONNECTED, "payroll")
    assert slow not in hub.subscribers
    assert slow.queue.qsize() == SUBSCRIBER_QUEUE + 1  # its events, then the end marker
    items = [slow.queue.get_nowait() for _ in range(SUBSCRIBER_QUEUE + 1)]
    assert items[-1] is None and all(isinstance(i, str) for i in items[:-1])


def test_webhook_queue_drops_the_oldest_past_its_bound() -> None:
    hook = WebhookSettings("http://127.0.0.1:9/presence")
    hooks = Webhooks((hook,), queue=3)
    for n in range(5):
        hooks.offer("ListenerConnected", {"n": n})
    hooks.offer("NewListenerRegistered", {"n": 99})  # not a name this webhook asked for
    assert [event["n"] for _, event in hooks.waiting] == [2, 3, 4]
    assert hooks.outcomes["dropped"] == 2


class Receiver:
    """A webhook receiver on 127.0.0.1:0 that fails its first ``failures`` POSTs."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.attempts = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/presence", self.post)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/presence"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def post(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.attempts <= self.failures:
            return web.Response(status=503)
        await self.got.put(await request.json())
        return web.Response(status=204)


async def test_presence_webhook_is_retried_until_delivered(
    make_relay: RelayFactory, http: aiohttp.ClientSession
) -> None:
    async with Receiver(failures=2) as receiver:
        settings = ObserveSettings(webhooks=(WebhookSettings(receiver.url),), webhook_backoff=0.01)
        relay: RelayHandle = await make_relay(EntityConfig("payroll"), observe=settings)
        async with RawListener(relay.ws_url, "payroll", relay.token("payroll")):
            connected = await asyncio.wait_for(receiver.got.get(), 10)
        disconnected = await asyncio.wait_for(receiver.got.get(), 10)
    assert connected["operationName"] == "ListenerConnected"
    assert disconnected["operationName"] == "ListenerDisconnected"
    assert connected["entityName"] == "payroll" and receiver.attempts == 4
    samples = await scrape(http, relay)
    assert value(samples, "soaprelay_webhook_deliveries_total", outcome="delivered") == 2
    assert value(samples, "soaprelay_webhook_deliveries_total", outcome="retried") == 2
    assert value(samples, "soaprelay_diagnostic_events_total", operation_name="ListenerConnected") == 1


async def test_websocket_senders_are_counted_and_a_rejection_is_an_event(
    arelay: RelayHandle, http: aiohttp.ClientSession
) -> None:
    headers = {"ServiceBusAuthorization": arelay.token("chat")}
    async with EventStream(http, arelay) as events:
        task, _ = await accepting_listener(arelay, "chat")
        await events.until("NewListenerRegistered", entityName="chat")
        url = f"{arelay.ws_url}/$hc/chat?sb-hc-action=connect"
        async with websockets.connect(url, additional_headers=headers) as ws:
            established = await events.until("SenderListenerConnectionEstablished")
            await ws.send("hello")
            assert await ws.recv() == "hello"
        await asyncio.wait_for(task, 5)
        await events.until("ListenerUnregistered", entityName="chat")
        task, _ = await accepting_listener(arelay, "picky", reject="&sb-hc-statusCode=403")
        await events.until("NewListenerRegistered", entityName="picky")
        with pytest.raises(InvalidStatus):
            await websockets.connect(f"{arelay.ws_url}/$hc/picky?sb-hc-action=connect",
                                     additional_headers={"ServiceBusAuthorization":
                                                         arelay.token("picky")})
        rejected = await events.until("ListenerRejectedConnection")
        await asyncio.wait_for(task, 5)
    assert established["entityName"] == "chat" and rejected["entityName"] == "picky"
    samples = await scrape(http, arelay)
    assert value(samples, "soaprelay_sender_connections_success_total", entity_name="chat") == 1
    assert value(samples, "soaprelay_sender_disconnects_total", entity_name="chat") == 1
    assert value(samples, "soaprelay_sender_connections_client_error_total",
                 entity_name="picky") == 1
