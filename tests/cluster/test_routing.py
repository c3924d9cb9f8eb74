"""Every mode across relay nodes: the sender on one node, its listener on another.

One real cluster for the module (``conftest.cluster``): three nats-server processes
meshed by routes, three ``soaprelay serve`` nodes of namespace ``test``, haproxy in
front.  Listeners connect to a chosen node (or through haproxy); senders to another.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import aiohttp
import pytest
import requests
from lxml import etree

from bindings import RelayServiceHost
from bindings.tokens import TokenProvider
from bindings.zeep_transport import relay_client
from hc.asyncio import HybridConnectionClient, QuotaExceededError, RelayedHttpListenerContext
from samples.payroll.services import payroll_app
from soap.relay_token import relay_token_header
from tests.cluster.conftest import (
    PROVIDER,
    Cluster,
    counted,
    health,
    open_listener,
    routed,
    sender,
)
from tests.support.cluster import token
from tests.support.raw_listener import RawListener
from tests.support.relay import TEST_KEY, TEST_KEY_NAME


async def test_a_request_crosses_nodes_inline_and_by_rendezvous(cluster: Cluster) -> None:
    listener = await open_listener(cluster.url(1), "echo")
    try:
        async with sender(cluster.url(0), "echo") as http:
            await routed(http, f"{cluster.url(0)}/echo")
            for size in (5, 64 * 1024 + 1, 2 * 1024 * 1024):
                body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
                async with http.post(f"{cluster.url(0)}/echo/x?y=1", data=io.BytesIO(body)) as reply:
                    assert reply.status == 200, await reply.text()
                    assert await reply.read() == body[::-1]
    finally:
        await listener.close()


async def test_long_headers_cross_nodes_both_ways(cluster: Cluster) -> None:
    """A 6 KB Cookie on the request and a 6 KB header on the response (a session
    cookie, a JWT) cross nodes as short ones do, not dropped as over-long asks."""
    cookie = "session=" + "c" * 6000

    async def answer(context: RelayedHttpListenerContext) -> None:
        context.response.headers.append(("X-Cookie-Back", (context.request.header("Cookie") or "")[::-1]))
        await context.response.write(await context.request.read())

    listener = await open_listener(cluster.url(1), "long", answer)
    try:
        async with sender(cluster.url(0), "long") as http:
            await routed(http, f"{cluster.url(0)}/long")
            started = time.monotonic()
            async with http.post(f"{cluster.url(0)}/long", data=b"hi", headers={"Cookie": cookie}) as reply:
                assert reply.status == 200, await reply.text()
                assert reply.headers["X-Cookie-Back"] == cookie[::-1]
                assert await reply.read() == b"hi"
            assert time.monotonic() - started < 4, "answered only after the ask's bound"
    finally:
        await listener.close()


async def test_the_rendezvous_is_on_the_senders_node(cluster: Cluster) -> None:
    ws1 = cluster.url(1).replace("http", "ws")
    async with RawListener(ws1, "echo", token(cluster.url(1), "echo")) as raw:
        async with sender(cluster.url(0), "echo") as http:
            await routed(http, f"{cluster.url(0)}/echo")
            async with http.post(f"{cluster.url(0)}/echo", data=b"a" * 70_000) as reply:
                assert reply.status == 200
                assert await reply.read() == b"a" * 70_000
    port0 = cluster.nodes.nodes[0].port
    assert raw.announced and all(f"127.0.0.1:{port0}/$hc/echo" in a["address"] for a in raw.announced)
    assert raw.received[-1].body == b"a" * 70_000


async def test_no_listener_anywhere_is_answered_at_once(cluster: Cluster) -> None:
    async with sender(cluster.url(0), "echo") as http:
        started = time.monotonic()
        async with http.post(f"{cluster.url(0)}/echo", data=b"x") as reply:
            assert reply.status == 502
            assert "No service is hosted" in await reply.text()
        assert time.monotonic() - started < 2.0  # the entity's timeout is 10 s


async def test_a_oneway_message_is_accepted_after_a_remote_listeners_ack(cluster: Cluster) -> None:
    got: list[bytes] = []

    async def keep(context: RelayedHttpListenerContext) -> None:
        got.append(await context.request.read())

    listener = await open_listener(cluster.url(2), "oneway", keep)
    try:
        async with sender(cluster.url(0), "oneway") as http:
            await routed(http, f"{cluster.url(0)}/oneway")
            async with http.post(f"{cluster.url(0)}/oneway", data=b"note") as reply:
                assert reply.status == 202
        assert got[-1] == b"note"
    finally:
        await listener.close()


async def test_an_event_reaches_every_listener_on_every_node(cluster: Cluster) -> None:
    got: list[tuple[int, bytes]] = []

    def keeper(index: int) -> Callable[[RelayedHttpListenerContext], Awaitable[None]]:
        async def keep(context: RelayedHttpListenerContext) -> None:
            got.append((index, await context.request.read()))
        return keep

    listeners = [await open_listener(cluster.url(i % 3), "events", keeper(i)) for i in range(5)]
    try:
        for i in range(3):
            await counted(cluster.url(i), "events", 5)
        async with sender(cluster.url(0), "events") as http:
            async with http.post(f"{cluster.url(0)}/events", data=b"fanout") as reply:
                assert reply.status == 202
                assert reply.headers["Relay-Delivered"] == "5"
        assert sorted(i for i, _ in got) == [0, 1, 2, 3, 4]
        assert {body for _, body in got} == {b"fanout"}
    finally:
        for listener in listeners:
            await listener.close()


async def test_the_listener_quota_counts_every_node(cluster: Cluster) -> None:
    first = await open_listener(cluster.url(1), "quota")
    second = await open_listener(cluster.url(2), "quota")
    try:
        await counted(cluster.url(0), "quota", 2)
        with pytest.raises(QuotaExceededError):
            third = await open_listener(cluster.url(0), "quota")
            await third.close()
    finally:
        await first.close()
        await second.close()


async def test_the_discovery_feed_lists_public_entities_of_other_nodes(cluster: Cluster) -> None:
    listener = await open_listener(cluster.url(2), "events")
    try:
        await counted(cluster.url(0), "events", 1)
        async with sender(cluster.url(0), "") as http, http.get(f"{cluster.lb}/") as reply:
            feed = etree.fromstring(await reply.read())
        titles = feed.findall("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}title")
        assert [t.text for t in titles] == ["events"]
        assert f":{cluster.nodes.nodes[2].port}" not in etree.tostring(feed).decode()
    finally:
        await listener.close()


async def test_a_websocket_sender_reaches_a_listener_on_another_node(cluster: Cluster) -> None:
    listener = await open_listener(cluster.url(1), "echo")
    try:
        async with sender(cluster.url(0), "echo") as http:
            await routed(http, f"{cluster.url(0)}/echo")
        client = HybridConnectionClient(f"{cluster.url(0)}/echo", PROVIDER)
        async with await client.create_connection() as sent:
            taken = await asyncio.wait_for(listener.accept_connection(), 5)
            assert taken is not None
            await sent.write(b"ping")
            assert await asyncio.wait_for(taken.read(), 5) == b"ping"
            await taken.write(b"pong")
            assert await asyncio.wait_for(sent.read(), 5) == b"pong"
            await taken.close()
    finally:
        await listener.close()


async def test_a_dynamic_entity_of_one_node_is_reachable_from_another(cluster: Cluster) -> None:
    listener = await open_listener(cluster.url(2), "made/here")
    try:
        await counted(cluster.url(0), "made/here", 1)
        async with sender(cluster.url(0), "made/here") as http:
            async with http.post(f"{cluster.url(0)}/made/here/op", data=b"abc") as reply:
                assert reply.status == 200, await reply.text()
                assert await reply.read() == b"cba"
    finally:
        await listener.close()


async def test_a_relay_access_token_in_the_soap_header_works_across_nodes(cluster: Cluster) -> None:
    listener = await open_listener(cluster.url(1), "echo")
    soap = "http://schemas.xmlsoap.org/soap/envelope/"
    envelope = etree.Element(f"{{{soap}}}Envelope", nsmap={"s": soap})
    etree.SubElement(envelope, f"{{{soap}}}Header").append(
        relay_token_header(token(cluster.url(0), "echo")))
    etree.SubElement(etree.SubElement(envelope, f"{{{soap}}}Body"), "x")
    body = etree.tostring(envelope)
    try:
        async with sender(cluster.url(0), "echo") as http:
            await routed(http, f"{cluster.url(0)}/echo")
        async with aiohttp.ClientSession() as bare:
            async with bare.post(f"{cluster.url(0)}/echo", data=body,
                                 headers={"Content-Type": "text/xml"}) as reply:
                assert reply.status == 200, await reply.text()
                seen = (await reply.read())[::-1]
        assert b"<x/>" in seen and b"RelayAccessToken" not in seen
    finally:
        await listener.close()


async def test_many_calls_through_the_load_balancer_are_each_answered_once(cluster: Cluster) -> None:
    calls: list[bytes] = []

    async def count(context: RelayedHttpListenerContext) -> None:
        body = await context.request.read()
        calls.append(body)
        await context.response.write(body)

    listeners = [await open_listener(cluster.lb, "echo", count) for _ in range(3)]
    try:
        async with sender(cluster.lb, "echo") as http:
            await routed(http, f"{cluster.lb}/echo")
            calls.clear()

            async def one(i: int) -> bytes:
                async with http.post(f"{cluster.lb}/echo", data=f"call {i}".encode()) as reply:
                    assert reply.status == 200
                    return await reply.read()

            answers = await asyncio.gather(*(one(i) for i in range(60)))
        assert answers == [f"call {i}".encode() for i in range(60)]
        assert sorted(calls) == sorted(answers)  # none twice, none lost
    finally:
        for listener in listeners:
            await listener.close()


async def test_the_health_endpoint_names_the_node_and_its_peers(cluster: Cluster) -> None:
    view = await health(cluster.url(0))
    assert view["status"] == "ok" and view["cluster"] == "connected"
    assert view["node"] == "node0"
    assert set(view["peers"]) <= {"node1", "node2"}


def test_a_spyne_service_behind_the_cluster_shows_only_the_public_address(cluster: Cluster) -> None:
    """Host and zeep both use haproxy's address (the namespace's public one): the host's
    listener lands on one node, haproxy spreads the WSDL fetches and calls over all three,
    and the WSDL names the public address, never a node's."""
    public = cluster.lb.removeprefix("http://")
    cs = f"Endpoint=sb://{public}/;SharedAccessKeyName={TEST_KEY_NAME};SharedAccessKey={TEST_KEY}"
    with RelayServiceHost(payroll_app(), connection_string=cs + ";UseTls=false;EntityPath=payroll"):
        provider = TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY)
        auth = {"ServiceBusAuthorization": token(cluster.lb, "payroll")}
        for index in range(len(cluster.nodes.nodes)):
            # Readiness on every node haproxy may pick: payroll is a dynamic entity, which a
            # node answers 404 for until it knows the listener, then 502 until NATS interest
            # has crossed its routes.
            node = cluster.url(index)
            asyncio.run(counted(node, "payroll", 1))
            deadline = time.monotonic() + 5
            while requests.get(f"{node}/payroll?wsdl", timeout=30,
                               headers={"ServiceBusAuthorization": token(node, "payroll")}
                               ).status_code == 502:
                assert time.monotonic() < deadline, f"never routed through {node}"
        for _ in range(3):  # haproxy round-robins: the WSDL and calls come through each node
            wsdl = requests.get(f"{cluster.lb}/payroll?wsdl", timeout=30, headers=auth)
            assert wsdl.status_code == 200
            assert f'location="{cluster.lb}/payroll"'.encode() in wsdl.content
            for node in cluster.nodes.nodes:
                assert f":{node.port}".encode() not in wsdl.content
            client = relay_client(f"{cluster.lb}/payroll?wsdl", token_provider=provider)
            assert client.service.GetSalary(7) == Decimal("5120.50")


def test_no_node_logged_a_traceback_or_a_credential(cluster: Cluster) -> None:
    for index in range(3):
        process = cluster.nodes.process(index)
        assert process.alive()
        assert process.tracebacks() == [], process.tail(40)
