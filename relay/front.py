"""The first reader of every connection on the relay's port: a lean HTTP/1.1 front.

Most of what reaches a relay is small SOAP calls: a ``POST`` with a
``Content-Length`` body of a few KiB, on a keep-alive connection.  This
protocol serves those itself (head parsed by llhttp through ``httptools``, the
answer written as one buffer), because aiohttp's web layer costs more CPU per
request than the rest of the relay put together (``make bench``, S1).

Anything else is handed to aiohttp, at a request boundary, with the bytes not
yet consumed, and aiohttp keeps that connection for the rest of its life::

    WebSocket upgrades (listeners, rendezvous, WebSocket senders), /$hc/ paths
    GET / (the discovery feed)
    chunked or > 64 KiB bodies, Expect, HTTP/1.0, absolute-form targets
    anything llhttp refuses (aiohttp answers it 400 with its reason)

Both paths relay through the same ``relay.http_senders.relay_http``.

Life of a front connection::

    IDLE --head and body buffered--> BUSY --answer written--> IDLE (keep-alive)
    BUSY --answer written, "Connection: close"--> CLOSED
    IDLE --request for aiohttp--> HANDED_OFF (this protocol is out of the picture)
    IDLE --idle past keepalive_timeout, or relay stopping--> CLOSED
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote

import httptools
from multidict import CIMultiDict

from relay.exceptions import RelayError
from relay.http_senders import relay_http
from relay.listeners import INLINE_LIMIT
from relay.messages import Headers

if TYPE_CHECKING:
    from relay.server import RelayServer

__all__ = ["Front", "FrontProtocol"]

log = logging.getLogger("relay.front")

#: Seconds an idle keep-alive connection stays open (aiohttp's default too).
KEEPALIVE_TIMEOUT = 75.0
_SWEEP_EVERY = 10.0
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_HEAD_END = b"\r\n\r\n"
#: Buffered bytes past which a busy connection stops reading (pipelined requests).
_READ_HIGH_WATER = 4 * INLINE_LIMIT


class ConnState(enum.Enum):
    IDLE = "idle"
    BUSY = "busy"
    HANDED_OFF = "handed-off"
    CLOSED = "closed"


class _Head:
    """httptools callbacks collecting one request head."""

    __slots__ = ("pairs", "url")

    def __init__(self) -> None:
        self.url = b""
        self.pairs: list[tuple[str, str]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.pairs.append((name.decode("latin-1"), value.decode("latin-1")))


class FastRequest:
    """A :class:`relay.sender_io.SenderRequest` whose body is already in memory."""

    __slots__ = (
        "body",
        "body_exists",
        "content_length",
        "headers",
        "host",
        "keep_alive",
        "method",
        "path",
        "raw_path",
        "raw_query",
        "remote",
        "secure",
    )

    def __init__(
        self, method: str, url: str, headers: CIMultiDict[str], length: int,
        secure: bool, remote: tuple[str, int] | None,
    ) -> None:
        raw_path, _, raw_query = url.partition("?")
        self.method = method
        self.raw_path, self.raw_query = raw_path, raw_query
        self.path = unquote(raw_path) if "%" in raw_path else raw_path
        self.headers = headers
        self.content_length = length if "Content-Length" in headers else None
        self.body_exists = length > 0
        self.secure = secure
        self.host = headers.get("Host", "")
        self.remote = remote
        self.body = b""
        self.keep_alive = "close" not in headers.get("Connection", "").lower()

    async def read(self) -> bytes:
        return self.body

    async def iter_body(self) -> AsyncIterator[bytes]:
        if self.body:
            yield self.body


def _parse(head: bytes, protocol: FrontProtocol) -> FastRequest | None:
    """The request in ``head`` if the front serves it, else None (aiohttp will)."""
    collected = _Head()
    parser = httptools.HttpRequestParser(collected)
    try:
        parser.feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # upgrades: aiohttp's
        return None
    url = collected.url.decode("latin-1")
    if parser.get_http_version() != "1.1" or not url.startswith("/"):
        return None
    if url.startswith(("/$hc/", "/?")) or url == "/":
        return None
    headers = CIMultiDict(collected.pairs)
    if "Transfer-Encoding" in headers or "Upgrade" in headers or "Expect" in headers:
        return None
    if "Host" not in headers or len(headers.getall("Content-Length", ())) > 1:
        return None
    length = int(headers.get("Content-Length", "0"))  # llhttp checked it is a number
    method = parser.get_method().decode("ascii")
    if length > INLINE_LIMIT or method == "CONNECT":
        return None
    return FastRequest(method, url, headers, length, protocol.secure, protocol.remote)


_date_cache: tuple[int, bytes] = (0, b"")


def _date_header() -> bytes:
    """``Date: ...`` for this second, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, f"Date: {formatdate(now, usegmt=True)}\r\n".encode())
    return _date_cache[1]


def _head_bytes(status: int, reason: str | None, headers: Headers, framing: str) -> bytes:
    """The status line and headers (already valid: see ``forwarded_response_headers``)."""
    lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Unknown')}\r\n"]
    for name, value in headers:
        lines.append(f"{name}: {value}\r\n")
    lines.append(framing)
    return "".join(lines).encode("latin-1", "replace") + _date_header() + b"\r\n"


