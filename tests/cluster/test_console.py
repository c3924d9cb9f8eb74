"""The console and the metrics across nodes (issue 13, item 6), on a real cluster.

Three nats-server processes, three ``soaprelay serve`` nodes capturing ``echo``'s
bodies, haproxy in front (the listener connects through it).  The console API on
node0 shows every node's calls and listeners, each with its node; ``/$metrics``
on each node counts that node's calls only, under its ``node`` label; a node
killed shows as missing, and the page never waits past the deadline.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.cluster.subjects import Subjects
from tests.cluster.conftest import Cluster, open_listener, routed, sender, until
from tests.support.cluster import NatsCluster, RelayNodes, start_haproxy, token
from tests.support.procs import Children
from tests.support.relay import TEST_KEY

CAPTURE = '[observe]\ncapture = ["echo"]\n'


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Children(tmp_path_factory.mktemp("console")) as children:
        servers = NatsCluster(children)
        nodes = RelayNodes(children, servers.urls, extra=CAPTURE)
        lb = start_haproxy(children, children.folder, [n.port for n in nodes.nodes])
        yield Cluster(servers, nodes, lb, children)


async def console(base: str, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    """The console API of node ``base``, with a Manage token, as the page calls it."""
    headers = {"Authorization": token(base)}
    async with aiohttp.ClientSession(headers=headers) as http, http.request(
        method, f"{base}/$console/api/{path}", json=body
    ) as reply:
        return reply.status, json.loads(await reply.read())


async def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/$metrics`` of node ``base``: (sample name, sorted labels) -> value."""
    async with aiohttp.ClientSession(headers={"Authorization": token(base)}) as http, http.get(
        f"{base}/$metrics"
    ) as reply:
        assert reply.status == 200
        text = await reply.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


async def test_calls_through_two_nodes_show_in_one_nodes_inspector(cluster: Cluster) -> None:
    listener = await open_listener(cluster.lb, "echo")
    try:
        for index, tag in ((0, "via-node0"), (1, "via-node1")):
            async with sender(cluster.url(index), "echo") as http:
                await routed(http, f"{cluster.url(index)}/echo")
                async with http.post(f"{cluster.url(index)}/echo/{tag}", data=tag.encode()) as reply:
                    assert reply.status == 200
                    assert await reply.read() == tag.encode()[::-1]
        status, view = await console(cluster.url(0), "calls")
        assert status == 200
        mine = {c["path"]: c for c in view["calls"] if c["path"].startswith("/echo/via-")}
        assert {p: c["node"] for p, c in mine.items()} == {
            "/echo/via-node0": "node0", "/echo/via-node1": "node1"}
        assert {n["name"]: n["state"] for n in view["nodes"]} == {
            "node0": "here", "node1": "ok", "node2": "ok"}
        # the cursor names each node's newest call: asked again, nothing is shown twice
        status, again = await console(cluster.url(0), f"calls?after={view['cursor']}")
        assert status == 200 and not [c for c in again["calls"] if c["path"].startswith("/echo/via-")]

        # the other node's call, in detail: its bodies (capture is on), its token masked
        remote = mine["/echo/via-node1"]
        status, detail = await console(cluster.url(0), f"calls/{remote['seq']}?node=node1")
        assert status == 200 and detail["node"] == "node1" and detail["captured"]
        assert detail["requestBody"] == "via-node1" and detail["responseBody"] == "1edon-aiv"
        auth = {n.lower(): v for n, v in detail["requestHeaders"]}
        assert auth["servicebusauthorization"] == "***"
        assert TEST_KEY not in json.dumps(detail) and "sig=" not in json.dumps(detail)
        # ... and replayed from node0
        status, replayed = await console(cluster.url(0), f"calls/{remote['seq']}/replay?node=node1",
                                         "POST", {})
        assert status == 200, replayed
        assert replayed["status"] == 200 and replayed["response"] == "1edon-aiv"

        # the namespace: the listener with the node it is on
        status, ns = await console(cluster.url(0), "namespace")
        assert status == 200
        echo = next(e for e in ns["entities"] if e["path"] == "echo")
        assert len(echo["listeners"]) == 1 and echo["listeners"][0]["node"] in ("node0", "node1", "node2")
        online = next(e for e in (await console(cluster.url(1), "namespace"))[1]["entities"]
                      if e["path"] == "echo")
        assert online["listeners"] == echo["listeners"]  # the same view from any node
        status, charts = await console(cluster.url(2), "charts")
        assert status == 200
        assert sum(s[1] for s in charts["entities"]["echo"]) >= 2
    finally:
        await listener.close()


