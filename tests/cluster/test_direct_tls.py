"""Direct node-to-node links between nodes that serve HTTPS (``https://`` node URLs).

A cluster of its own: one nats-server and three nodes serving TLS with one
self-signed certificate.  Nodes 0 and 1 trust it (``SSL_CERT_FILE``, as the system's
trust store would); node 2 has only the system's own trust.  What a user sees: a
cross-node call between trusting nodes goes over a link (a node's port speaks only
TLS, so an open link is a TLS link whose certificate was checked); a node that does
not trust the other's certificate makes no link, says why in its log, and asks over
NATS, every call answered.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from hc.asyncio import HybridConnectionListener
from tests.cluster.conftest import PROVIDER, echo, until
from tests.support.certs import self_signed
from tests.support.cluster import NatsCluster, RelayNodes, token
from tests.support.procs import Children


@dataclass
class TlsNodes:
    nodes: RelayNodes
    cert: str

    def client(self, path: str = "") -> aiohttp.ClientSession:
        """A sender trusting the nodes' certificate (with ``path``'s token when given)."""
        trust = ssl.create_default_context(cafile=self.cert)
        headers = {"ServiceBusAuthorization": token(self.nodes.url(0), path)} if path else {}
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust), headers=headers)

    async def direct(self, index: int) -> dict[str, Any]:
        async with self.client() as http, http.get(f"{self.nodes.url(index)}/$health") as reply:
            assert reply.status == 200
            view = (await reply.json())["direct"]
            assert isinstance(view, dict)
            return view


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNodes]:
    with Children(tmp_path_factory.mktemp("tls-cluster")) as children:
        cert, key = self_signed(children.folder)
        servers = NatsCluster(children, 1)
        yield TlsNodes(RelayNodes(children, servers.urls, count=3, tls=(cert, key), untrusting={2}), cert)


@pytest.fixture
async def listener(tls: TlsNodes, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An echo listener on node 1 (the SDK checks the nodes' certificate too)."""
    monkeypatch.setenv("SSL_CERT_FILE", tls.cert)
    listener = HybridConnectionListener(f"{tls.nodes.url(1)}/echo", PROVIDER)
    listener.request_handler = echo
    await listener.open()
    yield listener
    await listener.close()


async def _call(http: aiohttp.ClientSession, url: str, body: bytes) -> None:
    async with http.post(url, data=body) as reply:
        assert reply.status == 200, await reply.text()
        assert await reply.read() == body[::-1]


async def _answered(http: aiohttp.ClientSession, url: str) -> bool:
    """True once a call to ``url`` reaches a listener (its interest crossed NATS)."""
    async with http.post(url, data=b"ping") as reply:
        await reply.read()
        return reply.status not in (404, 502)


@pytest.mark.usefixtures("listener")
async def test_between_trusting_nodes_the_call_goes_over_a_tls_link(tls: TlsNodes) -> None:
    url = f"{tls.nodes.url(0)}/echo"
    async with tls.client("echo") as http:
        await until(lambda: _answered(http, url), 5.0, f"{url} routed")

        async def linked() -> bool:
            await _call(http, url, b"link?")
            return "node1" in (await tls.direct(0))["links"]

        await until(linked, 10.0, "node 0's link to node 1")
        before = await tls.direct(0)
        for i in range(10):
            await _call(http, url, f"over tls {i}".encode())
        after = await tls.direct(0)
    assert after["asks"] - before["asks"] == 10
    assert after["fell_back"] == before["fell_back"]
    assert (await tls.direct(1))["inbound"] >= 1
    assert "no direct link" not in tls.nodes.process(0).stderr_text()


@pytest.mark.usefixtures("listener")
async def test_a_node_that_does_not_trust_the_certificate_asks_over_nats(tls: TlsNodes) -> None:
    url = f"{tls.nodes.url(2)}/echo"
    node2 = tls.nodes.process(2)
    async with tls.client("echo") as http:
        await until(lambda: _answered(http, url), 5.0, f"{url} routed")

        async def refused() -> bool:
            await _call(http, url, b"refused?")
            return "no direct link to node1" in node2.stderr_text()

        await until(refused, 10.0, "node 2's log of the refused certificate")
        for i in range(10):
            await _call(http, url, f"over nats {i}".encode())
    log = node2.stderr_text()
    assert "CERTIFICATE_VERIFY_FAILED" in log and "asking over NATS" in log
    view = await tls.direct(2)
    assert view["links"] == [] and view["asks"] == 0
    assert node2.tracebacks() == []
