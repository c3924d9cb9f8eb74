"""A HybridConnectionStream over the in-memory transport: messages, the read-ahead bound, close."""

from __future__ import annotations

import asyncio

from hc.asyncio import HybridConnectionClient
from hc.asyncio.connection import QUEUE_LIMIT
from hc.events import BinaryReceived, TextReceived
from hc.framing import WebSocketEndpoint
from tests.hc.asyncio.memory_relay import MemoryRelay


async def test_a_stream_stops_reading_while_its_unread_messages_are_at_the_bound() -> None:
    relay = MemoryRelay()
    client = HybridConnectionClient("http://relay.test/echo", connector=relay.connector)
    stream = await client.create_connection()
    side = await relay.next_socket()
    assert side.query["sb-hc-action"] == ["connect"]
    endpoint = side.channel
    assert isinstance(endpoint, WebSocketEndpoint)
    for n in range(QUEUE_LIMIT * 4):
        endpoint.send_binary(b"%d" % n)
    side.flush()
    ours = side.peer.transport.peer if side.peer.transport else None  # the stream's own end
    assert ours is not None
    for _ in range(QUEUE_LIMIT * 8):  # loop steps: the pipe delivers one write per step
        if not ours.is_reading():
            break
        await asyncio.sleep(0)
    assert not ours.is_reading()  # the stream took messages up to the bound, then paused
    first = [await stream.read() for _ in range(QUEUE_LIMIT)]
    assert first == [b"%d" % n for n in range(QUEUE_LIMIT)]
    assert ours.is_reading()  # reading resumed once half the queue was taken
    rest = [await stream.read() for _ in range(QUEUE_LIMIT * 3)]
    assert rest == [b"%d" % n for n in range(QUEUE_LIMIT, QUEUE_LIMIT * 4)]
    endpoint.send_close(4000, "done")
    side.flush()
    assert await stream.read() == b""
    assert (stream.close_code, stream.close_reason) == (4000, "done")


async def test_text_and_binary_messages_keep_their_kind_both_ways() -> None:
    relay = MemoryRelay()
    client = HybridConnectionClient("http://relay.test/echo", connector=relay.connector)
    async with await client.create_connection() as stream:
        side = await relay.next_socket()
        await stream.write("tëxt")
        await stream.write(b"\x00bin")
        assert [await side.next_event() for _ in range(2)] == [
            TextReceived("tëxt"), BinaryReceived(b"\x00bin"),
        ]


async def test_a_delivering_stream_hands_each_message_over_as_read_and_its_end_once() -> None:
    relay = MemoryRelay()
    client = HybridConnectionClient("http://relay.test/echo", connector=relay.connector)
    stream = await client.create_connection()
    side = await relay.next_socket()
    endpoint = side.channel
    assert isinstance(endpoint, WebSocketEndpoint)
    endpoint.send_binary(b"queued")  # read before deliver(): handed over first
    side.flush()
    got: list[str | bytes | None] = []
    ended = asyncio.Event()

    def on_message(message: str | bytes | None) -> None:
        got.append(message)
        if message is None:
            ended.set()

    for _ in range(QUEUE_LIMIT):  # loop steps: the pipe delivers one write per step
        await asyncio.sleep(0)
    stream.deliver(on_message)
    assert got == [b"queued"]
    endpoint.send_text("text")
    endpoint.send_binary(b"binary")
    endpoint.send_close(4000, "done")
    side.flush()
    await asyncio.wait_for(ended.wait(), 5)
    assert got == [b"queued", "text", b"binary", None]  # the end once (its event and its future)
    assert (stream.close_code, stream.close_reason) == (4000, "done")
    stream.pause_reading()  # closed: nothing to pause, no error
    stream.resume_reading()