async def test_each_nodes_metrics_count_its_own_calls_under_its_node_label(cluster: Cluster) -> None:
    listener = await open_listener(cluster.url(2), "echo")
    try:
        for index in range(3):
            async with sender(cluster.url(index), "echo") as http:
                await routed(http, f"{cluster.url(index)}/echo")
        before = [await scrape(cluster.url(i)) for i in range(3)]
        sent = (3, 2, 0)
        for index, count in enumerate(sent):
            async with sender(cluster.url(index), "echo") as http:
                for _ in range(count):
                    async with http.post(f"{cluster.url(index)}/echo", data=b"m") as reply:
                        assert reply.status == 200
        for index, count in enumerate(sent):
            node = f"node{index}"
            after = await scrape(cluster.url(index))
            key = ("soaprelay_sender_connections_success_total",
                   (("entity_name", "echo"), ("node", node)))
            assert after[key] - before[index].get(key, 0) == count
            labels = [dict(labels) for (_, labels) in after]
            assert labels and all(label.get("node") == node for label in labels)
    finally:
        await listener.close()


async def test_malformed_console_messages_are_dropped_and_logged(cluster: Cluster) -> None:
    client = await nats.connect(cluster.nats.urls[0])
    try:
        subject = Subjects("test").console
        await client.publish(subject, b"not json")
        await client.publish(subject, b'{"v":1,"ns":"other","kind":"calls","origin":"x","after":{}}')
        await client.publish(subject, b'{"v":1,"ns":"test","kind":"calls","origin":"x","after":[]}')
        await client.flush()
        node2 = cluster.nodes.process(2)

        async def logged() -> bool:
            return "dropped a malformed or foreign message" in node2.stderr_text()

        await until(logged, 5.0, "the drop logged")
        status, _ = await console(cluster.url(2), "namespace")
        assert status == 200 and node2.tracebacks() == []
    finally:
        await client.close()


async def test_a_killed_node_shows_as_missing_not_as_an_error(cluster: Cluster) -> None:
    cluster.nodes.process(2).signal(signal.SIGKILL)
    started = time.monotonic()
    for view in ("namespace", "charts", "calls"):
        status, answer = await console(cluster.url(0), view)
        assert status == 200, answer
        assert {n["name"]: n["state"] for n in answer["nodes"]}["node2"] == "missing"
        assert {n["name"]: n["state"] for n in answer["nodes"]}["node1"] == "ok"
    assert time.monotonic() - started < 3 * 2.0  # each view waits 1 s at most for node2
    status, answer = await console(cluster.url(0), "calls/1?node=node2")
    assert status == 504 and "node2" in json.dumps(answer)

    async with aiohttp.ClientSession() as http:
        async def forgotten() -> bool:
            async with http.get(f"{cluster.url(0)}/$health") as reply:
                return "node2" not in json.loads(await reply.read())["peers"]
        await until(forgotten, 10.0, "node2 forgotten by the heartbeats")
    started = time.monotonic()
    status, answer = await console(cluster.url(0), "namespace")
    assert status == 200 and {n["name"]: n["state"] for n in answer["nodes"]}["node2"] == "missing"
    assert time.monotonic() - started < 1.0  # no node left to wait for
    for index in (0, 1):
        assert cluster.nodes.process(index).tracebacks() == []
