"""One WebSocket over an asyncio transport, driving a sans-I/O machine from :mod:`hc`.

:class:`WebSocketProtocol` is an :class:`asyncio.Protocol`: it writes the
Upgrade request (:mod:`hc.handshake`), checks the ``101``, then feeds every
byte to its machine -- an :class:`hc.protocol.ControlChannel` (a listener's
control channel or rendezvous socket) or an :class:`hc.framing.WebSocketEndpoint`
(a plain WebSocket stream) -- and writes what the machine queued, in one
``write`` per step.  Events go to a callback (the control channel: no task
hop per message) or into a bounded queue that :meth:`WebSocketProtocol.next_event`
reads (reading pauses while the queue is full).

:func:`open_websocket` connects through a :data:`Connector`: TCP (and TLS for
wss) by default; tests pass :func:`hc.asyncio.memory.connector` to drive the
other end with an :class:`hc.protocol.ControlChannel` and no socket.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from hc.asyncio.errors import ProxyError, RelayUnreachableError, rejected
from hc.asyncio.proxy import choose_proxy, open_tunnel
from hc.events import ConnectionClosed, PingReceived
from hc.exceptions import LocalProtocolError, ProtocolError, RemoteProtocolError
from hc.frames import Mask, apply_mask
from hc.framing import Side, WebSocketEndpoint
from hc.handshake import (
    HandshakeRejected,
    Headers,
    Response,
    ResponseParser,
    Target,
    client_request,
)
from hc.proxy import Proxy

if TYPE_CHECKING:
    from hc.asyncio.thread_reader import ThreadReader
    from hc.asyncio.thread_writer import ThreadWriter

__all__ = [
    "Connector",
    "Machine",
    "MaskKeys",
    "WebSocketProtocol",
    "mask_keys",
    "open_on_relay",
    "open_websocket",
    "shared_socket_fd",
    "tcp_connector",
    "thread_shareable",
    "xor_mask",
]

log = logging.getLogger("hc.asyncio")

#: ``connector(protocol_factory, target)``: a connected transport whose protocol is
#: the one the factory made (``loop.create_connection`` shaped).
Connector = Callable[[Callable[[], asyncio.Protocol], Target], Awaitable[asyncio.BaseTransport]]
#: Events queued for :meth:`WebSocketProtocol.next_event` before reading pauses.
QUEUE_LIMIT = 16
#: Seconds the closing handshake may take before the transport is dropped.
CLOSE_TIMEOUT = 1.0


class MaskKeys:
    """Fresh 4-byte masking keys from the OS's CSPRNG, read 4 KiB at a time: one
    ``getrandom`` call per 1,024 frames instead of one per frame (RFC 6455 §5.3 asks for
    unpredictable keys, not for a system call each)."""

    def __init__(self, batch: int = 4096) -> None:
        self._batch, self._pool, self._at = batch, b"", batch

    def __call__(self) -> bytes:
        at = self._at
        if at + 4 > len(self._pool):
            self._pool, at = os.urandom(self._batch), 0
        self._at = at + 4
        return self._pool[at : at + 4]


#: The masking keys of every client frame this SDK writes.
mask_keys = MaskKeys()


def _xor_mask() -> Mask:
    """websockets' C loop: a fifth of the listener's instructions per request less
    (``bench.listener_micro``); the core's own where websockets has no C extension."""
    try:
        from websockets.speedups import apply_mask as fast
    except ImportError:
        return apply_mask
    return fast


#: How every frame this SDK writes is masked (RFC 6455 §5.3).
xor_mask: Mask = _xor_mask()


def shared_socket_fd(transport: asyncio.BaseTransport) -> int | None:
    """The descriptor of ``transport``'s socket, for another thread to read or write
    beside the loop (:func:`thread_shareable`); None when it
    cannot be shared: TLS (its state lives in the loop's transport), or not a socket."""
    if transport.get_extra_info("ssl_object") is not None:
        return None
    sock = transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


