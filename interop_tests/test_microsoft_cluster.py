"""Microsoft's hyco-https and hyco-ws with their listener on one relay node and their
sender on another (docs/cluster.md): the unmodified npm packages, a real NATS cluster.

hyco-https answers a small request inline (it crossed inside NATS), fetches a large one
from the rendezvous on the SENDER's node, and opens that rendezvous for a response over
64 KiB; hyco-ws's WebSocket sender on node 0 reaches our SDK listener on node 1.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Iterator

import aiohttp
import pytest

from hc.asyncio import HybridConnectionListener, TokenProvider
from tests.support.cluster import NatsCluster, RelayNodes, token
from tests.support.node import NODE_SKIP_REASON, NodeProcess, node_available, run_node
from tests.support.procs import Children
from tests.support.relay import TEST_KEY, TEST_KEY_NAME

pytestmark = [pytest.mark.node, pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON)]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayNodes]:
    with Children(tmp_path_factory.mktemp("hyco-cluster")) as children:
        nats = NatsCluster(children, 2)
        yield RelayNodes(children, nats.urls, count=2)


async def _routed(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(100):
        async with http.post(url, data=b"ping") as reply:
            if reply.status != 502:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never routed")


async def test_hyco_https_listener_on_another_node(nodes: RelayNodes) -> None:
    node1 = nodes.url(1).removeprefix("http://")
    with NodeProcess("https_echo_listener.js", "--relay", node1, "--path", "echo", "--key", TEST_KEY):
        async with aiohttp.ClientSession(headers={"ServiceBusAuthorization": token(nodes.url(0), "echo")}) as http:
            await _routed(http, f"{nodes.url(0)}/echo")
            async with http.post(f"{nodes.url(0)}/echo", data=b"<small/>",
                                 headers={"Content-Type": "text/xml"}) as reply:
                assert reply.status == 200
                assert await reply.read() == b"<small/>"
                assert reply.headers["Content-Type"].startswith("text/xml")
            big = bytes(range(256)) * 800
            async with http.post(f"{nodes.url(0)}/echo", data=io.BytesIO(big)) as reply:
                assert reply.status == 200 and await reply.read() == big
            async with http.get(f"{nodes.url(0)}/echo/big?size=300000") as reply:
                assert reply.status == 200
                assert await reply.read() == bytes(i % 251 for i in range(300000))
            async with http.get(f"{nodes.url(0)}/echo/status/418") as reply:
                assert reply.status == 418


async def test_hyco_ws_sender_to_a_listener_on_another_node(nodes: RelayNodes) -> None:
    provider = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)
    listener = HybridConnectionListener(f"{nodes.url(1)}/ws", provider)

    async def echo() -> None:
        stream = await listener.accept_connection()
        assert stream is not None
        while (data := await stream.read()):
            await stream.write(data)
        await stream.close()

    await listener.open()
    serving = asyncio.ensure_future(echo())
    try:
        async with aiohttp.ClientSession(headers={"ServiceBusAuthorization": token(nodes.url(0), "ws")}) as http:
            await _routed(http, f"{nodes.url(0)}/ws")
        done = await asyncio.to_thread(
            run_node, "ws_sender.js", "--relay", nodes.url(0).removeprefix("http://"), "--path", "ws",
            "--key", TEST_KEY, "--binary", base64.b64encode(b"across nodes").decode(), timeout=30,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        received = [json.loads(line) for line in done.stdout.splitlines()[1:]]
        assert {"type": "binary", "data": base64.b64encode(b"across nodes").decode()} in received
    finally:
        serving.cancel()
        await listener.close()
