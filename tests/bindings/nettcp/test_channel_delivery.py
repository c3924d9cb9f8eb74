"""A session channel reading its link by callback (``HybridConnectionStream.deliver``): each
message is handled as it is read; one that must await holds the later ones, in order, and
reading pauses while too many wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bindings.nettcp.binding import NetTcpRelayBinding
from bindings.nettcp.channel import BACKLOG, ChannelState, SessionChannel
from bindings.nettcp.framing import KEEPALIVE_ACTION, ChannelMessage, parse_message, request_message

BINDING = NetTcpRelayBinding(keepalive_interval=0)


class DeliveringLink:
    """A link read by callback whose writes wait until ``room`` is set (no ``write_nowait``)."""

    def __init__(self) -> None:
        self.on_message: Callable[[str | bytes | None], None] | None = None
        self.written: list[bytes] = []
        self.room = asyncio.Event()
        self.paused = self.resumed = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.delivering = asyncio.Event()
        self.changed = asyncio.Condition()

    def deliver(self, on_message: Callable[[str | bytes | None], None]) -> None:
        self.on_message = on_message
        self.delivering.set()

    async def written_at_least(self, count: int) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.written) >= count), 5)

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1

    async def receive(self) -> str | bytes | None:
        raise AssertionError("a delivering link is not read with receive()")

    async def write(self, data: bytes | str) -> None:
        await self.room.wait()
        self.written.append(data if isinstance(data, bytes) else data.encode())
        async with self.changed:
            self.changed.notify_all()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code, self.close_reason = code, reason
        if self.on_message is not None:
            self.on_message(None)


def _relates_to(data: bytes) -> str | None:
    return parse_message(data, BINDING.reader_quotas, 65536).headers.relates_to


async def _never(message: ChannelMessage) -> bytes | None:
    raise AssertionError("no call expected")


async def test_messages_read_while_one_awaits_wait_in_order_and_reading_pauses() -> None:
    link = DeliveringLink()
    channel = SessionChannel(link, _never, BINDING)
    runner = channel.start()
    await link.delivering.wait()  # the runner handed its callback to the link
    assert link.on_message is not None
    ids = [f"urn:uuid:{n}" for n in range(BACKLOG + 3)]
    for message_id in ids:  # each answer must wait for room: the first one is awaited
        link.on_message(request_message(KEEPALIVE_ACTION, message_id))
    assert link.paused == 1 and not link.written
    link.room.set()
    await link.written_at_least(len(ids))
    assert [_relates_to(data) for data in link.written] == ids
    assert link.resumed == 1
    assert channel.state is ChannelState.OPEN and not runner.done()
    await channel.abort(1000, "done")
    await asyncio.wait_for(runner, 5)


async def test_the_end_read_behind_waiting_messages_ends_the_session_after_them() -> None:
    link = DeliveringLink()
    channel = SessionChannel(link, _never, BINDING)
    runner = channel.start()
    await link.delivering.wait()
    assert link.on_message is not None
    link.on_message(request_message(KEEPALIVE_ACTION, "urn:uuid:1"))
    link.on_message(None)
    assert not runner.done()
    link.room.set()
    await asyncio.wait_for(runner, 5)
    assert [_relates_to(data) for data in link.written] == ["urn:uuid:1"]
    assert channel.state is ChannelState.CLOSED


async def test_replies_a_peer_does_not_read_pause_reading_until_half_are_out() -> None:
    """A peer that sends calls and never reads the replies (here the link's writes wait
    for ``room``) is held back: reading pauses once ``BACKLOG`` replies wait."""

    async def echo(message: ChannelMessage) -> bytes | None:
        assert message.headers.message_id is not None
        return request_message("urn:x/EchoResponse", "urn:uuid:r-" + message.headers.message_id)

    link = DeliveringLink()
    channel = SessionChannel(link, echo, BINDING)
    runner = channel.start()
    await link.delivering.wait()
    assert link.on_message is not None
    ids = [f"urn:uuid:{n}" for n in range(BACKLOG + 4)]
    for message_id in ids:  # one at a time: each call's task runs and waits for room
        link.on_message(request_message("urn:x/Echo", message_id))
        for _ in range(3):
            await asyncio.sleep(0)
    assert link.paused >= 1 and link.resumed == 0 and not link.written
    link.room.set()
    await link.written_at_least(len(ids))
    while not link.resumed:  # the writes' tasks end after the last write returns
        await asyncio.sleep(0)
    assert link.resumed == 1
    await channel.close()
    await runner