def thread_shareable(protocol: WebSocketProtocol) -> tuple[WebSocketEndpoint, int] | None:
    """An open client WebSocket's endpoint and socket descriptor, for another thread to
    read or write beside the loop (``hc.asyncio.thread_reader``, ``hc.asyncio.thread_writer``);
    None when it has none to share (TLS, not a socket, closing, not a client endpoint)."""
    transport, endpoint = protocol.transport, protocol.machine
    if (transport is None or transport.is_closing() or protocol.closed.done()
            or not isinstance(endpoint, WebSocketEndpoint) or endpoint.side is not Side.CLIENT):
        return None
    fd = shared_socket_fd(transport)
    return None if fd is None else (endpoint, fd)


class Machine(Protocol):
    """What :class:`hc.protocol.ControlChannel` and :class:`hc.framing.WebSocketEndpoint` share."""

    def receive_data(self, data: bytes) -> None: ...

    def receive_eof(self) -> None: ...

    def events_received(self) -> Sequence[object]: ...

    def data_to_send(self) -> list[bytes]: ...

    def send_close(self, code: int = 1000, reason: str = "") -> None: ...


async def tcp_connector(
    factory: Callable[[], asyncio.Protocol],
    target: Target,
    *,
    ssl_context: ssl.SSLContext | None = None,
    proxy: Proxy | bool = True,
) -> asyncio.BaseTransport:
    """TCP to ``target``, with TLS when it says so (the system's trust store by default).

    ``proxy``: through that HTTP proxy, through the environment's (True), or direct
    (False); see :mod:`hc.asyncio.proxy`.
    """
    chosen = choose_proxy(proxy, target)
    if chosen is not None:
        return await open_tunnel(chosen, target, factory, ssl_context)
    loop = asyncio.get_running_loop()
    context = (ssl_context or ssl.create_default_context()) if target.tls else None
    transport, _ = await loop.create_connection(
        factory, target.host, target.port, ssl=context,
        server_hostname=target.host if context else None,
    )
    return transport


