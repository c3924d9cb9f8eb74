"""A peer that sends Pings and never reads their Pongs is not read from until it does.

Every Ping must be answered, and each Pong waits in the relay's write buffer until
the peer reads it: before, a WebSocket sender (or a listener) flooding Pings grew the
relay's memory by about as much as it sent (687 MiB in 20 s, measured by hand).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from urllib.parse import quote

from hc.asyncio import HybridConnectionListener, TokenProvider
from hc.asyncio.memory import MemoryPeer, MemoryTransport
from relay.rawws import ReadingGate
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayHandle

PROVIDER = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)
#: A client Ping with 125 bytes of payload, masked with the all-zero key.
PING = bytes((0x89, 0x80 | 125)) + b"\0\0\0\0" + b"p" * 125
#: What the relay may take in before it stops reading a peer that reads nothing: the
#: kernel's buffers on both ends and one write buffer's high-water mark, a few MiB.
#: Before the fix the relay read on without end.
BOUND = 32 * 2**20


def upgrade(relay: RelayHandle, path: str, action: str) -> socket.socket:
    """A raw WebSocket to the relay (``action`` connect or listen) that reads nothing
    once upgraded (its receive buffer kept small, so the relay's writes back up)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", relay.port))
    key = base64.b64encode(os.urandom(16)).decode()
    token = quote(relay.token(path), safe="")
    sock.sendall(
        f"GET /$hc/{path}?sb-hc-action={action}&sb-hc-token={token} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{relay.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n".encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def flood_until_held(sock: socket.socket) -> int:
    """Send Pings until the relay stops taking them; returns how many bytes it took."""
    batch, sent = PING * 512, 0
    sock.settimeout(1.0)
    while sent < BOUND:
        try:
            sock.sendall(batch)
        except TimeoutError:
            return sent
        sent += len(batch)
    return sent


def read_pongs(sock: socket.socket, pings: int) -> int:
    """Read until ``pings`` Pongs have come (each 2 + 125 bytes); returns how many came."""
    sock.settimeout(10)
    want, got = pings * 127, bytearray()
    while len(got) < want:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    assert got[:2] == bytes((0x8A, 125))
    return len(got) // 127


async def test_a_sender_flooding_pings_is_held_and_answered_once_it_reads(
    arelay: RelayHandle,
) -> None:
    listener = HybridConnectionListener(f"{arelay.base_url}/echo", PROVIDER)
    await listener.open()
    try:
        accepting = asyncio.create_task(listener.accept_connection())
        sock = await asyncio.to_thread(upgrade, arelay, "echo", "connect")
        stream = await asyncio.wait_for(accepting, 5)
        assert stream is not None
        sent = await asyncio.to_thread(flood_until_held, sock)
        assert sent < BOUND, "the relay went on reading Pings whose Pongs pile up"
        # Once the sender reads, every Ping it sent gets its Pong, and the stream goes on.
        pings = sent // len(PING)
        assert await asyncio.to_thread(read_pongs, sock, pings) == pings
        sock.settimeout(10)
        await asyncio.to_thread(sock.sendall, bytes((0x82, 0x80 | 5)) + b"\0\0\0\0" + b"after")
        assert await asyncio.wait_for(stream.read(), 10) == b"after"
        sock.close()
    finally:
        await listener.close()


async def test_a_listener_flooding_pings_on_its_control_channel_is_held(arelay: RelayHandle) -> None:
    sock = await asyncio.to_thread(upgrade, arelay, "echo", "listen")
    sent = await asyncio.to_thread(flood_until_held, sock)
    assert sent < BOUND, "the relay went on reading Pings whose Pongs pile up"
    pings = sent // len(PING)
    assert await asyncio.to_thread(read_pongs, sock, pings) == pings
    sock.close()


class _Writes:
    """A write buffer the test fills and drains."""

    def __init__(self) -> None:
        self.full = False
        self.drained = asyncio.Event()
        self.lost = False

    def paused(self) -> bool:
        return self.full

    async def drain(self) -> None:
        await self.drained.wait()
        if self.lost:
            raise ConnectionResetError("lost")


def _gate() -> tuple[ReadingGate, MemoryTransport, _Writes]:
    transport, writes = MemoryTransport(MemoryPeer()), _Writes()
    return ReadingGate(transport, writes.paused, writes.drain), transport, writes


async def test_a_ping_holds_reading_only_while_the_write_buffer_is_full() -> None:
    gate, transport, writes = _gate()
    gate.pinged()
    assert transport.is_reading() and not gate.held  # a peer that reads is never held
    writes.full = True
    gate.pinged()
    assert not transport.is_reading() and gate.held
    gate.set_full(True)
    gate.set_full(False)  # the reader has room again, but the Pongs still wait
    assert not transport.is_reading()
    writes.full = False
    writes.drained.set()
    while gate.held:
        await asyncio.sleep(0)
    assert transport.is_reading()


async def test_a_full_reader_keeps_reading_paused_after_the_pongs_drain() -> None:
    gate, transport, writes = _gate()
    writes.full = True
    gate.pinged()
    gate.set_full(True)
    writes.drained.set()
    while gate.held:
        await asyncio.sleep(0)
    assert not transport.is_reading()
    gate.set_full(False)
    assert transport.is_reading()


async def test_a_connection_lost_while_held_releases_the_gate_quietly() -> None:
    gate, transport, writes = _gate()
    writes.full, writes.lost = True, True
    gate.pinged()
    writes.drained.set()
    while gate.held:
        await asyncio.sleep(0)
    assert transport.is_reading()
