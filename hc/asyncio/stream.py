"""``HybridConnectionStream``: a duplex WebSocket between a sender and a listener.

A client's :meth:`~hc.asyncio.HybridConnectionClient.create_connection` and a
listener's :meth:`~hc.asyncio.HybridConnectionListener.accept_connection` both
return one.  Each :meth:`~HybridConnectionStream.write` is one WebSocket
message (binary for bytes, text for str); :meth:`~HybridConnectionStream.read`
returns the next message's bytes, ``b""`` once the peer closed.

    async with await client.create_connection() as stream:
        await stream.write(b"ping")
        print(await stream.read())
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from hc.asyncio.connection import WebSocketProtocol
from hc.asyncio.lane import StreamLane
from hc.asyncio.thread_reader import ThreadReader
from hc.asyncio.thread_writer import ThreadWriter
from hc.events import BinaryReceived, ConnectionClosed, TextReceived
from hc.framing import WebSocketEndpoint
from hc.handshake import Headers
from hc.messages import AcceptCommand

__all__ = ["HybridConnectionStream"]


class HybridConnectionStream:
    """One WebSocket, as messages.

    Attributes:
        tracking_id: the relay's id of this connection (``sb-hc-id``), if known.
        subprotocol: the subprotocol agreed on in the handshake, or None.
        accept: for a listener's stream, the relay's ``accept`` command (the sender's
            connect headers and address); None for a client's.
    """

    def __init__(
        self, protocol: WebSocketProtocol, *, tracking_id: str = "",
        accept: AcceptCommand | None = None,
    ) -> None:
        self._protocol = protocol
        endpoint = protocol.machine
        assert isinstance(endpoint, WebSocketEndpoint)
        self._endpoint: WebSocketEndpoint = endpoint
        self.tracking_id: str = tracking_id
        self.accept: AcceptCommand | None = accept
        self.subprotocol = protocol.handshake.result().header("Sec-WebSocket-Protocol")

    def __repr__(self) -> str:
        return f"<HybridConnectionStream {self.tracking_id or '?'}>"

    @property
    def connect_headers(self) -> Headers:
        """The sender's handshake headers as the relay passed them on (a listener's stream)."""
        return self.accept.connect_headers if self.accept else ()

    @property
    def close_code(self) -> int | None:
        """The peer's close code once closed (1006: dropped), else None."""
        closed = self._protocol.closed
        return closed.result().code if closed.done() else None

    @property
    def close_reason(self) -> str:
        closed = self._protocol.closed
        return closed.result().reason if closed.done() else ""

    async def receive(self) -> str | bytes | None:
        """The next message (str for text, bytes for binary); None once closed."""
        while True:
            event = await self._protocol.next_event()
            if isinstance(event, BinaryReceived):
                return event.data
            if isinstance(event, TextReceived):
                return event.text
            if isinstance(event, ConnectionClosed):
                return None

    def deliver(self, on_message: Callable[[str | bytes | None], None]) -> None:
        """From now on hand each message to ``on_message`` as it is read (str for text,
        bytes for binary; None once, when the WebSocket ends), in the loop's thread with
        no task step, instead of queueing it for :meth:`receive` (not to be used after);
        the messages queued so far go first.  Nothing stops reading then but
        :meth:`pause_reading`: a consumer that cannot keep up must call it."""
        ended = False

        def end(_: object = None) -> None:
            nonlocal ended
            if not ended:
                ended = True
                on_message(None)

        def on_event(event: object) -> None:
            if ended:
                return
            if isinstance(event, BinaryReceived):
                on_message(event.data)
            elif isinstance(event, TextReceived):
                on_message(event.text)
            elif isinstance(event, ConnectionClosed):
                end()

        protocol = self._protocol
        protocol.deliver_to(on_event)
        if protocol.closed.done():  # its end may have come with no event (a broken rule)
            end()
        else:
            protocol.closed.add_done_callback(end)

    def pause_reading(self) -> None:
        """Read nothing more from the socket until :meth:`resume_reading` (:meth:`deliver`)."""
        self._protocol.hold_reading()

    def resume_reading(self) -> None:
        """Read again (unless the connection's own limits still hold it)."""
        self._protocol.release_reading()

    async def read(self) -> bytes:
        """The next message's bytes (text as UTF-8); ``b""`` once the peer closed."""
        message = await self.receive()
        if message is None:
            return b""
        return message.encode() if isinstance(message, str) else message

    def __aiter__(self) -> HybridConnectionStream:
        return self

    async def __anext__(self) -> str | bytes:
        message = await self.receive()
        if message is None:
            raise StopAsyncIteration
        return message

    async def write(self, data: bytes | str) -> None:
        """Send one message: binary for bytes, text for str.

        Raises:
            ConnectionResetError: the stream is closed.
        """
        endpoint = self._endpoint
        if isinstance(data, str):
            self._protocol.send(lambda: endpoint.send_text(data))
        else:
            self._protocol.send(lambda: endpoint.send_binary(bytes(data)))
        await self._protocol.drain()

    def write_nowait(self, data: bytes) -> bool:
        """Send one binary message now, with no await, unless the transport's write buffer
        is over its high-water mark (False: nothing sent; :meth:`write` waits for room).
        It leaves at the end of this loop step, with whatever else is sent in it.

        Raises:
            ConnectionResetError: the stream is closed.
        """
        if self._protocol.write_paused:
            return False
        endpoint = self._endpoint
        self._protocol.send(lambda: endpoint.send_binary(data))
        return True

    def lane(self) -> StreamLane | None:
        """Blocking I/O on this stream's socket for another thread while the loop is
        parked (:mod:`hc.asyncio.lane`); None when its socket cannot be shared (TLS)."""
        return StreamLane.open(self._protocol)

    def thread_writer(self) -> ThreadWriter | None:
        """Writes of whole binary messages from other threads while the loop runs
        (:mod:`hc.asyncio.thread_writer`); None when the socket cannot be shared (TLS).
        In the loop's thread; the same writer each time."""
        gate = self._protocol.gate
        return gate if gate is not None else ThreadWriter.open(self._protocol)

    def thread_reader(self) -> ThreadReader | None:
        """Reading of whole binary messages by another thread while the loop runs
        (:mod:`hc.asyncio.thread_reader`), taken from the loop now; None when it cannot be
        (TLS, something read and not consumed).  In the loop's thread."""
        return ThreadReader.open(self._protocol)

    def abort(self) -> None:
        """Drop the connection at once, with no closing handshake (the peer sees it end)."""
        self._protocol.abort()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket: the closing handshake (at most a second), then the socket
        (at most another: one the peer keeps open, say with no TLS close_notify, is
        dropped). The socket is closed when this returns."""
        await self._protocol.close(code, reason)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(1000 if exc is None else 1011)
