"""Direct node-to-node links (``relay.cluster.direct``) in a real cluster.

A cluster of its own (``cluster`` is module-scoped): three nats-servers, three
nodes, haproxy.  What a user sees: calls across nodes go over the link (counted in
``/$health``), the link refuses whoever lacks the node's ticket, a stale peer
table falls back to NATS, a killed node fails the calls in flight on its link at
once and the next calls go elsewhere, and ``direct = false`` keeps NATS alone.
"""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import time
from typing import Any

import aiohttp
import nats
import pytest

from hc.asyncio import RelayedHttpListenerContext
from hc.messages import RequestCommand
from relay.cluster.direct import MAX_FRAME, frame
from relay.cluster.messages import Ask, AskKind
from relay.cluster.subjects import Subjects
from tests.cluster.conftest import Cluster, counted, health, open_listener, routed, sender, until
from tests.support.cluster import NatsCluster, RelayNodes
from tests.support.procs import Children

LINK = "/$cluster/link"


async def direct(base: str) -> dict[str, Any]:
    view = (await health(base))["direct"]
    assert isinstance(view, dict)
    return view


async def linked(cluster: Cluster, asker: int, path: str, to: str) -> None:
    """Call ``path`` through node ``asker`` until its link to node ``to`` is open."""
    async with sender(cluster.url(asker), path) as http:
        await routed(http, f"{cluster.url(asker)}/{path}")

        async def check() -> bool:
            async with http.post(f"{cluster.url(asker)}/{path}", data=b"link?") as reply:
                assert reply.status == 200, await reply.text()
            return to in (await direct(cluster.url(asker)))["links"]

        await until(check, 10.0, f"node {asker}'s link to {to}")


async def test_a_cross_node_call_goes_over_the_direct_link(cluster: Cluster) -> None:
    listener = await open_listener(cluster.url(1), "echo")
    try:
        await linked(cluster, 0, "echo", "node1")
        before = await direct(cluster.url(0))
        async with sender(cluster.url(0), "echo") as http:
            for i in range(10):
                body = f"call {i}".encode()
                async with http.post(f"{cluster.url(0)}/echo", data=body) as reply:
                    assert reply.status == 200
                    assert await reply.read() == body[::-1]
        after = await direct(cluster.url(0))
        assert after["asks"] - before["asks"] == 10
        assert after["fell_back"] == before["fell_back"]
        assert (await direct(cluster.url(1)))["inbound"] >= 1
    finally:
        await listener.close()


