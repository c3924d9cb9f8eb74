"""The relay's side of the SDK's sockets, in memory: a ControlChannel(Role.RELAY) per socket.

Each socket the SDK opens through :func:`hc.asyncio.memory.memory_connector`
arrives here; its handshake is answered (101, or a refusal the test queued) and
the test gets a :class:`RelaySide` to drive.  No socket anywhere.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

from hc.asyncio.connection import Connector
from hc.asyncio.memory import MemoryPeer, memory_connector
from hc.events import Event
from hc.framing import Side, WebSocketEndpoint
from hc.handshake import Headers, Target, accept_response, parse_request_head
from hc.protocol import ControlChannel, Role


class RelaySide:
    """One socket's relay end: ``channel`` to send with, ``next_event()`` to read."""

    def __init__(self, peer: MemoryPeer, path: str, headers: Headers, plain: bool) -> None:
        self.peer, self.path, self.headers = peer, path, headers
        self.query = parse_qs(urlsplit(path).query)
        self.channel: ControlChannel | WebSocketEndpoint = (
            WebSocketEndpoint(Side.SERVER) if plain else ControlChannel(Role.RELAY)
        )
        self._events: asyncio.Queue[Event | object] = asyncio.Queue()

    def flush(self) -> None:
        for data in self.channel.data_to_send():
            self.peer.write(data)

    async def pump(self) -> None:
        while data := await self.peer.read_some():
            try:
                self.channel.receive_data(data)
            finally:
                self.flush()
                for event in self.channel.events_received():
                    self._events.put_nowait(event)
        self.channel.receive_eof()
        for event in self.channel.events_received():
            self._events.put_nowait(event)

    async def next_event(self, timeout: float = 5.0) -> object:
        return await asyncio.wait_for(self._events.get(), timeout)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class MemoryRelay:
    """Hands each socket to ``sockets`` once its handshake is answered."""

    def __init__(self) -> None:
        self.sockets: asyncio.Queue[RelaySide] = asyncio.Queue()
        self.refusals: list[tuple[int, dict[str, object]]] = []
        self.connector: Connector = memory_connector(self._serve)

    def refuse(self, status: int, code: str, message: str) -> None:
        self.refusals.append((status, {"error": {"code": code, "message": message}}))

    async def next_socket(self, timeout: float = 5.0) -> RelaySide:
        return await asyncio.wait_for(self.sockets.get(), timeout)

    async def _serve(self, target: Target, peer: MemoryPeer) -> None:
        head = await peer.read_until(b"\r\n\r\n")
        _, path, headers = parse_request_head(head[:-4])
        if self.refusals:
            status, error = self.refusals.pop(0)
            body = json.dumps(error).encode()
            peer.write(f"HTTP/1.1 {status} Refused\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                       + body)
            peer.close()
            return
        key = next(v for k, v in headers if k == "Sec-WebSocket-Key")
        peer.write(accept_response(key))
        side = RelaySide(peer, path, headers, plain="sb-hc-action=connect" in path)
        self.sockets.put_nowait(side)
        await side.pump()
