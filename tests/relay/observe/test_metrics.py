"""``/$metrics`` through a real relay: known traffic, each number checked exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from hc.entities import EntityKind, Rights
from hc.sas import create_token
from relay.namespace import EntityConfig, SasRule
from relay.observe.settings import AdminSettings, ObserveSettings
from tests.support.observe import EventStream, scrape, value
from tests.support.raw_listener import RawListener, Reply
from tests.support.relay import RelayFactory, RelayHandle

SEND_KEY = "c2VuZC1rZXktZm9yLXRlc3RzLTAwMDAwMDAwMDAwMA=="
FAULT = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
         b"<faultcode>s:Server</faultcode><faultstring>payroll closed</faultstring>"
         b"</s:Fault></s:Body></s:Envelope>")


def envelope(operation: str, pad: int = 0) -> bytes:
    return (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            b"<" + operation.encode() + b' xmlns="urn:pay"><id>' + b"7" * pad + b"</id></"
            + operation.encode() + b"></s:Body></s:Envelope>")


async def soap_service(command: dict[str, Any], body: bytes) -> Reply:
    """GetPay answers 200 (the body back), Boom a SOAP fault (500)."""
    if b"Boom" in body:
        return 500, {"Content-Type": "text/xml; charset=utf-8"}, FAULT
    return 200, {"Content-Type": "text/xml; charset=utf-8"}, body


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def payroll(make_relay: RelayFactory) -> RelayHandle:
    rules = (SasRule("send", SEND_KEY, Rights.SEND),)
    return await make_relay(EntityConfig("payroll", rules=rules),
                            EntityConfig("news", kind=EntityKind.EVENT))


async def post(http: aiohttp.ClientSession, relay: RelayHandle, path: str, body: bytes,
               token: str | None, soap: bool = True) -> int:
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'} if soap else {}
    if token is not None:
        headers["ServiceBusAuthorization"] = token
    async with http.post(f"{relay.base_url}/{path}", data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_known_traffic_gives_exact_azure_metrics(
    payroll: RelayHandle, http: aiohttp.ClientSession
) -> None:
    token = payroll.token("payroll")
    sent = received = 0
    async with EventStream(http, payroll) as events:
        async with RawListener(payroll.ws_url, "payroll", token, soap_service):
            await events.until("NewListenerRegistered", entityName="payroll")
            for _ in range(3):
                body = envelope("GetPay")
                assert await post(http, payroll, "payroll", body, token) == 200
                sent, received = sent + len(body), received + len(body)
            for _ in range(2):
                body = envelope("Boom")
                assert await post(http, payroll, "payroll", body, token) == 500
                sent, received = sent + len(body), received + len(FAULT)
            big = envelope("GetPay", pad=100_000)  # over 64 KiB: address-only, a rendezvous
            assert await post(http, payroll, "payroll", big, token) == 200
            sent, received = sent + len(big), received + len(big)
            assert await post(http, payroll, "payroll", envelope("GetPay"), None) == 401
            assert await post(http, payroll, "payroll", envelope("GetPay"), "junk") == 401
            assert await post(http, payroll, "nowhere", b"x", token, soap=False) == 404
        await events.until("ListenerUnregistered", entityName="payroll")
    samples = await scrape(http, payroll)

    def sender(outcome: str) -> float:
        return value(samples, f"soaprelay_sender_connections_{outcome}_total", entity_name="payroll")

    assert sender("success") == 6
    assert sender("client_error") == 2 and sender("server_error") == 0
    assert sender("total_requests") == 8
    assert value(samples, "soaprelay_sender_connections_client_error_total", entity_name="") == 1
    assert value(samples, "soaprelay_bytes_transferred_total", entity_name="payroll") == sent + received
    assert value(samples, "soaprelay_soap_calls_total", entity_name="payroll", operation="GetPay") == 4
    assert value(samples, "soaprelay_soap_calls_total", entity_name="payroll", operation="Boom") == 2
    assert value(samples, "soaprelay_soap_faults_total", entity_name="payroll", fault_code="Server") == 2
    assert value(samples, "soaprelay_relayed_calls_total", entity_name="payroll", transfer="inline") == 5
    assert value(samples, "soaprelay_relayed_calls_total", entity_name="payroll",
                 transfer="rendezvous") == 1
    assert value(samples, "soaprelay_relay_time_seconds_count", entity_name="payroll") == 8
    assert value(samples, "soaprelay_listener_time_seconds_count", entity_name="payroll") == 6
    assert value(samples, "soaprelay_listener_connections_success_total", entity_name="payroll") == 1
    assert value(samples, "soaprelay_listener_disconnects_total", entity_name="payroll") == 1
    assert value(samples, "soaprelay_active_listeners", entity_name="payroll") == 0
    assert value(samples, "soaprelay_active_connections", entity_name="payroll") == 0


async def test_listener_gauges_and_refused_listeners(
    payroll: RelayHandle, http: aiohttp.ClientSession
) -> None:
    token = payroll.token("payroll")
    async with EventStream(http, payroll) as events:
        async with RawListener(payroll.ws_url, "payroll", token), \
                RawListener(payroll.ws_url, "payroll", token):
            await events.until("NewListenerRegistered")
            await events.until("NewListenerRegistered")
            samples = await scrape(http, payroll)
            assert value(samples, "soaprelay_active_listeners", entity_name="payroll") == 2
            assert value(samples, "soaprelay_active_connections", entity_name="payroll") == 2
        bad = create_token(f"{payroll.base_url}/payroll", "send", SEND_KEY)  # Send, not Listen
        for credential in (bad, "SharedAccessSignature sr=x&sig=y&se=1&skn=z"):
            with pytest.raises(Exception):  # noqa: B017 - refused: websockets' InvalidStatus
                async with RawListener(payroll.ws_url, "payroll", credential):
                    pass
        await events.until("ListenerUnregistered")
        await events.until("ListenerUnregistered")
    samples = await scrape(http, payroll)
    assert value(samples, "soaprelay_listener_connections_success_total", entity_name="payroll") == 2
    assert value(samples, "soaprelay_listener_connections_client_error_total",
                 entity_name="payroll") == 2
    assert value(samples, "soaprelay_listener_connections_total_requests_total",
                 entity_name="payroll") == 4
    assert value(samples, "soaprelay_listener_disconnects_total", entity_name="payroll") == 2
    assert value(samples, "soaprelay_active_listeners", entity_name="payroll") == 0


async def test_event_deliveries_count_each_subscriber(
    payroll: RelayHandle, http: aiohttp.ClientSession
) -> None:
    token = payroll.token("news")
    async with EventStream(http, payroll) as events:
        async with RawListener(payroll.ws_url, "news", token, query="&sb-relay-kind=event"), \
                RawListener(payroll.ws_url, "news", token, query="&sb-relay-kind=event"):
            await events.until("NewListenerRegistered", entityName="news")
            await events.until("NewListenerRegistered", entityName="news")
            for _ in range(3):
                assert await post(http, payroll, "news", b"tick", token, soap=False) == 202
    samples = await scrape(http, payroll)
    assert value(samples, "soaprelay_event_deliveries_total", entity_name="news") == 6
    assert value(samples, "soaprelay_sender_connections_success_total", entity_name="news") == 3


@pytest.mark.parametrize("who", ["anonymous", "send", "listen-entity", "garbage"])
async def test_metrics_refuse_everything_but_a_manage_token(
    payroll: RelayHandle, http: aiohttp.ClientSession, who: str
) -> None:
    headers = {
        "anonymous": {},
        "send": {"Authorization": create_token(f"{payroll.base_url}/", "send", SEND_KEY)},
        "listen-entity": {"Authorization": payroll.token("payroll")},  # Manage, but one entity's
        "garbage": {"Authorization": "SharedAccessSignature sr=a&sig=b&se=1&skn=c"},
    }[who]
    for path in ("/$metrics", "/$events", "/$console/api/namespace"):
        async with http.get(payroll.base_url + path, headers=headers) as resp:
            assert resp.status in (401, 403), (path, resp.status)
            assert b"soaprelay_" not in await resp.read()


async def test_admin_address_serves_metrics_without_token(
    make_relay: RelayFactory, http: aiohttp.ClientSession
) -> None:
    settings = ObserveSettings(admin=AdminSettings(port=0), node="n1")
    relay = await make_relay(EntityConfig("payroll"), observe=settings)
    admin = relay.server.admin
    assert admin is not None and admin.port
    base = f"http://127.0.0.1:{admin.port}"
    assert await post(http, relay, "payroll", b"x", None, soap=False) == 401
    samples = await scrape(http, relay, base=base, token=None)
    key = ("soaprelay_sender_connections_client_error_total",
           (("entity_name", "payroll"), ("node", "n1")))
    assert samples[key] == 1
    async with http.get(f"{base}/payroll") as resp:
        assert resp.status == 404  # the admin address relays nothing
    rebound = {"Host": f"attacker.example:{admin.port}"}  # DNS rebinding to 127.0.0.1
    async with http.get(f"{base}/$metrics", headers=rebound) as resp:
        assert resp.status == 403 and b"soaprelay_" not in await resp.read()
    async with http.get(f"{relay.base_url}/$metrics") as resp:
        assert resp.status == 401  # the relay's port still asks for a token


async def test_a_cluster_nodes_label_defaults_to_its_name_and_a_configured_one_wins(
    make_relay: RelayFactory, http: aiohttp.ClientSession
) -> None:
    plain = await make_relay(EntityConfig("payroll"))
    named = await make_relay(EntityConfig("payroll"), observe=ObserveSettings(node="edge-a"))
    for relay in (plain, named):  # what a cluster node does when it joins
        relay.server.state.observer.name_node("node7")
    assert await post(http, plain, "payroll", b"x", None, soap=False) == 401
    assert await post(http, named, "payroll", b"x", None, soap=False) == 401
    for relay, node in ((plain, "node7"), (named, "edge-a")):
        samples = await scrape(http, relay)
        key = ("soaprelay_sender_connections_client_error_total",
               (("entity_name", "payroll"), ("node", node)))
        assert samples[key] == 1
        assert all(dict(labels).get("node") == node for _, labels in samples)
    alone = await make_relay(EntityConfig("payroll"))  # a single relay: no node label at all
    assert all("node" not in dict(labels) for _, labels in await scrape(http, alone))
