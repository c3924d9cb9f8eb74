"""S3's floor: a listener that costs almost nothing, on the real relay's control channel.

``python -m bench.floor_listener RELAY_BASE ENTITY``; prints ``READY`` once online.  It
opens the control channel as any listener does (``hc.handshake``, a SAS token), then
answers every inline request with its own body: the request's id found by a byte search
(no JSON parsing), the answer command filled in from a template, frames masked with the
all-zero key (the identity: no XOR pass), the answers of one read in one write.  No
SDK, no task, no object per request.  ``bench.s3_wire --floor`` runs it beside the other
listeners: its req/s is what the relay and wrk allow a listener that costs nothing, so
the room left for any listener (ours or hyco-https) is the gap to it.

Not a listener to copy: no renewToken, no ping, no rendezvous, no checks.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import cast

from bench.aio import run
from bench.keys import KEY, KEY_NAME
from hc.address import EntityAddress
from hc.handshake import Target, client_request
from hc.sas import create_token

_ANSWER = (b'{"response":{"requestId":"%s","statusCode":200,"statusDescription":"OK",'
           b'"responseHeaders":{"Content-Type":"text/xml; charset=utf-8"},"body":true}}')
_ID = b'"id":"'
_ZERO_KEY = b"\0\0\0\0"


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client frame, masked with the zero key (its payload unchanged)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + _ZERO_KEY + payload


class _Floor(asyncio.Protocol):
    """The 101, then request command + body pairs in, answer pairs out."""

    def __init__(self, request: bytes) -> None:
        self.request, self.buf = request, bytearray()
        self.online: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.pending: bytes | None = None  # the id of a request whose body is next

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not subclasses)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.online.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.online.set_exception(ConnectionError(bytes(buf[:end]).decode()))
                return
            del buf[: end + 4]
            self.online.set_result(None)
        out: list[bytes] = []
        while len(buf) >= 2:
            opcode, length, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length >= 126:
                at = 4 if length == 126 else 10
                if len(buf) < at:
                    break
                length = int.from_bytes(buf[2:at], "big")
            if len(buf) < at + length:
                break
            payload = bytes(buf[at : at + length])
            del buf[: at + length]
            if opcode == 1:  # a command: the request's id, its body next
                start = payload.find(_ID) + len(_ID)
                self.pending = payload[start : payload.find(b'"', start)]
            elif opcode == 2 and self.pending is not None:
                out.append(_frame(1, _ANSWER % self.pending) + _frame(2, payload))
                self.pending = None
            elif opcode == 9:  # ping
                out.append(_frame(10, payload))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.online.done():
            self.online.set_exception(ConnectionError("closed before the 101"))


async def main(relay_base: str, entity: str) -> None:
    address = EntityAddress.parse(f"{relay_base}/{entity}")
    token = create_token(address.audience, KEY_NAME, KEY)
    target = Target.parse(address.url("listen", str(uuid.uuid4())))
    request, _ = client_request(target, (("ServiceBusAuthorization", token),))
    loop = asyncio.get_running_loop()
    _, floor = await loop.create_connection(lambda: _Floor(request), target.host, target.port)
    await floor.online
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    run(main(sys.argv[1], sys.argv[2]))