class WebSocketProtocol(asyncio.Protocol):
    """A client WebSocket: the handshake, then bytes to and from ``machine``.

    Args:
        machine: the sans-I/O endpoint (client side).
        key: the ``Sec-WebSocket-Key`` of the request written at connection.
        request: the Upgrade request's bytes.
        subprotocols: those offered.
        on_event: called with each event as it is parsed; without it events are queued.
    """

    def __init__(
        self,
        machine: Machine,
        request: bytes,
        key: str,
        subprotocols: tuple[str, ...] = (),
        on_event: Callable[[object], None] | None = None,
    ) -> None:
        self.machine = machine
        self._request = request
        self._parser: ResponseParser | None = ResponseParser(key, subprotocols)
        loop = self._loop = asyncio.get_running_loop()  # (each lookup is a getpid() call)
        self.handshake: asyncio.Future[Response] = loop.create_future()
        self.closed: asyncio.Future[ConnectionClosed] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.error: RemoteProtocolError | None = None  # the peer's broken rule, if any
        self._on_event = on_event
        self._queue: collections.deque[object] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._paused_reading = False
        #: Reading is paused until the Pongs owed to the peer leave the write buffer.
        self._pongs_unread = False
        #: The consumer asked for nothing more for now (:meth:`hold_reading`).
        self._consumer_holds = False
        self._writable: asyncio.Future[None] | None = None
        self._flush_due = False  # a write of what was sent is scheduled for this loop step
        self._flushed: asyncio.Future[None] | None = None  # resolved by that write
        #: Set when other threads write to this socket too: every write goes through it.
        self.gate: ThreadWriter | None = None
        #: Set while another thread reads this socket: the loop takes reading back from
        #: it before it closes the connection or reads the connection's end.
        self.reader: ThreadReader | None = None
        self._gone = False  # connection_lost came: the socket is closed
        self._lost: asyncio.Future[None] | None = None  # what close() waits on for that

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        transport = self.transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._parser is not None:
            self._handshake_data(data)
            return
        try:
            self.machine.receive_data(data)
        except RemoteProtocolError as exc:
            self._fail(exc)
        self._flush()
        self._dispatch()

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        if self.reader is not None:
            self.reader.take_over()
        if self.gate is not None:
            self.gate.close()
        self._ended()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self._pongs_unread:
            self._pongs_unread = False
            self.read_again()

    def read_again(self) -> None:
        """Read again, unless the queue is full, Pongs wait, the consumer holds reading
        or another thread reads."""
        transport = self.transport
        if (not self._paused_reading and not self._pongs_unread and not self._consumer_holds
                and self.reader is None and transport is not None and not transport.is_closing()):
            transport.resume_reading()

    def hold_reading(self) -> None:
        """The consumer can take nothing more for now: read nothing until :meth:`release_reading`."""
        self._consumer_holds = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    def release_reading(self) -> None:
        self._consumer_holds = False
        self.read_again()

    # -- handshake ---------------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> None:
        assert self._parser is not None
        try:
            done = self._parser.feed(data)
        except RemoteProtocolError as exc:
            self._handshake_failed(exc)
            return
        if not done:
            return
        response, leftover = self._parser.response, self._parser.leftover
        assert response is not None
        self._parser = None
        if response.status != 101:
            self._handshake_failed(HandshakeRejected(response))
            return
        self.handshake.set_result(response)
        if leftover:
            self.data_received(leftover)

    def _handshake_failed(self, exc: Exception) -> None:
        self._parser = None
        if not self.handshake.done():
            self.handshake.set_exception(exc)
        self._close_transport()

    def _ended(self) -> None:
        if self._parser is not None:
            try:
                refusal = self._parser.feed_eof()
            except RemoteProtocolError as exc:
                self._handshake_failed(exc)
            else:
                self._handshake_failed(HandshakeRejected(refusal))
            return
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("connection lost before the handshake"))
            return
        self.machine.receive_eof()
        self._dispatch()

    # -- events ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self.take_back(self.machine.events_received())

    def take_back(self, events: Sequence[object], error: RemoteProtocolError | None = None) -> None:
        """Dispatch ``events`` as if :meth:`data_received` had just parsed them (and fail
        with ``error`` after them): what a :class:`hc.asyncio.lane.StreamLane` read on the
        socket for this protocol while its loop was parked.  In the loop's thread."""
        self._deliver(events)
        if error is not None:
            self._fail(error)

    @property
    def idle(self) -> bool:
        """Open, with nothing queued to read and nothing waiting to be written."""
        transport = self.transport
        return (self.handshake.done() and not self.closed.done() and not self._queue
                and not self.write_paused and transport is not None and not transport.is_closing()
                and transport.get_write_buffer_size() == 0)

    @property
    def read_idle(self) -> bool:
        """Open, reading, with nothing read and not yet consumed."""
        return (self.handshake.done() and not self.closed.done() and not self._queue
                and not self._paused_reading and not self._pongs_unread)

    def _deliver(self, events: Sequence[object]) -> None:
        pinged = False
        for event in events:
            if type(event) is PingReceived:
                pinged = True
            elif isinstance(event, ConnectionClosed):
                if not self.closed.done():
                    self.closed.set_result(event)
                self._close_transport()
            if self._on_event is not None:
                self._on_event(event)
            else:
                self._queue.append(event)
        if self._on_event is None and self._queue:
            self._wake()
            if len(self._queue) >= QUEUE_LIMIT and not self._paused_reading and self.transport:
                self._paused_reading = True
                self.transport.pause_reading()
        if pinged and self.write_paused:
            self._hold_for_pongs()

    def _hold_for_pongs(self) -> None:
        """A Ping came while the write buffer is over its high-water mark: read nothing
        more until it drains (a peer that sends Pings and never reads their Pongs would
        grow it without end; every Ping must be answered)."""
        transport = self.transport
        if not self._pongs_unread and transport is not None and not transport.is_closing():
            self._pongs_unread = True
            transport.pause_reading()

    def deliver_to(self, on_event: Callable[[object], None]) -> None:
        """From now on pass events to ``on_event``, the ones queued so far first."""
        self._on_event = on_event
        while self._queue:
            on_event(self._queue.popleft())
        if self._paused_reading and self.transport is not None:
            self._paused_reading = False
            self.read_again()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_event(self) -> object:
        """The next queued event; after ConnectionClosed, that event again."""
        while not self._queue:
            if self.closed.done():
                return self.closed.result()
            self._waiter = self._loop.create_future()
            await self._waiter
        event = self._queue.popleft()
        if self._paused_reading and len(self._queue) < QUEUE_LIMIT // 2 and self.transport:
            self._paused_reading = False
            self.read_again()
        return event

    def _fail(self, exc: RemoteProtocolError) -> None:
        """The peer broke a rule: the machine queued our Close; drop the connection after it."""
        self.error = exc
        log.warning("WebSocket closed with %d: %s", exc.close_code, exc.reason)
        self._flush()
        if not self.closed.done():
            self.closed.set_result(ConnectionClosed(exc.close_code, exc.reason))
        self._wake()
        self._close_transport()

    # -- output ------------------------------------------------------------------------

    def _flush(self) -> None:
        data = self.machine.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            if self.gate is None:
                self.transport.write(data[0] if len(data) == 1 else b"".join(data))
            else:
                self.gate.write(data[0] if len(data) == 1 else b"".join(data))

    def send(self, queue: Callable[[], None]) -> None:
        """Run ``queue`` (a machine ``send_*`` call); what it queued is written at the end
        of this loop step, with everything else sent in it (:meth:`drain` waits for that).

        Raises:
            ConnectionResetError: the connection is closed or closing.
        """
        self._queue_up(queue)
        self.flush_soon()

    def send_now(self, queue: Callable[[], None]) -> None:
        """:meth:`send`, written at once with whatever else is queued (an answer that is
        ready leaves now: the peer starts on it while later ones are still being made;
        and no loop step is spent on a write left for later).

        Raises:
            ConnectionResetError: the connection is closed or closing.
        """
        self._queue_up(queue)
        self._flush()

    def _queue_up(self, queue: Callable[[], None]) -> None:
        if self.closed.done() or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the WebSocket is closed")
        try:
            queue()
        except LocalProtocolError as exc:
            raise ConnectionResetError(f"the WebSocket is closing: {exc}") from exc

    def flush_soon(self) -> None:
        """Write what is sent from now until the callbacks already scheduled have run.

        :meth:`send` calls it, so everything sent in one loop step leaves in one write.
        (An inline answer does not wait for it: :meth:`send_now`.)
        """
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._due_flush)

    def _due_flush(self) -> None:
        self._flush_due = False
        self._flush()
        flushed, self._flushed = self._flushed, None
        if flushed is not None and not flushed.done():
            flushed.set_result(None)

    @property
    def flush_due(self) -> bool:
        """Whether something sent in this loop step is still to be written (:meth:`send`)."""
        return self._flush_due

    @property
    def write_paused(self) -> bool:
        """Whether the transport's write buffer is over its high-water mark."""
        return self._writable is not None and not self._writable.done()

    async def drain(self) -> None:
        """Wait until what was sent is written to the transport, and while the
        transport's write buffer is over its high-water mark.

        Raises:
            ConnectionResetError: the connection closed meanwhile.
        """
        if self._flush_due:
            if self._flushed is None:
                self._flushed = self._loop.create_future()
            await self._flushed
        if self._writable is not None and not self._writable.done():
            await self._writable
        if self.closed.done() and self.transport is not None and self.transport.is_closing():
            raise ConnectionResetError("the WebSocket closed")

    async def close(self, code: int = 1000, reason: str = "", timeout: float = CLOSE_TIMEOUT) -> ConnectionClosed:
        """Start the closing handshake, wait (at most ``timeout``) for the peer's Close,
        then close the socket; return once it is closed.

        The socket closes once what is written is sent, and over TLS once the peer
        answers our close_notify: a socket not closed ``timeout`` seconds after the
        handshake is dropped (as a socket is at once when this is cancelled).
        """
        if self.reader is not None:
            self.reader.take_over()
        try:
            if not self.closed.done():
                try:
                    self.send(lambda: self.machine.send_close(code, reason))
                except ConnectionResetError:
                    pass
                try:
                    await asyncio.wait_for(asyncio.shield(self.closed), timeout)
                except TimeoutError:
                    pass
            self._close_transport()
            if not await self._lost_within(timeout):
                self.abort()
                await self._lost_within(CLOSE_TIMEOUT)  # (an abort's: the loop's next step)
        except BaseException:  # cancelled: the socket is not left open
            self.abort()
            raise
        if not self.closed.done():
            self.closed.set_result(ConnectionClosed(1006))
        return self.closed.result()

    def _close_transport(self) -> None:
        """Close the socket (flushing what is written), once: asyncio's TLS transport
        takes a second close() as leave to forget its socket, and an abort() after it
        would then do nothing (the socket left open until it is collected)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def _lost_within(self, seconds: float) -> bool:
        """Whether the socket is closed (connection_lost), waiting up to ``seconds``."""
        if self._gone or self.transport is None:
            return True
        if self._lost is None:
            self._lost = self._loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), max(0.0, seconds))
        except TimeoutError:
            return False
        return True

    def abort(self) -> None:
        """Drop the connection at once (no closing handshake)."""
        if self.reader is not None:
            self.reader.take_over()
        if self.transport is not None:
            self.transport.abort()


async def open_websocket(
    url: str,
    machine: Machine,
    *,
    headers: Headers = (),
    subprotocols: tuple[str, ...] = (),
    on_event: Callable[[object], None] | None = None,
    connector: Connector | None = None,
    timeout: float = 30.0,
) -> WebSocketProtocol:
    """Connect to ``url``, complete the handshake, and return the protocol (OPEN).

    Raises:
        HandshakeRejected: the server answered something other than 101 (its status and body).
        RemoteProtocolError: the answer was not a valid handshake response.
        OSError, TimeoutError: the server could not be reached in ``timeout`` seconds.
    """
    target = Target.parse(url)
    request, key = client_request(target, headers, subprotocols=subprotocols)
    protocol = WebSocketProtocol(machine, request, key, subprotocols, on_event)
    connect = connector or tcp_connector
    async with asyncio.timeout(timeout):
        transport = await connect(lambda: protocol, target)
        try:
            await protocol.handshake
        except BaseException:
            cast(asyncio.Transport, transport).abort()  # nothing to flush: no TLS close_notify to wait for either
            raise
    return protocol


async def open_on_relay(
    url: str,
    machine: Machine,
    relay_base: str,
    *,
    token: str | None,
    headers: Headers = (),
    subprotocols: tuple[str, ...] = (),
    connector: Connector | None = None,
) -> WebSocketProtocol:
    """:func:`open_websocket` to the relay at ``relay_base``, with ``token`` (if any) in the
    ``ServiceBusAuthorization`` header, its failures told as the SDK's errors.

    Raises:
        RelayRejectedError: the relay refused the handshake (its status and reason).
        RelayUnreachableError: no connection, or no valid handshake answer.
        ProxyError: the HTTP proxy on the way failed (its own errors, not the relay's).
    """
    sent = (*headers, ("ServiceBusAuthorization", token)) if token is not None else headers
    try:
        return await open_websocket(url, machine, headers=sent, subprotocols=subprotocols,
                                    connector=connector)
    except ProxyError:
        raise
    except HandshakeRejected as exc:
        response = exc.response
        raise rejected(response.status, response.reason, response.body) from exc
    except (OSError, TimeoutError, ProtocolError) as exc:
        raise RelayUnreachableError(
            f"cannot reach the relay at {relay_base}: {exc or type(exc).__name__}"
        ) from exc
