"""A WebSocket client that sends Pings and reads nothing: the peer a server must not
buffer Pongs for without end (tests of the relay's sockets and NetTcp's direct endpoint)."""

from __future__ import annotations

import base64
import os
import socket

__all__ = ["BOUND", "PING", "flood_until_held", "read_pongs", "upgrade"]

#: A client Ping with 125 bytes of payload, masked with the all-zero key.
PING = bytes((0x89, 0x80 | 125)) + b"\0\0\0\0" + b"p" * 125
#: What a server may take in before it stops reading a peer that reads nothing: the
#: kernel's buffers on both ends and one write buffer's high-water mark, a few MiB.
#: A server that answers every Ping at once without that hold reads on without end.
BOUND = 32 * 2**20


def upgrade(port: int, target: str) -> socket.socket:
    """A WebSocket opened on 127.0.0.1:``port`` at ``target``, blocking, whose receive
    buffer is kept small so that what the server writes to it backs up soon."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        .encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def flood_until_held(sock: socket.socket) -> int:
    """Send Pings until the server stops taking them (or ``BOUND`` bytes went); returns
    how many bytes it took."""
    batch, sent = PING * 512, 0
    sock.settimeout(1.0)
    while sent < BOUND:
        try:
            sock.sendall(batch)
        except TimeoutError:
            return sent
        sent += len(batch)
    return sent


def read_pongs(sock: socket.socket, pings: int, skip: int = 0) -> int:
    """Read until ``pings`` Pongs have come (each 2 + 125 bytes, after ``skip`` bytes of
    something else); returns how many came."""
    sock.settimeout(10)
    want, got = skip + pings * 127, bytearray()
    while len(got) < want:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    pongs = got[skip:]
    assert pongs[:2] == bytes((0x8A, 125)), bytes(pongs[:8])
    return len(pongs) // 127
