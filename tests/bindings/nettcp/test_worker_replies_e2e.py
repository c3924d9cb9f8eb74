"""Replies written by the host's worker threads themselves (``hc.asyncio.thread_writer``),
through a real relay to a raw Hybrid Connections WebSocket: order, size, a session dropped.

The default host hands each call to a worker; its reply leaves from that thread when the
session's socket can take it at once, else through the event loop as before.  Whatever
way each reply takes, a serial session's replies leave in the order of its calls.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import pytest

from bindings.nettcp.framing import ChannelMessage, parse_message
from bindings.nettcp.host import SessionHost
from hc.asyncio import HybridConnectionStream
from soap.quotas import ReaderQuotas
from tests.bindings.nettcp.services import Board
from tests.bindings.nettcp.test_bad_input_e2e import call, receive, stack, start, text_of
from tests.support.relay import RelayHandle

__all__ = ["stack"]  # the fixture, for pytest

MIB = 1 << 20


async def _reply(stream: HybridConnectionStream) -> ChannelMessage:
    data = await asyncio.wait_for(stream.receive(), 20)
    assert data is not None, (stream.close_code, stream.close_reason)
    return parse_message(data, ReaderQuotas(), 8 * MIB)


async def test_a_serial_sessions_replies_leave_in_the_order_of_its_calls(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    host, open_stream = await start(arelay, stack, Board(), max_received_message_size=2 * MIB)
    stream = await open_stream()
    # small and large replies mixed (the large ones more than a socket takes at once), all
    # requests written before any reply is read: replies back up, some leave through the loop
    texts = [f"{n}:" + "x" * (600_000 if n % 4 == 1 else 50 * n) for n in range(30)]
    for n, text in enumerate(texts):
        await stream.write(call("Echo", f"urn:uuid:o{n}", text, host.public_address))
    replies = [await _reply(stream) for _ in texts]
    assert [r.headers.relates_to for r in replies] == [f"urn:uuid:o{n}" for n in range(30)]
    assert [text_of(r) for r in replies] == texts


async def test_a_session_dropped_while_its_replies_are_written_leaves_the_host_serving(
        arelay: RelayHandle, stack: AsyncExitStack, caplog: pytest.LogCaptureFixture) -> None:
    host, open_stream = await start(arelay, stack, Board(), max_received_message_size=2 * MIB)
    assert isinstance(host.sessions, SessionHost)
    stream = await open_stream()
    for n in range(8):
        await stream.write(call("Echo", f"urn:uuid:d{n}", "y" * 900_000, host.public_address))
    await _reply(stream)  # the first is on its way: the others are being made and written
    with caplog.at_level(logging.WARNING):
        stream.abort()  # dropped, no closing handshake
        while host.sessions.sessions:  # the host sees the session end
            await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    again = await open_stream()
    await again.write(call("Echo", "urn:uuid:next", "still here", host.public_address))
    reply = await receive(again)
    assert reply is not None and text_of(reply) == "still here"
