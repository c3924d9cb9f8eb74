"""SessionCalls: a session's requests in worker threads, each outcome to ``finish`` in its worker."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bindings.nettcp.framing import ChannelMessage, parse_message, request_message
from bindings.nettcp.workers import Outcome, SessionCalls
from soap.quotas import ReaderQuotas


def _message(n: int) -> ChannelMessage:
    return parse_message(request_message("urn:Op", f"urn:uuid:{n}"), ReaderQuotas(), 65536)


async def _outcomes(calls: SessionCalls, messages: list[ChannelMessage]) -> list[tuple[str, Outcome]]:
    """Submit ``messages``; each (MessageID, outcome) as ``finish`` saw it, in its order."""
    loop_thread = threading.get_ident()
    seen: list[tuple[str, Outcome]] = []
    lock = threading.Lock()
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def finish(message: ChannelMessage, outcome: Outcome) -> None:
        assert threading.get_ident() != loop_thread  # the worker's thread, not the loop's
        with lock:
            seen.append((message.headers.message_id or "", outcome))
            if len(seen) == len(messages):
                loop.call_soon_threadsafe(done.set_result, None)

    for message in messages:
        calls.submit(message, finish)
    await asyncio.wait_for(done, 10)
    return seen


async def test_serial_calls_run_one_at_a_time_in_the_order_they_came() -> None:
    running, most, order = 0, 0, []
    lock = threading.Lock()

    def run(message: ChannelMessage) -> bytes:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        order.append(message.headers.message_id)
        with lock:
            running -= 1
        return b"reply"

    with ThreadPoolExecutor(4) as pool:
        calls = SessionCalls(pool, run, serial=True)
        seen = await _outcomes(calls, [_message(n) for n in range(50)])
    expected = [f"urn:uuid:{n}" for n in range(50)]
    assert order == expected and [m for m, _ in seen] == expected
    assert most == 1 and all(outcome == b"reply" for _, outcome in seen)


async def test_concurrent_calls_run_at_once() -> None:
    both = threading.Barrier(2, timeout=5)

    def run(message: ChannelMessage) -> bytes:
        both.wait()  # only returns once two calls run together
        return b"r"

    with ThreadPoolExecutor(2) as pool:
        calls = SessionCalls(pool, run, serial=False)
        seen = await _outcomes(calls, [_message(1), _message(2)])
    assert sorted(m for m, _ in seen) == ["urn:uuid:1", "urn:uuid:2"]


@pytest.mark.parametrize("serial", [True, False])
async def test_one_way_and_failed_calls_come_back_as_none_and_the_exception(serial: bool) -> None:
    def run(message: ChannelMessage) -> bytes | None:
        if message.headers.message_id == "urn:uuid:1":
            return None
        raise KeyError("the service's bug")

    with ThreadPoolExecutor(2) as pool:
        calls = SessionCalls(pool, run, serial=serial)
        seen = dict(await _outcomes(calls, [_message(1), _message(2)]))
    assert seen["urn:uuid:1"] is None
    assert isinstance(seen["urn:uuid:2"], KeyError)


async def test_a_serial_calls_finish_runs_before_the_next_call_starts() -> None:
    events: list[str] = []

    def run(message: ChannelMessage) -> bytes:
        events.append(f"run {message.headers.message_id}")
        return b"r"

    def finish(message: ChannelMessage, outcome: Outcome) -> None:
        events.append(f"finish {message.headers.message_id}")

    with ThreadPoolExecutor(4) as pool:
        calls = SessionCalls(pool, run, serial=True)
        for n in range(20):
            calls.submit(_message(n), finish)
    assert events == [f"{step} urn:uuid:{n}" for n in range(20) for step in ("run", "finish")]


def test_a_shut_down_pool_refuses_and_the_queue_starts_again() -> None:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    calls = SessionCalls(pool, lambda m: b"", serial=True)
    finish: Any = lambda *_: None
    with pytest.raises(RuntimeError):
        calls.submit(_message(1), finish)
    with pytest.raises(RuntimeError):  # not stuck "draining": it tries the pool again
        calls.submit(_message(2), finish)
