"""``StreamLane``: blocking writes and reads on a stream's socket, each message sent once.

The accelerated build compiles this module's subject too (tests/test_compiled.py runs
tests/hc on the compiled copy): there, a write loop once sent every message twice
(mypyc evaluated the slice bound ``view[os.write(fd, view):]`` twice).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hc.asyncio.connection import WebSocketProtocol
from hc.asyncio.lane import StreamLane
from hc.events import BinaryReceived
from hc.framing import Side, WebSocketEndpoint


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)  # as a loop's socket is
    with ours, theirs:
        yield ours, theirs


def _lane(sock: socket.socket) -> StreamLane:
    # send and receive touch only the endpoint and the socket; the protocol is for
    # give_back, in the loop's thread: a real one all the same (compiled, the lane
    # takes nothing else), made in a loop of its own and never used
    endpoint = WebSocketEndpoint(Side.CLIENT)

    async def make() -> WebSocketProtocol:
        return WebSocketProtocol(endpoint, b"", "")

    return StreamLane(asyncio.run(make()), endpoint, sock.fileno())


def _read_messages(sock: socket.socket, count: int) -> list[bytes]:
    """What the peer reads until ``count`` messages (then whatever else came in the
    same reads), as a server endpoint parses them."""
    server = WebSocketEndpoint(Side.SERVER)
    got: list[bytes] = []
    sock.settimeout(10)
    while len(got) < count:
        data = sock.recv(1 << 20)
        assert data, "the lane's socket ended"
        server.receive_data(data)
        got += [event.data for event in server.events_received() if isinstance(event, BinaryReceived)]
    return got


def test_each_message_goes_out_once(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    lane = _lane(ours)
    for n in range(3):
        lane.send(b"request %d " % n + b"x" * 700, time.monotonic() + 10)
        assert _read_messages(theirs, 1) == [b"request %d " % n + b"x" * 700]
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(1)  # nothing more: no copy
    assert lane.usable


def test_a_message_larger_than_the_socket_buffer_goes_out_whole_once(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 2048  # 512 KiB: many partial writes, waits for room
    received: list[object] = []

    def read() -> None:
        try:
            received.append(_read_messages(theirs, 2))
        except Exception as exc:  # noqa: BLE001 - the test's to report
            received.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    lane = _lane(ours)
    lane.send(big, time.monotonic() + 10)
    lane.send(b"after", time.monotonic() + 10)
    reader.join(10)
    assert received == [[big, b"after"]]
    assert lane.usable
