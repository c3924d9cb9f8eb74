"""A graceful stop (SIGTERM) of a listener's node in a cluster.

As on one relay, the calls in flight finish and new ones go elsewhere: a call another
node relayed here before the stop is answered (over the direct link or over NATS,
the way it came), the node waits for it as for its own calls, and while it drains
the other nodes send their new calls to a listener on another node.  Each test runs
a cluster of its own (one nats-server, three nodes), once with direct links and once
with every ask on NATS.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from hc.asyncio import RelayedHttpListenerContext
from tests.cluster.conftest import counted, open_listener, routed, sender, until
from tests.support.cluster import NatsCluster, RelayNodes
from tests.support.procs import Children

SLOW = b"finish me"


@pytest.mark.parametrize("extra", ["", "direct = false"], ids=["direct", "nats"])
async def test_a_stopping_node_finishes_the_calls_relayed_to_it_and_new_ones_go_elsewhere(
        extra: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    with Children(tmp_path_factory.mktemp("graceful")) as children:
        servers = NatsCluster(children, 1)
        nodes = RelayNodes(children, servers.urls, count=3, extra=extra, shutdown_grace=30)
        started, go = asyncio.Event(), asyncio.Event()

        async def draining_node(context: RelayedHttpListenerContext) -> None:
            body = await context.request.read()
            if body == SLOW:  # the call in flight when the node is told to stop
                started.set()
                await go.wait()
                await context.response.write(body[::-1])
            else:  # no new call may reach the stopping node
                await context.response.write(b"reached the stopping node")

        doomed = await open_listener(nodes.url(1), "echo", draining_node)
        async with sender(nodes.url(0), "echo") as http:
            await routed(http, f"{nodes.url(0)}/echo")
            started.clear()  # (routed's pings reached it too)
            slow = asyncio.ensure_future(http.post(f"{nodes.url(0)}/echo", data=SLOW))
            await asyncio.wait_for(started.wait(), 10)
            spare = await open_listener(nodes.url(2), "echo")
            try:
                await counted(nodes.url(0), "echo", 2)
                node1 = nodes.process(1)
                node1.popen.send_signal(signal.SIGTERM)
                await until(lambda: _logged(node1.stderr_text(), "relay stopping: 1 calls in flight"),
                            10.0, "node 1 waiting for the call relayed to it")
                for i in range(10):
                    body = f"new call {i}".encode()
                    async with http.post(f"{nodes.url(0)}/echo", data=body) as reply:
                        assert reply.status == 200, await reply.text()
                        assert await reply.read() == body[::-1]
                go.set()
                async with await slow as reply:
                    assert reply.status == 200, await reply.text()
                    assert await reply.read() == SLOW[::-1]
                answered = time.monotonic()
                assert await asyncio.to_thread(node1.popen.wait, 30) == 0
                # (it used to wait ~15 s more for the other nodes' direct links to end)
                assert time.monotonic() - answered < 8, "the node lingered after its drain"
                assert "cut off" not in node1.stderr_text()
                assert node1.tracebacks() == [] and nodes.process(0).tracebacks() == []
            finally:
                go.set()
                await spare.close()
                await doomed.close()


async def _logged(text: str, line: str) -> bool:
    """(An awaitable check for ``until``.)"""
    return line in text

