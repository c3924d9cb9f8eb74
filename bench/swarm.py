"""Many light listener control channels in one process (S4 idle listeners, S5 subscribers).

``python -m bench.swarm RELAY_BASE SPEC_JSON`` with SPEC_JSON
``{"entities": ["e1", ...], "per_entity": 25, "kind": "event", "ping_interval": 30,
"parallel": 32, "raw": false}`` opens ``per_entity`` control channels on each entity with
websockets clients (a Manage token in ``ServiceBusAuthorization``; dynamic
entities get ``sb-relay-kind``).  Each answers every ``request`` inline with
``202 Accepted`` and no body, the way an event subscriber acknowledges.  With
``"raw": true`` they are ``bench.swarm_raw`` protocols instead (S5: far less
CPU per answer; no pings of their own).

Protocol on stdio: prints ``READY``; on ``connect`` opens them all (at most
``parallel`` handshakes at once) and prints ``CONNECTED {"seconds": s, "count": n}``;
then keeps them open until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

from bench.aio import run
from bench.keys import token
from bench.procs import raise_nofile
from bench.swarm_raw import RawListener, open_raw


def _ack(request_id: str) -> str:
    return json.dumps({"response": {"requestId": request_id, "statusCode": 202,
                                    "statusDescription": "Accepted", "responseHeaders": {}, "body": False}},
                      separators=(",", ":"))


async def _serve(ws: ClientConnection) -> None:
    """Answer every request with 202 (reading the body message that follows ``"body": true``)."""
    async for message in ws:
        if isinstance(message, bytes):
            continue
        request = json.loads(message).get("request")
        if request is None:
            continue
        if request.get("body"):
            await ws.recv()
        await ws.send(_ack(request["id"]))


async def _open_raw(url: str, auth: dict[str, str]) -> RawListener:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return await open_raw(parts.hostname, parts.port, f"{parts.path}?{parts.query}", auth)


async def main(relay_base: str, spec: dict[str, Any]) -> None:
    raise_nofile()
    ws_base = relay_base.replace("http", "ws", 1)
    auth = {"ServiceBusAuthorization": token(relay_base)}
    interval = spec.get("ping_interval")
    kind = spec.get("kind")
    urls = [
        f"{ws_base}/$hc/{entity}?sb-hc-action=listen" + (f"&sb-relay-kind={kind}" if kind else "")
        for entity in spec["entities"]
        for _ in range(spec["per_entity"])
    ]
    gate = asyncio.Semaphore(spec.get("parallel", 32))
    sockets: list[ClientConnection | RawListener] = []
    tasks: set[asyncio.Task[None]] = set()

    async def open_one(url: str) -> None:
        if spec.get("raw"):
            async with gate:
                sockets.append(await _open_raw(url, auth))
            return
        async with gate:
            ws = await connect(url, additional_headers=auth, compression=None, open_timeout=60,
                               ping_interval=interval, ping_timeout=interval)
        sockets.append(ws)
        task = asyncio.get_running_loop().create_task(_serve(ws))
        tasks.add(task)

    print("READY", flush=True)
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.readline()
    started = time.monotonic()
    await asyncio.gather(*(open_one(url) for url in urls))
    print("CONNECTED " + json.dumps({"seconds": time.monotonic() - started, "count": len(sockets)}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    run(main(sys.argv[1], json.loads(sys.argv[2])))
