"""A serial session's own thread (``bindings.nettcp.session_thread``), through a real relay:
it reads the session's socket and runs its calls; the loop reads again whenever it must.

Driven by a raw Hybrid Connections WebSocket (the SDK's), so that each test decides what
arrives when, and by the zeep client for callbacks.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import AsyncExitStack

import pytest

from bindings import NetTcpRelayBinding, RelayServiceHost
from bindings.nettcp import channel as channel_module
from bindings.nettcp import host as host_module
from bindings.nettcp.channel import SessionChannel
from bindings.nettcp.framing import KEEPALIVE_ACTION, request_message
from bindings.nettcp.host import SessionHost
from bindings.nettcp.workers import SessionCalls
from hc.asyncio import HybridConnectionStream
from tests.bindings.nettcp.conftest import Stage
from tests.bindings.nettcp.services import Board, Progress, ShowProgress
from tests.bindings.nettcp.test_bad_input_e2e import Opener, call, receive, stack, start, text_of
from tests.support.relay import RelayHandle

__all__ = ["stack"]  # the fixture, for pytest


def _channel(host: RelayServiceHost) -> SessionChannel:
    sessions = host.sessions
    assert isinstance(sessions, SessionHost) and len(sessions.sessions) == 1
    return next(iter(sessions.sessions.values()))


async def _thread_name(stream: object, host: RelayServiceHost, n: int) -> str:
    await stream.write(call("ThreadName", f"urn:uuid:t{n}", "", host.public_address))  # type: ignore[attr-defined]
    reply = await receive(stream)  # type: ignore[arg-type]
    assert reply is not None and reply.headers.relates_to == f"urn:uuid:t{n}"
    return text_of(reply)


async def _session(arelay: RelayHandle, stack: AsyncExitStack
                   ) -> tuple[RelayServiceHost, Opener, HybridConnectionStream, SessionChannel]:
    """A host, one raw session to it, and that session's channel once its thread reads."""
    host, open_stream = await start(arelay, stack, Board())
    stream = await open_stream()
    channel = _channel(host)
    await asyncio.wait_for(_reading(channel), 10)
    return host, open_stream, stream, channel


async def _reading(channel: SessionChannel) -> None:
    """Until a session thread reads the channel's link."""
    while channel.thread is None or not channel.thread.reading:
        await asyncio.sleep(0.01)


async def _pool_done(channel: SessionChannel) -> None:
    """Until no pool job runs the session's requests.  The job ends a moment after it
    wrote its last reply; a request read before that is queued for it (in order), not
    run by the session's thread."""
    run_here = channel.in_thread
    assert run_here is not None
    calls = run_here.__self__  # type: ignore[attr-defined]
    assert isinstance(calls, SessionCalls)
    while calls.draining:
        await asyncio.sleep(0.01)


