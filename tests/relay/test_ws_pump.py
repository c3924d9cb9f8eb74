"""The relay's frame pump between a WebSocket sender and its listener (relay.ws_senders).

Data frames cross as soon as the relay parses them (``RawWebSocket.forward_to``) while
the other side can take them; otherwise they queue for the copy task, which waits for
room.  These tests check that the two ways keep the frames' order, leave control frames
out, and still push back on a sender whose listener does not read.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from websockets.frames import Frame, Opcode

from relay.rawws import RawWebSocket
from tests.relay.test_ws_close import RawSender, accepting_listener
from tests.support.relay import RelayHandle

MIB = 1024 * 1024


def _masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True, extensions=[])


def _plain(opcode: Opcode, data: bytes) -> bytes:
    return Frame(opcode, data).serialize(mask=False, extensions=[])


class KeepingTransport(asyncio.Transport):
    """Keeps what the relay writes; reading can be paused."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.paused = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _socket() -> tuple[RawWebSocket, KeepingTransport, SimpleNamespace]:
    """A RawWebSocket on a transport that keeps its writes, and its HTTP protocol's
    ``writing_paused`` flag to set (what ``RawWebSocket`` reads of the aiohttp request)."""
    transport, http = KeepingTransport(), SimpleNamespace(writing_paused=False)
    return RawWebSocket(SimpleNamespace(transport=transport, protocol=http)), transport, http  # type: ignore[arg-type]


async def test_a_frame_waits_behind_those_queued_before_it_even_once_the_sink_has_room() -> None:
    source, source_out, _ = _socket()
    sink, sink_out, sink_http = _socket()
    source.forward_to(sink)
    source.feed_data(_masked(Opcode.BINARY, b"one"))  # crosses at once
    assert sink_out.writes == [_plain(Opcode.BINARY, b"one")]
    sink_http.writing_paused = True
    source.feed_data(_masked(Opcode.BINARY, b"two"))  # the sink is full: queued
    sink_http.writing_paused = False
    source.feed_data(_masked(Opcode.BINARY, b"three") + _masked(Opcode.PING, b"p"))
    assert sink_out.writes == [_plain(Opcode.BINARY, b"one")]  # "three" waits behind "two"
    assert source_out.writes == [_plain(Opcode.PONG, b"p")]  # the relay answers the ping itself
    queued = [await source.recv_frame() for _ in range(3)]
    assert [(f.opcode, f.data) for f in queued] == [
        (Opcode.BINARY, b"two"), (Opcode.BINARY, b"three"), (Opcode.PING, b"p")]
    source.feed_data(_masked(Opcode.TEXT, b"four"))  # the queue is empty again: at once
    assert sink_out.writes[1:] == [_plain(Opcode.TEXT, b"four")]


async def test_frames_written_together_arrive_in_order_and_pings_stay_behind(
    arelay: RelayHandle,
) -> None:
    async with accepting_listener(arelay, "pump-order") as accepted:
        sender = await RawSender.connect(arelay, "pump-order")
        listener = await asyncio.wait_for(accepted, 5)
        chunks = []
        for i in range(200):
            chunks.append(_masked(Opcode.BINARY, b"m%03d" % i))
            if i % 7 == 0:
                chunks.append(_masked(Opcode.PING, b"p"))
        # a fragmented message, then a text one: in one write with the rest
        chunks += [_masked(Opcode.BINARY, b"frag-", fin=False), _masked(Opcode.CONT, b"ment", fin=False),
                   _masked(Opcode.CONT, b"ed"), _masked(Opcode.TEXT, b"last")]
        sender.writer.write(b"".join(chunks))
        got = [await asyncio.wait_for(listener.recv(), 5) for _ in range(202)]
        assert got == [b"m%03d" % i for i in range(200)] + [b"frag-mented", "last"]
        sender.writer.close()


async def test_a_listener_that_does_not_read_holds_the_sender_back_and_loses_nothing(
    arelay: RelayHandle,
) -> None:
    async with accepting_listener(arelay, "pump-full", max_queue=1, max_size=None) as accepted:
        sender = await RawSender.connect(arelay, "pump-full")
        listener = await asyncio.wait_for(accepted, 5)
        sent = 0
        for i in range(128):  # 128 MiB: far more than every buffer on the way
            sender.writer.write(_masked(Opcode.BINARY, bytes([i]) * MIB))
            try:
                await asyncio.wait_for(sender.writer.drain(), 2)
            except TimeoutError:
                break
            sent += 1
        assert sent < 64, f"the relay took {sent} MiB for a listener that reads nothing"
        for i in range(sent + 1):  # the one whose drain timed out was written too
            message = await asyncio.wait_for(listener.recv(), 10)
            assert message == bytes([i]) * MIB, f"message {i} came out of order or damaged"
        await asyncio.wait_for(sender.writer.drain(), 10)
        sender.writer.close()
