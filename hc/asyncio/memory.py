"""An in-memory transport pair: the SDK's sockets without a socket, for tests.

:func:`memory_connector` is a :data:`~hc.asyncio.connection.Connector`: each
socket the SDK opens becomes a :class:`MemoryTransport` pair, and the other end
goes to ``serve(target, peer)``, where a test plays the relay (typically with an
:class:`hc.protocol.ControlChannel` in Role.RELAY after answering the handshake
with :func:`hc.handshake.accept_response`).

    async def relay(target, peer):
        request = await peer.read_until(b"\\r\\n\\r\\n")
        ...
    listener = HybridConnectionListener("http://relay.test/echo", connector=memory_connector(relay))

Bytes written on one end arrive at the other's protocol in a later loop step, as
they would from a socket; ``close()`` on either end reaches both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from hc.asyncio.connection import Connector
from hc.handshake import Target

__all__ = ["MemoryPeer", "MemoryTransport", "memory_connector"]


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory byte pipe."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.peer: MemoryTransport | None = None
        self._closing = False
        self._reading = True
        self._held: list[bytes] = []  # arrived while reading is paused
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self.peer is None:
            return
        self._loop.call_soon(self.peer._deliver, bytes(data))

    def _deliver(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._reading:
            self._held.append(data)
            return
        self.protocol.data_received(data)

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        self._reading = True
        held, self._held = self._held, []
        for data in held:
            self._loop.call_soon(self._deliver, data)

    def is_reading(self) -> bool:
        return self._reading

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.call_soon(self.protocol.connection_lost, None)
        if self.peer is not None:
            self._loop.call_soon(self.peer._peer_closed)

    def _peer_closed(self) -> None:
        if not self._closing:
            if self._held:  # what arrived before the close still arrives
                self._loop.call_soon(self._peer_closed)
                return
            self.protocol.eof_received()
            self.close()

    def abort(self) -> None:
        self.close()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class MemoryPeer(asyncio.Protocol):
    """The test's end: bytes arrive in a buffer the test reads from."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: MemoryTransport | None = None
        self.closed = asyncio.Event()
        self._arrived = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        self._arrived.set()

    async def read_until(self, marker: bytes) -> bytes:
        """Everything up to and including ``marker``.

        Raises:
            ConnectionResetError: the pipe closed first.
        """
        while (end := self.buffer.find(marker)) < 0:
            if self.closed.is_set():
                raise ConnectionResetError("the in-memory pipe closed")
            self._arrived.clear()
            await self._arrived.wait()
        data = bytes(self.buffer[: end + len(marker)])
        del self.buffer[: end + len(marker)]
        return data

    async def read_some(self) -> bytes:
        """Whatever has arrived (waiting for something); b"" once closed."""
        while not self.buffer:
            if self.closed.is_set():
                return b""
            self._arrived.clear()
            await self._arrived.wait()
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


#: ``serve(target, peer)``: the test's side of one socket the SDK opened.
Serve = Callable[[Target, MemoryPeer], Coroutine[Any, Any, None]]


def memory_connector(serve: Serve) -> Connector:
    """A connector whose sockets are in-memory pipes to ``serve``, run as a task each."""
    tasks: set[asyncio.Task[None]] = set()

    async def connect(factory: Callable[[], asyncio.Protocol], target: Target) -> asyncio.BaseTransport:
        protocol, peer = factory(), MemoryPeer()
        ours, theirs = MemoryTransport(protocol), MemoryTransport(peer)
        ours.peer, theirs.peer = theirs, ours
        peer.transport = theirs
        task = asyncio.get_running_loop().create_task(serve(target, peer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        protocol.connection_made(ours)
        return ours

    return connect
