"""A peer that sends Pings and never reads their Pongs is not read from until it does.

Every Ping must be answered, and each Pong waits in the relay's write buffer until
the peer reads it: before, a WebSocket sender (or a listener) flooding Pings grew the
relay's memory by about as much as it sent (687 MiB in 20 s, measured by hand).
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import quote

from hc.asyncio import HybridConnectionListener, TokenProvider
from hc.asyncio.memory import MemoryPeer, MemoryTransport
from relay.rawws import ReadingGate
from tests.support import ping_flood
from tests.support.ping_flood import BOUND, PING, flood_until_held, read_pongs
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayHandle

PROVIDER = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)


def upgrade(relay: RelayHandle, path: str, action: str) -> socket.socket:
    """A raw WebSocket to the relay (``action`` connect or listen) that reads nothing."""
    token = quote(relay.token(path), safe="")
    return ping_flood.upgrade(relay.port, f"/$hc/{path}?sb-hc-action={action}&sb-hc-token={token}")


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