async def test_a_serial_sessions_calls_are_read_and_run_by_its_own_thread(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    host, _, stream, channel = await _session(arelay, stack)
    names = [await _thread_name(stream, host, n) for n in range(20)]
    assert channel.thread is not None
    assert set(names) == {channel.thread.thread.name} and names[0].startswith("nettcp-session-")
    assert channel.thread.reader.taken == 20  # every call read by the thread, none by the loop


async def test_a_message_for_the_loop_hands_reading_back_and_a_thread_reads_again(
        arelay: RelayHandle, stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channel_module, "THREAD_AGAIN", 0.0)
    host, _, stream, channel = await _session(arelay, stack)
    first = channel.thread
    await stream.write(b"<not-closed>")  # the loop's to answer: a fault
    fault = await receive(stream)
    assert fault is not None and fault.is_fault and "Malformed message" in text_of(fault)
    await stream.write(call("Echo", "urn:uuid:e1", "after", host.public_address))
    reply = await receive(stream)
    assert reply is not None and text_of(reply) == "after"
    assert first is not None and not first.reading
    await asyncio.wait_for(_reading(channel), 10)
    await asyncio.wait_for(_pool_done(channel), 10)  # the Echo ran in the pool
    assert channel.thread is not first
    assert (await _thread_name(stream, host, 1)).startswith("nettcp-session-")


async def test_a_long_call_does_not_keep_the_clients_keep_alive_waiting(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    host, _, stream, _ = await _session(arelay, stack)
    board = host.sessions.app.board  # type: ignore[union-attr]
    board.gate.clear()
    await stream.write(call("Gated", "urn:uuid:long", "slow", host.public_address))
    await asyncio.get_running_loop().run_in_executor(None, board.entered.acquire)
    await stream.write(request_message(KEEPALIVE_ACTION, "urn:uuid:ka"))
    # answered while the call still runs: the host's check takes reading back from its thread
    answer = await asyncio.wait_for(receive(stream), 2 * host_module.LONGEST_CALL + 5)
    assert answer is not None and answer.headers.relates_to == "urn:uuid:ka"
    assert board.running == 1
    board.gate.set()
    reply = await receive(stream)
    assert reply is not None and reply.headers.relates_to == "urn:uuid:long"


def test_a_callback_from_a_call_the_sessions_thread_runs_is_answered(
        stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    # The host's check never fires here: the callback's answer is read because the loop
    # took reading back when the call called the client, not a second later.
    monkeypatch.setattr(host_module, "LONGEST_CALL", 3600.0)
    stage.host(binding=NetTcpRelayBinding(call_timeout=10))
    show = ShowProgress()
    client = stage.client(binding=NetTcpRelayBinding(call_timeout=10), callback=(Progress, show))
    assert [client.service.ThreadName() for _ in range(3)][-1].startswith("nettcp-session-")
    assert client.service.Run(3) == "yes after 3 steps"
    assert show.steps == [(1, 3), (2, 3), (3, 3)]


async def test_sessions_threads_hold_the_hosts_call_slots(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    host, open_stream = await start(arelay, stack, Board(), max_concurrent_calls=1)
    board = host.sessions.app.board  # type: ignore[union-attr]
    board.gate.clear()
    streams = [await open_stream() for _ in range(2)]
    for n, stream in enumerate(streams):
        await stream.write(call("Gated", f"urn:uuid:g{n}", f"s{n}", host.public_address))
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, board.entered.acquire, True, 10)
    assert not await loop.run_in_executor(None, board.entered.acquire, True, 0.5)  # one slot
    board.gate.set()
    replies = [await receive(stream) for stream in streams]
    assert [text_of(r) for r in replies if r is not None] == ["s0", "s1"]
    assert board.most_running == 1


async def test_a_session_dropped_while_its_thread_reads_ends_and_the_thread_with_it(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    host, open_stream, stream, channel = await _session(arelay, stack)
    thread = channel.thread
    assert thread is not None
    stream.abort()
    sessions = host.sessions
    assert isinstance(sessions, SessionHost)
    while sessions.sessions:
        await asyncio.sleep(0.01)
    await asyncio.get_running_loop().run_in_executor(None, thread.thread.join, 10)
    assert not thread.thread.is_alive()
    again = await open_stream()  # a new session gets a thread of its own
    await asyncio.wait_for(_reading(_channel(host)), 10)
    assert (await _thread_name(again, host, 2)).startswith("nettcp-session-")


async def test_closing_the_host_takes_reading_back_and_closes_each_session(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    host, _, stream, channel = await _session(arelay, stack)
    thread = channel.thread
    assert thread is not None
    await host.aclose()
    assert await receive(stream) is None
    assert stream.close_code == 1001
    await asyncio.get_running_loop().run_in_executor(None, thread.thread.join, 10)
    assert not thread.thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("nettcp-session-")
                and t.is_alive() and t is thread.thread]


async def test_a_host_has_at_most_its_bound_of_session_threads(
        arelay: RelayHandle, stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_module, "MOST_THREADS", 1)
    host, open_stream = await start(arelay, stack, Board())
    sessions = host.sessions
    assert isinstance(sessions, SessionHost)
    first = await open_stream()
    channel = _channel(host)
    await asyncio.wait_for(_reading(channel), 10)
    second = await open_stream()
    other = next(c for c in sessions.sessions.values() if c is not channel)
    names = [await _thread_name(second, host, n) for n in range(5)]
    assert other.thread is None and all(n.startswith("nettcp-call") for n in names)  # the pool's
    assert (await _thread_name(first, host, 9)).startswith("nettcp-session-")
    thread = channel.thread
    assert thread is not None
    first.abort()
    await asyncio.get_running_loop().run_in_executor(None, thread.thread.join, 10)
    await _thread_name(second, host, 10)  # the permit is free again: a thread starts
    await asyncio.wait_for(_reading(other), 10)
    await asyncio.wait_for(_pool_done(other), 10)  # t10 ran in the pool
    assert (await _thread_name(second, host, 11)).startswith("nettcp-session-")


@pytest.mark.parametrize("threads", [64, 0], ids=["session-thread", "loop"])
async def test_a_client_that_does_not_read_its_replies_is_stopped_not_buffered(
        arelay: RelayHandle, stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch,
        threads: int) -> None:
    """Replies the client does not read back up to the host; the host then stops reading
    its requests (the client's writes block) rather than keeping every reply in memory.
    (No call is refused here: the bound on calls in flight is out of the way; and no
    keep-alive, which this client would leave unanswered.)"""
    monkeypatch.setattr(host_module, "MOST_THREADS", threads)
    host, open_stream = await start(arelay, stack, Board(), max_received_message_size=1 << 20,
                                    max_calls_per_session=100_000, keepalive_interval=0)
    stream = await open_stream()
    text = "r" * 20_000
    sent = 0
    try:
        while sent < 5_000:  # 100 MB of replies if the host took them all
            await asyncio.wait_for(stream.write(call("Echo", f"urn:uuid:b{sent}", text,
                                                     host.public_address)), 3)
            sent += 1
    except TimeoutError:
        pass
    assert sent < 5_000, "the host read every request while no reply was read"
    for n in range(sent):  # reading again: every reply, in order, and the session goes on
        reply = await receive(stream)
        assert reply is not None and reply.headers.relates_to == f"urn:uuid:b{n}"


async def test_many_sessions_calling_while_some_drop_leave_no_thread_behind(
        arelay: RelayHandle, stack: AsyncExitStack) -> None:
    """Twelve sessions call at once, every third dropped mid-way (no closing handshake);
    the others get every answer, and once all are gone no session thread is left."""
    host, open_stream = await start(arelay, stack, Board())
    sessions = host.sessions
    assert isinstance(sessions, SessionHost)
    streams = [await open_stream() for _ in range(12)]
    names = {f"nettcp-session-{session_id[-8:]}" for session_id in sessions.sessions}
    assert len(names) == 12

    async def calls(n: int, stream: HybridConnectionStream) -> int:
        answered = 0
        for k in range(30):
            if n % 3 == 0 and k == 10:
                stream.abort()
                return answered
            await stream.write(call("Echo", f"urn:uuid:m{n}-{k}", f"{n}/{k}", host.public_address))
            reply = await receive(stream)
            assert reply is not None and text_of(reply) == f"{n}/{k}"
            answered += 1
        return answered

    done = await asyncio.wait_for(asyncio.gather(*(calls(n, s) for n, s in enumerate(streams))), 60)
    assert done == [10 if n % 3 == 0 else 30 for n in range(12)]
    assert all(c.thread is not None for c in sessions.sessions.values())  # each had a thread
    for stream in streams:
        await stream.close()
    while sessions.sessions:
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    for thread in [t for t in threading.enumerate() if t.name in names]:
        await loop.run_in_executor(None, thread.join, 10)
        assert not thread.is_alive(), thread.name
