"""S1's floor: a "relay" that does only the relay's socket work, and its listener.

``python -m bench.floor_relay relay`` prints ``READY http://127.0.0.1:PORT LPORT``;
``python -m bench.floor_relay listener LPORT`` connects one listener to it and
prints ``READY``.  Both run on uvloop (``bench.aio``).

The floor relay reads a sender's keep-alive HTTP requests (just enough parsing
to find the head's end and ``Content-Length``), writes for each one pre-framed
WebSocket request (a fixed command frame and the body in a binary frame) to the
one listener connection, batched into one write per loop turn as the relay's
``ChannelWire`` does, reads the listener's masked answers (a command frame, then
the body frame, unmasked with websockets' C function as the relay does), and
writes a canned ``200`` with that body to the sender, in order (one listener
connection answers in order: no ids).  No SAS token, no JSON, no headers, no
routing, no timeouts: what the relay's CPU per request would be with zero
Python logic on this machine.  Benchmark code only.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Any

from bench.aio import run
from relay.rawws import apply_mask

_COMMAND = b'{"request":{"address":"ws://floor/$hc/echo?sb-hc-action=request&sb-hc-id=x","id":"1",' \
           b'"requestTarget":"/echo","method":"POST","requestHeaders":{"Content-Type":"text/xml"},"body":true}}'
_ANSWER = b'{"response":{"requestId":"1","statusCode":200,"statusDescription":"OK",' \
          b'"responseHeaders":{"Content-Type":"text/xml; charset=utf-8"},"body":true}}'
_HTTP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
_ZERO_KEY = b"\0\0\0\0"


def _header(first: int, length: int, masked: bool) -> bytes:
    flag = 0x80 if masked else 0
    if length < 126:
        return bytes((first, flag | length))
    return bytes((first, flag | 126)) + length.to_bytes(2, "big")


def _frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Whole frames off the front of ``buf``: (opcode, payload unmasked)."""
    out = []
    while len(buf) >= 2:
        opcode, masked, length, at = buf[0] & 0x0F, buf[1] & 0x80, buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                break
            length, at = int.from_bytes(buf[2:4], "big"), 4
        key_at, at = at, at + (4 if masked else 0)
        if len(buf) < at + length:
            break
        payload = bytes(buf[at : at + length])
        if masked:
            payload = apply_mask(payload, bytes(buf[key_at:at]))
        out.append((opcode, payload))
        del buf[: at + length]
    return out


class _Floor:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.listener: Any = None
        self.waiting: deque[Any] = deque()  # sender transports, in the order of their requests
        self.out: list[bytes] = []
        self.flush_due = False

    def forward(self, sender: Any, body: bytes) -> None:
        self.out += (_COMMAND_FRAME, _header(0x82, len(body), False), body)
        self.waiting.append(sender)
        if not self.flush_due:
            self.flush_due = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_due = False
        if self.listener is not None and self.out:
            self.listener.write(b"".join(self.out))
            self.out.clear()


_COMMAND_FRAME = _header(0x81, len(_COMMAND), False) + _COMMAND


class _SenderSide(asyncio.Protocol):
    def __init__(self, floor: _Floor) -> None:
        self.floor, self.buf, self.transport = floor, bytearray(), None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            at = buf.find(b"\r\nContent-Length: ", 0, end)
            length = int(buf[at + 18 : buf.find(b"\r\n", at + 18)]) if at >= 0 else 0
            if len(buf) < end + 4 + length:
                return
            body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            self.floor.forward(self.transport, body)


class _ListenerSide(asyncio.Protocol):
    def __init__(self, floor: _Floor) -> None:
        self.floor, self.buf = floor, bytearray()

    def connection_made(self, transport: Any) -> None:
        self.floor.listener = transport
        self.floor.flush()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiting = self.floor.waiting
        for opcode, payload in _frames(self.buf):
            if opcode == 0x2:  # the answer's body, after its command
                sender = waiting.popleft()
                if not sender.is_closing():  # (uvloop raises on a closed one: wrk left)
                    sender.write(_HTTP_HEAD % len(payload) + payload)


class _Listener(asyncio.Protocol):
    """Answers every request body with the same body (masked with the all-zero key)."""

    def __init__(self) -> None:
        self.buf, self.transport, self.ready = bytearray(), None, asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.ready.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        for opcode, payload in _frames(self.buf):
            if opcode == 0x2:
                out += (_ANSWER_FRAME, _header(0x82, len(payload), True), _ZERO_KEY, payload)
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


_ANSWER_FRAME = _header(0x81, len(_ANSWER), True) + _ZERO_KEY + _ANSWER


async def serve_relay() -> None:
    loop = asyncio.get_running_loop()
    floor = _Floor()
    http = await loop.create_server(lambda: _SenderSide(floor), "127.0.0.1", 0, backlog=1024)
    side = await loop.create_server(lambda: _ListenerSide(floor), "127.0.0.1", 0)
    port, lport = (s.sockets[0].getsockname()[1] for s in (http, side))
    print(f"READY http://127.0.0.1:{port} {lport}", flush=True)
    await asyncio.Event().wait()


async def serve_listener(lport: int) -> None:
    _, listener = await asyncio.get_running_loop().create_connection(_Listener, "127.0.0.1", lport)
    await listener.ready
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    run(serve_relay() if sys.argv[1] == "relay" else serve_listener(int(sys.argv[2])))
