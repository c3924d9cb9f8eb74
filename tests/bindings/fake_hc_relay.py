"""A scripted stand-in for the relay's side of the HC protocol, for listener tests.

It plays only what a test asks: accept (or refuse) listener handshakes, hand
each control channel to the test, and run a test-given coroutine when the
listener opens a rendezvous or accept address.  Port 0 on 127.0.0.1; tests
wait on its queues and futures, never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event

Rendezvous = Callable[[ServerConnection], Awaitable[None]]


class RelayConnection(ServerConnection):
    """The relay's end of a WebSocket: puts each ping it gets in ``pings``.

    With ``answer_pings`` False it stops sending pongs, like a relay that hangs.
    """

    def __init__(self, protocol: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, *args, **kwargs)
        self.pings: asyncio.Queue[bytes] = asyncio.Queue()
        self.answer_pings = True
        send_frame = protocol.send_frame

        def send_unless_muted(frame: Frame) -> None:
            if frame.opcode is not Opcode.PONG or self.answer_pings:
                send_frame(frame)

        protocol.send_frame = send_unless_muted

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings.put_nowait(bytes(event.data))
        super().process_event(event)


class ScriptedRelay:
    """``async with ScriptedRelay() as relay``: ``relay.ws_base``, ``await relay.next_control()``."""

    def __init__(self) -> None:
        self.controls: asyncio.Queue[RelayConnection] = asyncio.Queue()
        self.handshakes: list[Request] = []
        self.refusals: list[tuple[int, str, bytes]] = []  # consumed one per handshake
        self.rendezvous: dict[str, Rendezvous] = {}
        self.rejected_accepts: asyncio.Queue[dict[str, list[str]]] = asyncio.Queue()
        self._server: Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process,
            compression=None, max_size=None, select_subprotocol=_first_offered,
            create_connection=RelayConnection,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def address(self, action: str, ident: str, path: str = "svc") -> str:
        return f"{self.ws_base}/$hc/{path}?sb-hc-action={action}&sb-hc-id={ident}"

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer the next listener handshake with ``status`` and the relay's JSON error body."""
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self.refusals.append((status, code, body))

    async def next_control(self, timeout: float = 5.0) -> RelayConnection:
        return await asyncio.wait_for(self.controls.get(), timeout)

    def _process(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        if query.get("sb-hc-action") == ["listen"]:
            self.handshakes.append(request)
            if self.refusals:
                status, _, body = self.refusals.pop(0)
                headers = Headers([("Content-Type", "application/json")])
                return Response(status, "Refused", headers, body)
        if "sb-hc-statusCode" in query:  # a listener refusing a WebSocket sender (§4)
            self.rejected_accepts.put_nowait(query)
            return connection.respond(410, "rejected\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        action = query.get("sb-hc-action", [""])[0]
        if action == "listen":
            assert isinstance(ws, RelayConnection)
            await self.controls.put(ws)
            await ws.wait_closed()
        else:
            script = self.rendezvous.pop(query.get("sb-hc-id", [""])[0], None)
            if script is None:
                await ws.close(1008, "unknown rendezvous")
                return
            await script(ws)


def _first_offered(connection: ServerConnection, offered: Any) -> Any:
    """Echo the first subprotocol the client offered, like the relay does (PROTOCOL.md §4)."""
    return offered[0] if offered else None


async def recv_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str), f"expected a command, got {len(message)} bytes"
    result: dict[str, Any] = json.loads(message)
    return result


async def recv_bytes(ws: Any, timeout: float = 5.0) -> bytes:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, bytes), f"expected a binary body, got text {message!r}"
    return message


def request_json(
    ident: str, address: str, *, method: str = "POST", target: str = "/svc",
    headers: dict[str, str] | None = None, body: bool = True,
) -> str:
    return json.dumps({"request": {
        "address": address, "id": ident, "requestTarget": target, "method": method,
        "requestHeaders": headers or {"Content-Type": "text/plain"}, "body": body,
        "remoteEndpoint": {"address": "10.1.2.3", "port": 4242},
    }})
