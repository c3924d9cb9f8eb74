"""The attackers of the flood scenarios, on raw sockets, and the prober that watches a relay.

Each attacker connection reports how it ended (:class:`Ending`): the status of the
response the relay sent (0 for none), and when the relay answered or closed, counted
from the moment the connection was opened.  :class:`Prober` makes a normal call every
half second while a flood runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field

import aiohttp

from tests.chaos.calls import Ledger, call, new_id

__all__ = ["PING", "Ending", "Idle", "Prober", "body_flood_request", "drip", "header_flood",
           "open_idle", "status_of", "unread_flood"]

HEAD_LIMIT = 64 * 1024


@dataclass
class Ending:
    """How one attacker connection ended."""

    status: int          # the relay's response status, 0 if it only closed
    after: float         # seconds from open to the answer or close
    closed: bool         # the relay closed the connection (False: still open at the end)


def status_of(head: bytes) -> int:
    """The status code of an HTTP/1.x response head, 0 when there is none."""
    parts = head.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return 0


async def _ending(reader: asyncio.StreamReader, opened: float, limit: float) -> Ending:
    """Read until the relay answers and closes (or ``limit`` seconds after ``opened``)."""
    data = b""
    try:
        while True:
            left = limit - (time.monotonic() - opened)
            chunk = await asyncio.wait_for(reader.read(HEAD_LIMIT), max(0.01, left))
            if not chunk:
                return Ending(status_of(data), time.monotonic() - opened, True)
            data += chunk[: HEAD_LIMIT - len(data)]
    except TimeoutError:
        return Ending(status_of(data), time.monotonic() - opened, False)
    except (ConnectionError, OSError):
        return Ending(status_of(data), time.monotonic() - opened, True)


async def open_idle(host: str, port: int, count: int) -> list[Idle]:
    """``count`` connections that send nothing, opened 100 at a time."""
    opened: list[Idle] = []
    while len(opened) < count:
        batch = min(100, count - len(opened))
        pairs = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in range(batch)))
        opened += [Idle(reader, writer, time.monotonic()) for reader, writer in pairs]
    return opened


@dataclass
class Idle:
    """An open connection that sends nothing."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened: float

    async def ending(self, limit: float) -> Ending:
        """How (and when) the relay ends it; ``limit`` seconds after it was opened at most."""
        try:
            return await _ending(self.reader, self.opened, limit)
        finally:
            self.writer.close()


async def drip(host: str, port: int, head: bytes, drops: bytes, limit: float) -> Ending:
    """Send ``head`` at once, then ``drops`` one byte a second, while reading.

    A slowloris head is an unfinished request head with header bytes as ``drops``; a
    slow body is a complete chunked head with ``1\\r\\nx\\r\\n`` chunks as ``drops``.
    """
    opened = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)

    async def trickle() -> None:
        writer.write(head)
        for index in range(len(drops)):
            await asyncio.sleep(1.0)
            writer.write(drops[index:index + 1])
            await writer.drain()

    dripping = asyncio.create_task(trickle())
    try:
        return await _ending(reader, opened, limit)
    finally:
        dripping.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await dripping
        writer.close()


async def header_flood(host: str, port: int, path: str, size: int, until: float) -> list[int]:
    """Requests with ``size`` bytes of headers, no token, one connection after another."""
    statuses = []
    junk = b"X-Junk: " + b"a" * size + b"\r\n"
    while time.monotonic() < until:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /{path} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode() + junk + b"\r\n")
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        ending = await _ending(reader, time.monotonic(), 10.0)
        statuses.append(ending.status)
        writer.close()
    return statuses


async def body_flood_request(host: str, port: int, path: str, size: int) -> Ending:
    """POST ``size`` bytes without a token; ends when the relay answered (or after 60 s)."""
    opened = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"POST /{path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 f"Content-Type: text/xml\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"<a/>" * (256 * 1024)

    async def push() -> None:
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    pushing = asyncio.create_task(push())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        return Ending(status_of(head), time.monotonic() - opened, False)
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        return Ending(0, time.monotonic() - opened, True)
    finally:
        pushing.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await pushing
        writer.close()


#: A client WebSocket Ping (125 bytes, masked with the all-zero key).
PING = bytes((0x89, 0x80 | 125)) + b"\0\0\0\0" + b"p" * 125


async def unread_flood(host: str, port: int, head: bytes, repeat: bytes, until: float) -> int:
    """A client that reads nothing: ``head`` (its response head read, if it is an
    upgrade), then ``repeat`` again and again until ``until``; its receive buffer is
    kept small, so what the relay answers backs up at once.  Returns the bytes the
    relay took (written and drained) by then."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    taken = 0
    try:
        if head:
            writer.write(head)
            response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert status_of(response) == 101, response
        batch = repeat * max(1, 65536 // len(repeat))
        while (left := until - time.monotonic()) > 0:
            writer.write(batch)
            try:
                await asyncio.wait_for(writer.drain(), left)
            except TimeoutError:
                break  # the relay stopped reading: held until the flood ends
            taken += len(batch)
    except (ConnectionError, OSError):
        pass  # the relay closed it: what it took so far counts
    finally:
        writer.transport.abort()
    return taken


@dataclass
class Prober:
    """A normal call every ``every`` seconds while running; their outcomes in ``ledger``."""

    session: aiohttp.ClientSession
    url: str
    token: str
    every: float = 0.5
    ledger: Ledger = field(default_factory=Ledger)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        calls: set[asyncio.Task[object]] = set()
        try:
            while True:
                task = asyncio.create_task(self._one())
                calls.add(task)
                task.add_done_callback(calls.discard)
                await asyncio.sleep(self.every)
        finally:
            await asyncio.gather(*calls, return_exceptions=True)

    async def _one(self) -> None:
        self.ledger.add(await call(self.session, self.url, self.token, new_id("probe"),
                                   timeout=30))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> Ledger:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.ledger
