"""A frame-level server WebSocket on an aiohttp connection, for streaming bodies.

aiohttp's own ``WebSocketResponse`` reassembles every message in memory before
handing it over, which would make the relay hold a whole 100 MiB message.  The
WebSocket senders' sockets and their accept sockets therefore use this thin
shell instead (request rendezvous run on ``hc.protocol``: ``relay.rendezvous_socket``).  aiohttp
writes the ``101`` handshake and then feeds raw bytes to the sans-I/O
``websockets.protocol.Protocol``, which yields *frames* (not messages) that the
relay forwards one by one.  The frame logic is the websockets library's; this
module only moves bytes and applies back-pressure both ways.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from hc.frames import FrameSplitter
from hc.handshake import accept_key

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships in websockets' wheels
    from websockets.utils import apply_mask

__all__ = [
    "CLOSE_TIMEOUT", "Frame", "Opcode", "RawWebSocket", "ReadingGate", "apply_mask",
    "drain_connection", "flow_control",
]

#: Frames queued before the relay stops reading from the peer's socket.
_HIGH_WATER = 8
#: The opcodes of data frames (what :meth:`RawWebSocket.forward_to` passes on).
_DATA = frozenset((Opcode.TEXT, Opcode.BINARY, Opcode.CONT))
#: Seconds :meth:`RawWebSocket.close` waits for the peer's Close frame before it drops
#: the connection (RFC 6455 §7.1.1 leaves the bound to the server).
CLOSE_TIMEOUT = 5.0


async def drain_connection(http: web.RequestHandler, transport: asyncio.BaseTransport) -> None:
    """Wait while the connection's write buffer is over its high-water mark."""
    if http.writing_paused and not transport.is_closing():
        await http._drain_helper()


def flow_control(
    request: web.BaseRequest,
) -> tuple[Callable[[], bool], Callable[[], Awaitable[None]]]:
    """For ``request``'s connection: whether its write buffer is over the high-water
    mark now, and what waits until it is not."""
    http, transport = request.protocol, request.transport
    assert transport is not None
    return (lambda: http.writing_paused), (lambda: drain_connection(http, transport))


class ReadingGate:
    """Whether the relay reads a peer's socket: not while the reader behind it is full
    (:meth:`set_full`), nor while Pongs owed to the peer wait in a full write buffer.

    Every Ping must be answered (RFC 6455 §5.5.2), and each Pong waits in the
    connection's write buffer until the peer reads it: a peer that sends Pings and
    never reads would grow that buffer without end.  So when a chunk carried a Ping
    while the buffer is over its high-water mark (:meth:`pinged`), reading stops
    until the buffer drains.  A peer that reads what it is sent is never held, and
    data flowing the other way is not tied to it (that has its own back-pressure).

    Args:
        transport: the peer's connection.
        writing_paused: whether its write buffer is over the high-water mark now.
        drain: waits until it is under it again.
    """

    __slots__ = ("_drain", "_full", "_held", "_paused", "_transport", "_writing_paused")

    def __init__(
        self, transport: asyncio.BaseTransport, writing_paused: Callable[[], bool],
        drain: Callable[[], Awaitable[None]],
    ) -> None:
        self._transport: Any = transport  # a ReadTransport; BaseTransport in aiohttp's types
        self._writing_paused = writing_paused
        self._drain = drain
        self._full = False
        self._held: asyncio.Future[None] | None = None  # waiting for the Pongs to drain
        self._paused = False

    @property
    def full(self) -> bool:
        return self._full

    @property
    def held(self) -> bool:
        """Reading is held until the Pongs owed to the peer are written."""
        return self._held is not None

    def set_full(self, full: bool) -> None:
        """The reader behind the socket is full (True) or has room again (False)."""
        self._full = full
        self._apply()

    def pinged(self) -> None:
        """A chunk just read carried a Ping: hold reading while the write buffer is full."""
        if self._held is None and self._writing_paused() and not self._transport.is_closing():
            self._held = asyncio.ensure_future(self._release_when_drained())
            self._apply()

    async def _release_when_drained(self) -> None:
        try:
            await self._drain()
        except ConnectionError:
            pass  # the connection is gone: nothing to read any more
        finally:
            self._held = None
            self._apply()

    def _apply(self) -> None:
        pause = self._full or self._held is not None
        if pause is not self._paused and not self._transport.is_closing():
            self._paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()


