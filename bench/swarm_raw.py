"""The cheapest listener control channel that still plays by the rules (``bench.swarm`` "raw").

S5 times one event until a thousand subscribers acknowledged it, and the
swarm processes answering it share the relay's two cores: with websockets'
connection (a task, a queue and a JSON round trip per message) the swarm cost
more CPU than the relay.  A :class:`RawListener` is an ``asyncio.Protocol``
that opens the control channel with its own WebSocket handshake, then reads
the relay's frames and answers each ``request`` command with a pre-built
``202 Accepted`` response frame carrying the request's id, in one write per
chunk read.  It parses what it must: frame lengths (to skip body frames and
find the next command), the command's ``"id"``, Pings (answered with a Pong,
so the relay's liveness check keeps it) and Close.

Benchmark code: client frames are masked with the all-zero key, which RFC 6455
permits as a value (the relay cannot tell) but a real client would not use.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

__all__ = ["RawListener", "open_raw"]

_ID_AT = b'","id":"'  # the address is the first key; its value cannot hold an unescaped quote
_ACK_HEAD = b'{"response":{"requestId":"'
_ACK_TAIL = b'","statusCode":202,"statusDescription":"Accepted","responseHeaders":{},"body":false}}'
_ZERO_KEY = b"\0\0\0\0"
_TEXT, _CLOSE, _PING = 0x1, 0x8, 0x9


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked (all-zero key: the payload unchanged) final frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    else:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + _ZERO_KEY + payload


class RawListener(asyncio.Protocol):
    """One control channel: handshake, then answers (see the module docstring)."""

    def __init__(self, request_head: bytes) -> None:
        self._head = request_head
        self._transport: Any = None  # a uvloop TCPTransport is no asyncio.Transport subclass
        self._buffer = bytearray()
        self._upgraded = False
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        transport.write(self._head)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(ConnectionError(bytes(buf[:end]).decode(errors="replace")))
                return
            del buf[: end + 4]
            self._upgraded = True
            self.open.set_result(None)
        out = self._frames(buf)
        if out and self._transport is not None:
            self._transport.write(b"".join(out))

    def _frames(self, buf: bytearray) -> list[bytes]:
        """Answer every whole frame in ``buf`` (server frames: never masked)."""
        out: list[bytes] = []
        while len(buf) >= 2:
            opcode, length, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    break
                length, at = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    break
                length, at = int.from_bytes(buf[2:10], "big"), 10
            end = at + length
            if len(buf) < end:
                break
            if opcode == _TEXT:
                start = buf.find(_ID_AT, at, end) + len(_ID_AT)
                if start >= len(_ID_AT) and buf.startswith(b'{"request"', at):
                    ident = bytes(buf[start : buf.find(b'"', start, end)])
                    out.append(_client_frame(_TEXT, _ACK_HEAD + ident + _ACK_TAIL))
                    self.answered += 1
            elif opcode == _PING:
                out.append(_client_frame(0xA, bytes(buf[at:end])))
            elif opcode == _CLOSE:
                out.append(_client_frame(_CLOSE, bytes(buf[at : at + 2])))
                if self._transport is not None:
                    self._transport.write(b"".join(out))
                    self._transport.close()
                return []
            del buf[:end]
        return out


async def open_raw(host: str, port: int, target: str, headers: dict[str, str]) -> RawListener:
    """A :class:`RawListener` on ``target`` (``/$hc/...?sb-hc-action=listen``), once upgraded."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             *(f"{name}: {value}" for name, value in headers.items())]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    _, listener = await loop.create_connection(lambda: RawListener(head), host, port)
    await listener.open
    return listener