async def _handshake(port: int, headers: str) -> bytes:
    """The head a node answers a link handshake with ``headers``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {LINK} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n".encode())
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()


async def test_the_link_refuses_a_wrong_or_absent_ticket(cluster: Cluster) -> None:
    port = cluster.nodes.nodes[1].port
    upgrade = "Connection: Upgrade\r\nUpgrade: tcp\r\nSoaprelay-Link: 1\r\n"
    absent = await _handshake(port, upgrade)
    assert absent.startswith(b"HTTP/1.1 401 "), absent
    wrong = await _handshake(port, upgrade + "Soaprelay-Ticket: " + "A" * 32 + "\r\n")
    assert wrong.startswith(b"HTTP/1.1 403 "), wrong
    not_a_link = await _handshake(port, "Soaprelay-Ticket: x\r\n")
    assert not_a_link.startswith(b"HTTP/1.1 400 "), not_a_link
    view = await health(cluster.url(1))
    assert "ticket" not in json.dumps(view).lower()
    assert view["direct"]["inbound"] <= 2  # only the nodes' own links, none of these


async def test_the_ticket_shows_in_no_log_health_or_feed(cluster: Cluster) -> None:
    client = await nats.connect(cluster.nats.urls[0])
    beats: asyncio.Queue[bytes] = asyncio.Queue()

    async def heard(msg: Any) -> None:
        await beats.put(msg.data)

    try:
        await client.subscribe(Subjects("test").nodes, cb=heard)
        beat = json.loads(await asyncio.wait_for(beats.get(), 5))
        ticket = beat["ticket"]
        assert len(ticket) >= 32
        for index in range(3):
            assert ticket not in cluster.nodes.process(index).stderr_text()
            assert ticket not in json.dumps(await health(cluster.url(index)))
            async with aiohttp.ClientSession() as http, http.get(f"{cluster.url(index)}/") as feed:
                assert ticket not in await feed.text()
    finally:
        await client.close()


async def test_a_stale_table_entry_falls_back_to_nats_and_the_call_succeeds(cluster: Cluster) -> None:
    """Node 0 is told (a heartbeat of node 1's, replayed with an entity added) that node 1
    holds listeners on "stale/x"; only node 2 does.  The direct ask to node 1 is answered
    "no listener" and goes over NATS, to node 2."""
    anchor = await open_listener(cluster.url(1), "echo")  # for node 0's link to node 1
    real = await open_listener(cluster.url(2), "stale/x")
    client = await nats.connect(cluster.nats.urls[0])
    beats: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    subjects = Subjects("test")

    async def heard(msg: Any) -> None:
        beat = json.loads(msg.data)
        if beat["node"] == "node1" and beat["entities"]:
            await beats.put(beat)

    try:
        await counted(cluster.url(0), "stale/x", 1)
        await linked(cluster, 0, "echo", "node1")
        await client.subscribe(subjects.nodes, cb=heard)
        before = await direct(cluster.url(0))
        async with sender(cluster.url(0), "stale/x") as http:
            for _ in range(20):  # node 1's own next heartbeat (each second) ends the lie
                beat = await asyncio.wait_for(beats.get(), 5)
                fact = dict(beat["entities"][0], path="stale/x", listeners=1000, dynamic=True)
                beat["entities"].append(fact)
                await client.publish(subjects.nodes, json.dumps(beat).encode())
                await client.flush()
                async with http.post(f"{cluster.url(0)}/stale/x", data=b"stale") as reply:
                    assert reply.status == 200, await reply.text()
                    assert await reply.read() == b"elats"
                if (await direct(cluster.url(0)))["fell_back"] > before["fell_back"]:
                    break
            else:
                pytest.fail("no ask went to node 1 on the stale entry")
    finally:
        await client.close()
        await real.close()
        await anchor.close()


async def test_direct_false_keeps_every_ask_on_nats(tmp_path_factory: pytest.TempPathFactory) -> None:
    with Children(tmp_path_factory.mktemp("nats-only")) as children:
        servers = NatsCluster(children, 1)
        nodes = RelayNodes(children, servers.urls, count=2, extra="direct = false")
        listener = await open_listener(nodes.url(1), "echo")
        try:
            async with sender(nodes.url(0), "echo") as http:
                await routed(http, f"{nodes.url(0)}/echo")
                for _ in range(5):
                    async with http.post(f"{nodes.url(0)}/echo", data=b"nats") as reply:
                        assert reply.status == 200 and await reply.read() == b"stan"
            assert (await health(nodes.url(0)))["direct"] is None
            assert (await _handshake(nodes.nodes[1].port, "Upgrade: tcp\r\n")).startswith(b"HTTP/1.1 404 ")
        finally:
            await listener.close()


async def _ticket(cluster: Cluster, node: str) -> str:
    """``node``'s ticket, as any cluster member reads it: in its heartbeat on NATS."""
    client = await nats.connect(cluster.nats.urls[0])
    beats: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def heard(msg: Any) -> None:
        beat = json.loads(msg.data)
        if beat["node"] == node:
            await beats.put(beat)

    try:
        await client.subscribe(Subjects("test").nodes, cb=heard)
        return str((await asyncio.wait_for(beats.get(), 5))["ticket"])
    finally:
        await client.close()


async def _member_link(cluster: Cluster, index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A link to node ``index`` opened by hand with its real ticket (a cluster member)."""
    port = cluster.nodes.nodes[index].port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {LINK} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                 f"Soaprelay-Link: 1\r\nSoaprelay-Ticket: {await _ticket(cluster, f'node{index}')}\r\n"
                 "Soaprelay-Node: test\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


async def test_a_member_that_breaks_the_framing_or_reads_no_answers_loses_its_link(cluster: Cluster) -> None:
    """Memory stays bounded even for a node with the ticket: a frame over the bound
    ends the link before it is held; answers nobody reads end it past MAX_UNSENT."""
    listener = await open_listener(cluster.url(1), "echo")
    try:
        await counted(cluster.url(1), "echo", 1)
        reader, writer = await _member_link(cluster, 1)
        writer.write(struct.pack("!II", MAX_FRAME + 1, 1) + b"x" * 1000)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the node
        writer.close()

        reader, writer = await _member_link(cluster, 1)
        port = cluster.nodes.nodes[1].port
        body = b"b" * 60_000
        try:
            for number in range(1, 800):  # about 47 MiB of answers, never read
                address = f"ws://127.0.0.1:{port}/$hc/echo?sb-hc-action=request&sb-hc-id=t{number}"
                command = RequestCommand(address, f"t{number}", "/echo", "POST", (), True, None)
                ask = Ask(AskKind.REQUEST, "test", "echo", "test", 10.0, command, body)
                writer.write(frame(number, ask.serialize()))
                await writer.drain()
        except ConnectionResetError:  # dropped while asks still went out: what is looked for
            pass

        async def dropped() -> bool:
            return "reads no answers; dropped" in cluster.nodes.process(1).stderr_text()

        await until(dropped, 20.0, "the unread link dropped")
        writer.close()
        assert cluster.nodes.process(1).tracebacks() == []
    finally:
        await listener.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "ftp://127.0.0.1:1", "http://[::1"])
async def test_an_unreachable_node_in_the_table_costs_no_call(cluster: Cluster, url: str) -> None:
    """A heartbeat names node "ghost" at ``url`` (nothing there, or no http URL at all)
    with 1,000 listeners on "echo": node 0's links to it fail, its calls go over NATS to
    node 1's listener, every one answered."""
    listener = await open_listener(cluster.url(1), "echo")
    client = await nats.connect(cluster.nats.urls[0])
    subjects = Subjects("test")
    fact = {"path": "echo", "listeners": 1000, "kind": "request-response", "discovery": "private",
            "dynamic": False, "auth": True, "max": 0, "timeout": 10}
    ghost = {"v": 1, "ns": "test", "node": "ghost", "url": url, "entities": [fact], "leaving": False,
             "ticket": "g" * 32}
    try:
        await counted(cluster.url(0), "echo", 1)
        async with sender(cluster.url(0), "echo") as http:
            await routed(http, f"{cluster.url(0)}/echo")
            for i in range(20):
                await client.publish(subjects.nodes, json.dumps(ghost).encode())
                await client.flush()
                async with http.post(f"{cluster.url(0)}/echo", data=f"g{i}".encode()) as reply:
                    assert reply.status == 200, await reply.text()
                    assert await reply.read() == f"g{i}".encode()[::-1]
        assert "ghost" in (await health(cluster.url(0)))["peers"]
        assert "ghost" not in (await direct(cluster.url(0)))["links"]
        assert cluster.nodes.process(0).tracebacks() == []
    finally:
        await client.publish(subjects.nodes, json.dumps({**ghost, "leaving": True}).encode())
        await client.close()
        await listener.close()


async def test_a_killed_target_fails_the_call_in_flight_at_once_and_the_next_go_elsewhere(
    cluster: Cluster,
) -> None:
    """Last in the module: it kills node 1 (and starts it again)."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def stuck(context: RelayedHttpListenerContext) -> None:
        await context.request.read()
        entered.set()
        await release.wait()

    victim_listener = await open_listener(cluster.url(1), "kill/me", stuck)
    listeners = [victim_listener]
    try:
        await counted(cluster.url(0), "kill/me", 1)
        anchor = await open_listener(cluster.url(1), "echo")
        listeners.append(anchor)
        await linked(cluster, 0, "echo", "node1")
        before = await direct(cluster.url(0))
        async with sender(cluster.url(0), "kill/me") as http:
            in_flight = asyncio.ensure_future(http.post(f"{cluster.url(0)}/kill/me", data=b"doomed"))
            await asyncio.wait_for(entered.wait(), 5)
            assert (await direct(cluster.url(0)))["asks"] > before["asks"]
            killed = time.monotonic()
            cluster.nodes.process(1).signal(signal.SIGKILL)
            async with await asyncio.wait_for(in_flight, 5) as reply:
                text = await reply.text()
                assert reply.status == 502 and "node1 went away" in text, (reply.status, text)
            assert time.monotonic() - killed < 1.0  # the link's end, not a heartbeat's absence
            listeners.append(await open_listener(cluster.url(2), "kill/me"))
            await counted(cluster.url(0), "kill/me", 1)
            for i in range(10):
                async with http.post(f"{cluster.url(0)}/kill/me", data=f"after {i}".encode()) as after:
                    assert after.status == 200, await after.text()
                    assert await after.read() == f"after {i}".encode()[::-1]
    finally:
        release.set()
        for listener in listeners:
            await listener.close()
        cluster.nodes.start(1)  # the same name and port again
    assert cluster.nodes.process(0).tracebacks() == []
    assert cluster.nodes.process(2).tracebacks() == []