class RawWebSocket:
    """A server WebSocket whose frames are read and written individually.

    Closing is the full handshake of RFC 6455 §5.5.1 and §7.1.1: whichever side
    sends the first Close, the relay closes the TCP connection only once both Close
    frames have crossed (the peer's wait is bounded by ``CLOSE_TIMEOUT``).  Dropping
    it right after its own Close made browsers report ``wasClean = false``.
    """

    def __init__(self, request: web.BaseRequest) -> None:
        transport = request.transport
        assert transport is not None
        self._transport = transport
        self._http = request.protocol
        self._proto = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
        self._splitter = FrameSplitter(apply_mask)  # no frame held whole (hc.frames)
        self._frames: deque[Frame] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._eof = False
        self._gate = ReadingGate(transport, *flow_control(request))
        self._close_started = False  # the relay sent the first Close
        self._sink: RawWebSocket | None = None  # where data frames go as they are read

    @classmethod
    async def accept(
        cls, request: web.BaseRequest, subprotocol: str | None = None
    ) -> tuple[RawWebSocket, web.StreamResponse]:
        """Complete the upgrade of ``request`` and return the socket and its response."""
        key = request.headers.get("Sec-WebSocket-Key", "")
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": accept_key(key),
        }
        if subprotocol:
            headers["Sec-WebSocket-Protocol"] = subprotocol
        response = web.StreamResponse(status=101, headers=headers)
        await response.prepare(request)
        socket = cls(request)
        request.protocol.set_parser(socket)  # type: ignore[arg-type]
        request.protocol.keep_alive(False)
        return socket, response

    # -- the parser interface aiohttp's RequestHandler calls ---------------------------

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._proto.receive_data(self._splitter.feed(bytes(data)))
        self._flush()
        events: list[Frame] = self._proto.events_received()  # type: ignore[assignment]
        if self._close_started:
            # Our Close is out: only the peer's Close matters now (§1.4: further
            # data is discarded), and reading never pauses while we wait for it.
            events = [e for e in events if e.opcode is Opcode.CLOSE]
        frames, sink = self._frames, self._sink
        pinged = False
        for event in events:
            if sink is not None and not frames and event.opcode in _DATA and sink.writable:
                sink._write_frame(event.opcode, bytes(event.data), event.fin)
            else:
                frames.append(event)
                pinged = pinged or event.opcode is Opcode.PING
        gate = self._gate
        if len(frames) >= _HIGH_WATER and not gate.full:
            gate.set_full(True)
        if pinged:
            gate.pinged()
        if frames or self.closed:
            self._wake()
        return False, b""

    def feed_eof(self) -> None:
        self._proto.receive_eof()
        self._eof = True
        self._wake()

    def forward_to(self, sink: RawWebSocket) -> None:
        """From now on pass each data frame on to ``sink`` as soon as it is parsed, with
        no task step and no future per frame, while none waits in the queue before it and
        ``sink`` can take it now (open, its write buffer under the mark).  Every other
        frame is queued for :meth:`recv_frame` as before -- control frames, and data
        frames while the queue is not empty or ``sink`` is full or closing -- so the
        order holds and back-pressure still comes from the reader of the queue."""
        self._sink = sink

    # -- reading -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._proto.state is State.CLOSED or self._eof or self._transport.is_closing()

    @property
    def close_code(self) -> int | None:
        received = self._proto.close_rcvd
        return received.code if received is not None else None

    async def recv_frame(self) -> Frame | None:
        """The next data or close frame, or ``None`` once the connection is gone."""
        while not self._frames:
            if self.closed:
                return None
            await self._changed()
        frame = self._frames.popleft()
        if len(self._frames) < _HIGH_WATER // 2:
            self._resume()
        return frame

    async def recv_message_frames(self) -> AsyncIterator[Frame]:
        """The frames of the next data message (skipping control frames), in order."""
        while True:
            frame = await self.recv_frame()
            if frame is None or frame.opcode is Opcode.CLOSE:
                raise ConnectionResetError("WebSocket closed in the middle of a message")
            if frame.opcode in (Opcode.PING, Opcode.PONG):
                continue
            yield frame
            if frame.fin:
                return

    # -- writing -------------------------------------------------------------------

    async def send_frame(self, opcode: Opcode, data: bytes, fin: bool = True) -> None:
        """Send one data frame (TEXT, BINARY or CONT) and wait while the socket is full."""
        self._write_frame(opcode, data, fin)
        await self.drain()

    def _write_frame(self, opcode: Opcode, data: bytes, fin: bool) -> None:
        if opcode is Opcode.TEXT:
            self._proto.send_text(data, fin)
        elif opcode is Opcode.BINARY:
            self._proto.send_binary(data, fin)
        else:
            self._proto.send_continuation(data, fin)
        self._flush()

    async def send_text(self, text: str) -> None:
        await self.send_frame(Opcode.TEXT, text.encode())

    async def send_stream(self, chunks: AsyncIterator[bytes]) -> int:
        """Send ``chunks`` as ONE binary message of several frames; returns bytes sent."""
        sent, opcode = 0, Opcode.BINARY
        async for chunk in chunks:
            if chunk:
                await self.send_frame(opcode, chunk, fin=False)
                sent, opcode = sent + len(chunk), Opcode.CONT
        await self.send_frame(opcode, b"", fin=True)
        return sent

    async def drain(self) -> None:
        await drain_connection(self._http, self._transport)

    @property
    def open(self) -> bool:
        """Whether data frames may still be sent (no Close sent or received)."""
        return self._proto.state is State.OPEN and not self._transport.is_closing()

    @property
    def writable(self) -> bool:
        """Open, and its write buffer under the high-water mark: a frame leaves now."""
        return self.open and not self._http.writing_paused

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake: send Close (unless one crossed already), wait for
        the peer's Close, then close TCP; after ``CLOSE_TIMEOUT`` s, drop it.

        Never hangs, whatever the peer does; cancelling it closes the connection.
        """
        if self.open:
            self._close_started = True
            self._proto.send_close(code, reason)
            self._flush()
            self._frames = deque(f for f in self._frames if f.opcode is Opcode.CLOSE)
            self._resume()
        try:
            await asyncio.wait_for(self.wait_closed(), CLOSE_TIMEOUT)
        except TimeoutError:
            self._transport.abort()  # no Close in time: no FIN either, nothing is flushed
        finally:
            if not self._transport.is_closing():
                self._transport.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed or closing on the relay's side."""
        while not self.closed:
            await self._changed()

    # -- internals -----------------------------------------------------------------

    def _flush(self) -> None:
        for chunk in self._proto.data_to_send():
            if chunk:
                self._transport.write(chunk)
            elif not self._transport.is_closing():
                self._transport.close()

    def _resume(self) -> None:
        if self._gate.full:
            self._gate.set_full(False)

    async def _changed(self) -> None:
        """Wait for the next frame, end of stream or closing (several tasks may wait)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def close_of(frame: Frame) -> Close:
    """The code and reason of a CLOSE frame."""
    return Close.parse(frame.data)
