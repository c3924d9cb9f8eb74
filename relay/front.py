"""The first reader of every connection on the relay's port: a lean HTTP/1.1 front.

Most of what reaches a relay is small SOAP calls: a ``POST`` with a
``Content-Length`` body of a few KiB, on a keep-alive connection.  This
protocol serves those itself (head parsed by llhttp through ``httptools``, the
answer written as one buffer), because aiohttp's web layer costs more CPU per
request than the rest of the relay put together (``make bench``, S1).

It also judges every first head itself (``relay.request_head``): what is
malformed, too large or too slow is refused here with a status, one
rate-limited WARNING line and ``Connection: close``, buffering at most
``max_header_size`` plus one read.  Only a head llhttp parsed and the checks
passed is handed to aiohttp, at a request boundary, with the bytes not yet
consumed, and aiohttp keeps that connection for the rest of its life::

    WebSocket upgrades (listeners, rendezvous, WebSocket senders), /$hc/ paths
    GET / (the discovery feed)
    chunked or > 64 KiB bodies, Expect, HTTP/1.0, absolute-form targets

Both paths relay through the same ``relay.http_senders.relay_http``.

Life of a front connection (every state but BUSY has a deadline, checked
once a second)::

    IDLE --first byte--> HEAD --head complete, body buffering--> BODY --body in--> BUSY
    HEAD --head complete, no body--> BUSY --answer written--> IDLE (keep-alive)
    BUSY --answer written, "Connection: close"--> CLOSED
    HEAD --head for aiohttp--> HANDED_OFF (this protocol is out of the picture)
    HEAD|BODY --malformed, too large, or past header_timeout / body rate--> LINGERING
    LINGERING --peer's FIN, or 2 s--> CLOSED (the refusal was written, then our FIN)
    IDLE --no byte within header_timeout of opening, idle_timeout after an answer,
           or relay stopping--> CLOSED (silently: no request was started)
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Callable
from typing import cast

from hc.messages import Headers
from relay.boundary import error_answer
from relay.client_errors import GuardedHandler
from relay.error_body import new_tracking_id
from relay.exceptions import HeaderFieldsTooLarge, RelayError, RequestTimeout, TooManyConnections
from relay.front_calls import relay_at_once
from relay.front_wire import FastRequest, fast_request, head_bytes
from relay.http_senders import relay_http
from relay.listeners import INLINE_LIMIT
from relay.request_head import PartialHead, parse_head, refusal
from relay.sender_io import SenderReply
from relay.state import RelayState

__all__ = ["Front", "FrontProtocol"]

log = logging.getLogger("relay.front")

_SWEEP_EVERY = 1.0
#: Seconds a refused connection keeps reading (and dropping) what the client
#: still sends, so that closing does not reset the connection before the client
#: has read the refusal.
_LINGER = 2.0
_HEAD_END = b"\r\n\r\n"
#: Statuses whose response has no content and no framing header (RFC 9110 §8.6, §15.3.5).
_NO_CONTENT = frozenset({204, 304})
#: Buffered bytes past which a busy connection stops reading (pipelined requests).
_READ_HIGH_WATER = 4 * INLINE_LIMIT


class ConnState(enum.Enum):
    IDLE = "idle"
    HEAD = "head"
    BODY = "body"
    BUSY = "busy"
    LINGERING = "lingering"
    HANDED_OFF = "handed-off"
    CLOSED = "closed"


class FrontProtocol(asyncio.Protocol):
    """One TCP (or TLS) connection on the relay's port, until aiohttp takes it."""

    def __init__(self, front: Front) -> None:
        self._front = front
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self.state = ConnState.IDLE
        self.secure = False
        self.remote: tuple[str, int] | None = None
        #: Loop time past which the sweep ends this connection's current state.
        self.deadline = float("inf")
        self._answered = 0
        self._scanned = 0
        self._partial: PartialHead | None = None
        self._request: FastRequest | None = None
        self._body_end = 0
        self._body_start = 0.0
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False
        #: An answer is written but not read: the next pipelined request waits for room.
        self._answers_unread = False
        #: Whether this connection counts against ``max_connections`` (until handed off,
        #: when aiohttp's handler releases it: ``relay.client_errors.GuardedHandler``).
        self._counted = False

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's transport (aiohttp's too once handed off), once made."""
        return self._transport

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (bounded by the head and body limits)."""
        return len(self._buffer)

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.secure = transport.get_extra_info("sslcontext") is not None
        peer = transport.get_extra_info("peername")
        self.remote = (str(peer[0]), int(peer[1])) if peer else None
        front = self._front
        if front.closed:  # accepted as the relay stopped, after its connections were closed
            self.state = ConnState.CLOSED
            self._transport.abort()  # (nothing to flush, no TLS close to wait for)
            return
        front.alive.add(self)
        front.connections.add(self)  # the sweep ends it, refused (lingering) or not
        if front.open_connections >= front.limits.max_connections:
            self.refuse(TooManyConnections(
                f"the relay has {front.limits.max_connections} connections open; try again"
            ))
            return
        front.open_connections += 1
        self._counted = True
        # header_timeout counts from the connection's opening for its first request.
        self.deadline = front.loop.time() + front.limits.header_timeout

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state is ConnState.LINGERING or state is ConnState.CLOSED:
            return  # a refused connection: what still comes is dropped
        self._buffer += data
        if self._answers_unread:  # (reading is paused: what was read already waits too)
            return
        if state is ConnState.IDLE:
            self.state = ConnState.HEAD
            if self._answered:  # keep-alive: the head's time starts with its first byte
                self.deadline = self._front.loop.time() + self._front.limits.header_timeout
            self._next_request()
        elif state is ConnState.HEAD or state is ConnState.BODY:
            self._next_request()
        elif len(self._buffer) > _READ_HIGH_WATER and not self._reading_paused:
            assert self._transport is not None
            self._reading_paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        return self.state is ConnState.BUSY  # keep the socket to write the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._front.connections.discard(self)
        self._lost()
        if self.state is not ConnState.HANDED_OFF:
            self.state = ConnState.CLOSED
        self._buffer = bytearray()
        self._wake_writer()

    def _lost(self) -> None:
        """The socket is closed (here, or in aiohttp's hands): its place is free."""
        if self._counted:
            self._counted = False
            self._front.open_connections -= 1
        self._front.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()
        if self._answers_unread:
            self._answers_unread = False
            if self.state is ConnState.IDLE:
                self._go_on()

    # -- requests --------------------------------------------------------------------

    def _next_request(self) -> None:
        """Start the next buffered request once its head and body are in, or hand off."""
        request = self._request
        if request is None:
            request = self._read_head()
            if request is None:
                return
        if len(self._buffer) < self._body_end:  # the body (at most 64 KiB) is still arriving
            received = len(self._buffer) - (self._body_end - (request.content_length or 0))
            self.deadline = self._front.limits.body_deadline(self._body_start, received)
            return
        length = request.content_length or 0
        request.body = bytes(self._buffer[self._body_end - length : self._body_end])
        del self._buffer[: self._body_end]
        self._request = None
        self.state, self.deadline = ConnState.BUSY, float("inf")
        try:
            taken = relay_at_once(self._front.state, request, self)
        except Exception as exc:  # noqa: BLE001 - the one boundary (relay.boundary)
            self.answer_error(exc, request, _FastReply(self, request))
            self.finished(request)
            return
        if not taken:
            self._front.loop.create_task(self._serve(request))

    def _read_head(self) -> FastRequest | None:
        """The request whose head is complete in the buffer, if the front serves it.

        Refuses what is malformed or too large, and hands the connection to
        aiohttp when the head is fine but not for the front; None in all three
        cases, and while the head is still arriving.
        """
        buffer, limits = self._buffer, self._front.limits
        end = buffer.find(_HEAD_END, max(0, self._scanned - 3))
        try:
            if end < 0:
                if len(buffer) > limits.max_head:
                    raise HeaderFieldsTooLarge(f"the request head is over {limits.max_head} bytes")
                self._check_partial()
                return None
            if end + 4 > limits.max_head:
                raise HeaderFieldsTooLarge(f"the request head is over {limits.max_head} bytes")
            head = parse_head(bytes(buffer[: end + 4]), limits.max_headers)
        except RelayError as error:
            self.refuse(error)
            return None
        self._scanned, self._partial = 0, None
        request = fast_request(head, self.secure, self.remote)
        if request is None:
            self._hand_off()
            return None
        self._request, self._body_end = request, end + 4 + (request.content_length or 0)
        self.state, self._body_start = ConnState.BODY, self._front.loop.time()
        return request

    def _check_partial(self) -> None:
        """Feed llhttp the head's new bytes: a syntax error is refused before the head ends."""
        if self._partial is None:
            self._partial = PartialHead()
        self._partial.feed(bytes(self._buffer[self._scanned :]))
        self._scanned = len(self._buffer)

    async def _serve(self, request: FastRequest) -> None:
        reply = _FastReply(self, request)
        try:
            await relay_http(self._front.state, request, reply)
        except Exception as exc:  # noqa: BLE001 - the one boundary (relay.boundary)
            self.answer_error(exc, request, reply)
        finally:
            self.finished(request)

    # -- relay.front_calls.CallOwner ---------------------------------------------------

    def reply_to(self, request: FastRequest) -> _FastReply:
        return _FastReply(self, request)

    def answer_error(self, exc: BaseException, request: FastRequest, reply: SenderReply) -> None:
        """Answer with the relay's error for ``exc``; drop the connection if an answer is
        half out already (it must not look complete)."""
        answer = error_answer(exc, request, self._front.state)
        if isinstance(reply, _FastReply) and reply.started:
            self.close()
            return
        self.write_whole(answer.status, answer.reason, answer.headers, answer.body, request)
        if answer.close:
            self.close()

    def finished(self, request: FastRequest) -> None:
        if self.state is not ConnState.BUSY:
            return
        if not request.keep_alive or self._front.stopping:
            self.close()
            return
        self._answered += 1
        self.state = ConnState.IDLE
        self.deadline = self._front.loop.time() + self._front.limits.idle_timeout
        if self._write_paused and self._transport is not None:
            # The client is not reading its answers: read and answer nothing more of it
            # until it does (pipelined requests would pile answers up without end); the
            # idle timeout ends a client that never does.
            self._answers_unread = True
            if not self._reading_paused:
                self._reading_paused = True
                self._transport.pause_reading()
            return
        self._go_on()

    def _go_on(self) -> None:
        """Start the next request if it is buffered already, and read again unless what
        is buffered is still over the mark (a client pipelining requests faster than
        they are answered would otherwise have its input buffered without end)."""
        if self._buffer:
            self.state = ConnState.HEAD
            self.deadline = self._front.loop.time() + self._front.limits.header_timeout
            self._next_request()
        if (self._reading_paused and self._transport is not None and not self._answers_unread
                and len(self._buffer) <= _READ_HIGH_WATER and self.state is not ConnState.HANDED_OFF
                and not self._transport.is_closing()):
            self._reading_paused = False
            self._transport.resume_reading()

    def _hand_off(self) -> None:
        """Give this connection, with every byte not yet consumed, to aiohttp."""
        transport = self._transport
        assert transport is not None
        self.state = ConnState.HANDED_OFF
        self._front.connections.discard(self)
        handler = self._front.fallback()
        if self._reading_paused:  # aiohttp reads from now on, with flow control of its own
            self._reading_paused = False
            transport.resume_reading()
        if isinstance(handler, GuardedHandler):
            handler.on_lost = self._lost  # aiohttp's handler says when the socket is closed
        else:
            self._lost()  # (tests' stand-ins: not followed further)
        transport.set_protocol(handler)
        handler.connection_made(transport)
        data, self._buffer = bytes(self._buffer), bytearray()
        if data:
            handler.data_received(data)

    # -- refusing --------------------------------------------------------------------

    def refuse(self, error: RelayError) -> None:
        """Answer ``error`` with ``Connection: close`` and stop reading requests."""
        tracking = new_tracking_id()
        peer = self.remote[0] if self.remote else "?"
        self._front.client_errors.warning(
            "refused a request from %s: %d %s [tracking %s]", peer, error.status, error, tracking
        )
        self.write(refusal(error, tracking))
        self._linger()

    def _linger(self) -> None:
        """Send our FIN after the refusal and drop what the client still sends, a while."""
        self._buffer, self._request, self._partial = bytearray(), None, None
        transport = self._transport
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            self.close()
            return
        self.state = ConnState.LINGERING
        self.deadline = self._front.loop.time() + _LINGER
        try:
            transport.write_eof()
        except (OSError, RuntimeError):  # reset by the peer already (uvloop: RuntimeError)
            self.close()

    def expire(self) -> None:
        """The sweep found this connection past its deadline."""
        state = self.state
        limits = self._front.limits
        if state is ConnState.HEAD:
            self.refuse(RequestTimeout(
                f"the request head did not arrive within {limits.header_timeout:g} s"
            ))
        elif state is ConnState.BODY:
            self.refuse(RequestTimeout(
                f"the request body arrived slower than {limits.min_body_rate} bytes/s"
            ))
        elif state is not ConnState.BUSY:
            self.close()

    # -- writing ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def write_whole(
        self, status: int, reason: str | None, headers: Headers, body: bytes, request: FastRequest
    ) -> None:
        bodiless = status in _NO_CONTENT
        framing = "" if bodiless else f"Content-Length: {len(body)}\r\n"
        if not request.keep_alive:
            framing += "Connection: close\r\n"
        head = head_bytes(status, reason, headers, framing)
        self.write(head if request.method == "HEAD" or bodiless else head + body)

    async def drain(self) -> None:
        while self._write_paused and self.state is not ConnState.CLOSED:
            self._drained = self._front.loop.create_future()
            await self._drained

    def _wake_writer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def close(self) -> None:
        self.state = ConnState.CLOSED
        self._buffer = bytearray()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()  # (once: asyncio's TLS transport forgets its socket on a second)

    def abort(self) -> None:
        """Drop the socket at once, whoever holds it now (aiohttp after a hand-off)."""
        if self._transport is not None:
            self._transport.abort()


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
        # RFC 9110 §9.3.2, §15.3.5, §15.4.5: no content for HEAD, 204 and 304, not even a last chunk
        head_only = request.method == "HEAD" or status in _NO_CONTENT
        framing = "" if status in _NO_CONTENT else "Transfer-Encoding: chunked\r\n"
        if not request.keep_alive:
            framing += "Connection: close\r\n"
        self.started = True
        conn.write(head_bytes(status, reason, headers, framing))
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

    def __init__(self, state: RelayState, fallback: Callable[[], asyncio.Protocol]) -> None:
        self.state = state
        self.fallback = fallback
        self.limits = state.limits
        self.client_errors = state.client_errors
        self.loop = asyncio.get_running_loop()
        self.connections: set[FrontProtocol] = set()
        #: The relay is stopping: each connection closes after its answer.
        self.stopping = False
        #: The relay has stopped: a connection still being accepted is closed at once.
        self.closed = False
        #: Connections open on the port, the ones handed to aiohttp included.
        self.open_connections = 0
        #: Every connection whose socket is not yet closed, the handed-off ones too.
        self.alive: set[FrontProtocol] = set()
        self._all_lost: asyncio.Future[None] | None = None  # what :meth:`finish` waits on
        self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    def forget(self, conn: FrontProtocol) -> None:
        """``conn``'s socket is closed."""
        self.alive.discard(conn)
        if not self.alive and self._all_lost is not None and not self._all_lost.done():
            self._all_lost.set_result(None)

    def __call__(self) -> FrontProtocol:
        return FrontProtocol(self)

    def _sweep(self) -> None:
        """End the connections past their deadline (idle, slow head, slow body, lingering)."""
        now = self.loop.time()
        for conn in [c for c in self.connections if c.deadline <= now]:
            conn.expire()
        self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    def stop(self) -> None:
        """The relay is stopping: idle connections close now, busy ones after their answer.
        The port still serves meanwhile (a listener opens the rendezvous of a call in
        flight there), and the sweep still ends connections past their deadline."""
        self.stopping = True
        for conn in list(self.connections):
            if conn.state is not ConnState.BUSY:
                conn.close()

    def close(self) -> None:
        """The relay takes no more connections: :meth:`stop`, and a connection accepted
        from now on (the listening socket closed, its last accepts on their way) is
        closed at once.  Called before aiohttp shuts down: from here on no connection
        is handed to it, so none can reach it after it has shut its own down."""
        self.stop()
        self.closed = True

    async def finish(self, timeout: float = 1.0) -> None:
        """The relay has stopped: every connection still open is closed (a call whose
        answer never came), the sweep ends, and this returns once every socket is
        closed.  A TLS connection's closes when the peer answers our close_notify:
        those that do not within ``timeout`` seconds are dropped."""
        self.close()
        for conn in list(self.connections):
            conn.close()
        self._sweeper.cancel()
        if not await self._all_lost_within(timeout):
            for conn in list(self.alive):
                conn.abort()
            await self._all_lost_within(timeout)  # (an abort's: the loop's next step)

    async def _all_lost_within(self, seconds: float) -> bool:
        if not self.alive:
            return True
        self._all_lost = self.loop.create_future()
        try:
            await asyncio.wait_for(self._all_lost, seconds)
        except TimeoutError:
            return False
        return True
