"""The cluster tests' shared parts: one real cluster per module (NATS x3, relay nodes x3,
haproxy), listeners, and waits on what the cluster has learnt (never sleeps)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from hc.asyncio import HybridConnectionListener, RelayedHttpListenerContext, TokenProvider
from tests.support.cluster import NatsCluster, RelayNodes, start_haproxy, token
from tests.support.procs import Children
from tests.support.relay import TEST_KEY, TEST_KEY_NAME

PROVIDER = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)

if shutil.which("nats-server") is None or shutil.which("haproxy") is None:  # pragma: no cover
    pytest.fail("nats-server and haproxy are needed (apt-packages.txt; make test installs them)",
                pytrace=False)


@dataclass
class Cluster:
    nats: NatsCluster
    nodes: RelayNodes
    lb_port: int
    children: Children

    @property
    def lb(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def url(self, index: int) -> str:
        return self.nodes.url(index)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Children(tmp_path_factory.mktemp("cluster")) as children:
        nats = NatsCluster(children)
        nodes = RelayNodes(children, nats.urls)
        lb = start_haproxy(children, children.folder, [n.port for n in nodes.nodes])
        yield Cluster(nats, nodes, lb, children)


async def echo(context: RelayedHttpListenerContext) -> None:
    body = await context.request.read()
    context.response.headers.append(("X-Listener", context.request.header("X-Tag") or ""))
    await context.response.write(body[::-1])


async def open_listener(base: str, path: str, handler: Callable[..., Any] = echo,
                        ) -> HybridConnectionListener:
    listener = HybridConnectionListener(f"{base}/{path}", PROVIDER)
    listener.request_handler = handler
    await listener.open()
    return listener


def sender(base: str, path: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers={"ServiceBusAuthorization": token(base, path)})


async def health(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/$health") as reply:
        assert reply.status == 200
        return dict(json.loads(await reply.read()))


async def until(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll the async ``check`` until it returns a truthy value (readiness, not a fixed wait)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or check}")
        await asyncio.sleep(0.05)


async def counted(base: str, path: str, listeners: int) -> None:
    """Wait until node ``base`` knows ``listeners`` listeners on ``path`` cluster-wide."""
    async def check() -> bool:
        return (await health(base))["listeners"].get(path, 0) == listeners
    await until(check, what=f"{base} counts {listeners} listeners on {path}")


async def routed(session: aiohttp.ClientSession, url: str) -> None:
    """Wait until a call to ``url`` reaches a listener (NATS interest crosses its routes;
    a dynamic entity made on another node is known here from that node's heartbeat: 404
    until then)."""
    async def check() -> bool:
        async with session.post(url, data=b"ping") as reply:
            await reply.read()
            return reply.status not in (404, 502)
    await until(check, 5.0, f"{url} routed")
