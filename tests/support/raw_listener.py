"""A hand-driven Hybrid Connections listener on plain ``websockets``, for relay tests.

It speaks the protocol directly (no code from ``bindings``), so relay tests can
check each frame and misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

Reply = tuple[int, dict[str, str], bytes]
Serve = Callable[[dict[str, Any], bytes], Awaitable[Reply]]


@dataclass
class Received:
    command: dict[str, Any]
    body: bytes


async def echo(command: dict[str, Any], body: bytes) -> Reply:
    """Answer with the body and a JSON summary header of what arrived."""
    summary = json.dumps({"target": command.get("requestTarget"), "method": command.get("method")})
    return 200, {"Content-Type": "application/octet-stream", "X-Seen": summary}, body


class RawListener:
    """Connects, serves requests with ``serve`` and records everything it got.

    ``announced`` holds each ``request`` command as it came on the control channel
    (address-only ones included); ``received`` holds the full commands it served
    (for an address-only request, the one fetched at the rendezvous) with their
    bodies; ``failures`` the rendezvous sockets the relay closed on it, ``refused`` the
    rendezvous it refused.
    """

    def __init__(self, ws_base: str, path: str, token: str, serve: Serve = echo,
                 query: str = "") -> None:
        self.url = f"{ws_base}/$hc/{path}?sb-hc-action=listen{query}"
        self.token, self.serve = token, serve
        self.announced: list[dict[str, Any]] = []
        self.received: list[Received] = []
        self.failures: list[ConnectionClosed] = []
        #: Rendezvous the relay refused (403: the sender gave up and its id is void).
        self.refused: list[InvalidStatus] = []
        self.ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._answers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self.ws = await websockets.connect(
            self.url, additional_headers={"ServiceBusAuthorization": self.token}, max_size=None
        )
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None and self._task is not None
        self._task.cancel()
        for task in self._answers:
            task.cancel()
        await asyncio.gather(*self._answers, return_exceptions=True)  # none left unretrieved
        await self.ws.close()

    async def _loop(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            command = json.loads(message)
            if "request" in command:
                request = command["request"]
                self.announced.append(request)
                body = await _binary(self.ws) if request.get("body") else b""
                task = asyncio.create_task(self._answer(request, body))
                self._answers.add(task)
                task.add_done_callback(self._answers.discard)

    async def _answer(self, request: dict[str, Any], body: bytes) -> None:
        assert self.ws is not None
        if "method" not in request:  # address-only: fetch it at the rendezvous
            try:
                await self._rendezvous(request["address"])
            except ConnectionClosed as exc:  # e.g. 1009 when the sender's body is too big
                self.failures.append(exc)
            except InvalidStatus as exc:  # the sender gave up first: its id is void
                self.refused.append(exc)
            return
        self.received.append(Received(request, body))
        status, headers, reply = await self.serve(request, body)
        if len(reply) > 64 * 1024:
            async with websockets.connect(request["address"], max_size=None) as rv:
                await rv.send(_response(request["id"], status, headers, True))
                await rv.send(reply)
            return
        await self.ws.send(_response(request["id"], status, headers, bool(reply)))
        await self.ws.send(reply)  # hyco-https style: a 0-byte message even after body:false

    async def _rendezvous(self, address: str) -> None:
        async with websockets.connect(address, max_size=None) as rv:
            request = json.loads(await rv.recv())["request"]
            body = await _binary(rv) if request.get("body") else b""
            self.received.append(Received(request, body))
            status, headers, reply = await self.serve(request, body)
            await rv.send(_response(request["id"], status, headers, True))
            await rv.send(reply)


async def _binary(ws: ClientConnection) -> bytes:
    """The next message, which the protocol says is a binary body."""
    message = await ws.recv()
    assert isinstance(message, bytes), f"a text frame where a body was due: {message!r}"
    return message


def _response(request_id: str, status: int, headers: dict[str, str], body: bool) -> str:
    return json.dumps(
        {"response": {"requestId": request_id, "statusCode": status,
                      "responseHeaders": headers, "body": body}}
    )