class FrontProtocol(asyncio.Protocol):
    """One TCP (or TLS) connection on the relay's port, until aiohttp takes it."""

    def __init__(self, front: Front) -> None:
        self._front = front
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self.state = ConnState.IDLE
        self.secure = False
        self.remote: tuple[str, int] | None = None
        self.last_active = 0.0
        self._request: FastRequest | None = None
        self._body_end = 0
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.secure = transport.get_extra_info("sslcontext") is not None
        peer = transport.get_extra_info("peername")
        self.remote = (str(peer[0]), int(peer[1])) if peer else None
        self.last_active = self._front.loop.time()
        self._front.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self.state is ConnState.IDLE:
            self._next_request()
        elif len(self._buffer) > _READ_HIGH_WATER and not self._reading_paused:
            assert self._transport is not None
            self._reading_paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        return self.state is ConnState.BUSY  # keep the socket to write the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._front.connections.discard(self)
        if self.state is not ConnState.HANDED_OFF:
            self.state = ConnState.CLOSED
        self._wake_writer()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    # -- requests --------------------------------------------------------------------

    def _next_request(self) -> None:
        """Start the next buffered request, if it is complete, or hand the connection off."""
        request = self._request
        if request is None:
            end = self._buffer.find(_HEAD_END)
            if end < 0 and len(self._buffer) <= self._front.max_head:
                return  # the head is still arriving
            # A long head goes to aiohttp, which applies the header size limits.
            request = None if end < 0 or end > self._front.max_head else _parse(
                bytes(self._buffer[: end + 4]), self
            )
            if request is None:
                self._hand_off()
                return
            self._request, self._body_end = request, end + 4 + (request.content_length or 0)
        if len(self._buffer) < self._body_end:
            return  # the body (at most 64 KiB) is still arriving
        request.body = bytes(self._buffer[self._body_end - (request.content_length or 0) : self._body_end])
        del self._buffer[: self._body_end]
        self._request = None
        self.state = ConnState.BUSY
        self._front.loop.create_task(self._serve(request))

    async def _serve(self, request: FastRequest) -> None:
        server = self._front.server
        reply = _FastReply(self, request)
        try:
            await relay_http(server, request, reply)
        except RelayError as error:
            if reply.started:  # an answer is half out: it must not look complete
                self.close()
            else:
                status, reason, headers, body = server.error_parts(request, error)
                self.write_whole(status, reason, headers, body, request)
        except Exception:
            log.exception("%s %s: internal error", request.method, request.path)
            if reply.started:
                self.close()
            else:
                body = b"internal error\n"
                self.write_whole(500, None, (("Content-Type", "text/plain"),), body, request)
        finally:
            self._finished(request)

    def _finished(self, request: FastRequest) -> None:
        if self.state is not ConnState.BUSY:
            return
        if not request.keep_alive or self._front.stopping:
            self.close()
            return
        self.state = ConnState.IDLE
        self.last_active = self._front.loop.time()
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        if self._buffer:
            self._next_request()

    def _hand_off(self) -> None:
        """Give this connection, with every byte not yet consumed, to aiohttp."""
        transport = self._transport
        assert transport is not None
        self.state = ConnState.HANDED_OFF
        self._front.connections.discard(self)
        handler = self._front.fallback()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        data, self._buffer = bytes(self._buffer), bytearray()
        if data:
            handler.data_received(data)

    # -- writing ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def write_whole(
        self, status: int, reason: str | None, headers: Headers, body: bytes, request: FastRequest
    ) -> None:
        framing = f"Content-Length: {len(body)}\r\n"
        if not request.keep_alive:
            framing += "Connection: close\r\n"
        head = _head_bytes(status, reason, headers, framing)
        self.write(head if request.method == "HEAD" else head + body)

    async def drain(self) -> None:
        while self._write_paused and self.state is not ConnState.CLOSED:
            self._drained = self._front.loop.create_future()
            await self._drained

    def _wake_writer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def close(self) -> None:
        self.state = ConnState.CLOSED
        if self._transport is not None:
            self._transport.close()


class _FastReply:
    """The :class:`relay.sender_io.SenderReply` of a front connection."""

    __slots__ = ("_conn", "_request", "started")

    def __init__(self, conn: FrontProtocol, request: FastRequest) -> None:
        self._conn, self._request = conn, request
        self.started = False

    def whole(self, status: int, reason: str | None, headers: Headers, body: bytes) -> None:
        self.started = True
        self._conn.write_whole(status, reason, headers, body, self._request)

    async def stream(
        self, status: int, reason: str | None, headers: Headers, chunks: AsyncIterator[bytes]
    ) -> None:
        conn, request = self._conn, self._request
        framing = "Transfer-Encoding: chunked\r\n"
        if not request.keep_alive:
            framing += "Connection: close\r\n"
        self.started = True
        conn.write(_head_bytes(status, reason, headers, framing))
        head_only = request.method == "HEAD"  # RFC 9110 §9.3.2: no content, not even a last chunk
        async for chunk in chunks:
            if chunk and not head_only:
                conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await conn.drain()
        if not head_only:
            conn.write(b"0\r\n\r\n")

    def abort(self) -> None:
        self._conn.close()


class Front:
    """The protocol factory for the relay's listening socket, and its connections."""

    def __init__(
        self, server: RelayServer, fallback: Callable[[], asyncio.Protocol], *, max_head: int
    ) -> None:
        self.server = server
        self.fallback = fallback
        self.max_head = max_head
        self.loop = asyncio.get_running_loop()
        self.connections: set[FrontProtocol] = set()
        self.stopping = False
        self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    def __call__(self) -> FrontProtocol:
        return FrontProtocol(self)

    def _sweep(self) -> None:
        """Close keep-alive connections idle for longer than ``KEEPALIVE_TIMEOUT``."""
        deadline = self.loop.time() - KEEPALIVE_TIMEOUT
        for conn in list(self.connections):
            if conn.state is ConnState.IDLE and conn.last_active < deadline:
                conn.close()
        self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    def close(self) -> None:
        """Stop: idle connections close now, busy ones after their answer."""
        self.stopping = True
        self._sweeper.cancel()
        for conn in list(self.connections):
            if conn.state is not ConnState.BUSY:
                conn.close()
