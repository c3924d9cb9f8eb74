"""The SDK does not read on from a relay that sends Pings and never reads their Pongs.

Every Ping must be answered, and each Pong waits in the write buffer until the peer
reads it; a listener's control channel hands every event on as it is parsed, so
nothing else would stop reading.  The peer here is a bare socket playing a relay
that misbehaves: it completes the listener's handshake, then only sends Pings.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading

from hc.asyncio import HybridConnectionListener, TokenProvider
from hc.handshake import accept_key

PROVIDER = TokenProvider.create_shared_access_signature_token_provider("key", "secret")
#: A server Ping with 125 bytes of payload (unmasked).
PING = bytes((0x89, 125)) + b"p" * 125
#: A client's Pong for it: masked, so 4 bytes longer.
PONG_SIZE = 2 + 4 + 125
#: What the listener may take in before it stops reading a peer that reads nothing.
BOUND = 32 * 2**20


class PingingRelay:
    """Accepts one connection, answers its Upgrade, floods Pings until it is not read."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # kept by accept()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.sent = 0
        self.pongs = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            self.done.set()

    def _run(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.settimeout(10)
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += conn.recv(1)
            key = re.search(rb"Sec-WebSocket-Key: (\S+)", head)
            assert key is not None
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                         + accept_key(key.group(1).decode()).encode() + b"\r\n\r\n")
            batch = PING * 512
            conn.settimeout(1.0)
            while self.sent < BOUND:
                try:
                    conn.sendall(batch)
                except TimeoutError:
                    break
                self.sent += len(batch)
            # Now read: every Ping sent whole gets its Pong.
            conn.settimeout(10)
            want, got = self.sent // len(PING) * PONG_SIZE, 0
            while got < want:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                got += len(chunk)
            self.pongs = got // PONG_SIZE


async def test_a_listener_stops_reading_a_relay_that_does_not_read_its_pongs() -> None:
    relay = PingingRelay()
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    listener = HybridConnectionListener(f"http://127.0.0.1:{relay.port}/x", PROVIDER,
                                        keep_alive_interval=0)
    try:
        await asyncio.wait_for(listener.open(), 10)
        await asyncio.to_thread(relay.done.wait, 60)
        assert relay.error is None, relay.error
        assert relay.sent < BOUND, "the listener went on reading Pings whose Pongs pile up"
        assert relay.pongs == relay.sent // len(PING)
    finally:
        await listener.close()
        relay.server.close()
