"""SessionCalls: a session's requests in worker threads, outcomes back in the loop's thread."""

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
    done = asyncio.get_running_loop().create_future()

    def finish(message: ChannelMessage, outcome: Outcome) -> None:
        assert threading.get_ident() == loop_thread  # the loop's thread, not a worker's
        seen.append((message.headers.message_id or "", outcome))
        if len(seen) == len(messages):
            done.set_result(None)

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
        calls = SessionCalls(pool, run, asyncio.get_running_loop(), serial=True)
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
        calls = SessionCalls(pool, run, asyncio.get_running_loop(), serial=False)
        seen = await _outcomes(calls, [_message(1), _message(2)])
    assert sorted(m for m, _ in seen) == ["urn:uuid:1", "urn:uuid:2"]


@pytest.mark.parametrize("serial", [True, False])
async def test_one_way_and_failed_calls_come_back_as_none_and_the_exception(serial: bool) -> None:
    def run(message: ChannelMessage) -> bytes | None:
        if message.headers.message_id == "urn:uuid:1":
            return None
        raise KeyError("the service's bug")

    with ThreadPoolExecutor(2) as pool:
        calls = SessionCalls(pool, run, asyncio.get_running_loop(), serial=serial)
        seen = dict(await _outcomes(calls, [_message(1), _message(2)]))
    assert seen["urn:uuid:1"] is None
    assert isinstance(seen["urn:uuid:2"], KeyError)


def test_a_call_ending_after_its_loop_closed_is_dropped_quietly() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    ran = threading.Event()

    def run(message: ChannelMessage) -> bytes:
        ran.set()
        return b"late"

    with ThreadPoolExecutor(1) as pool:
        calls = SessionCalls(pool, run, loop, serial=True)
        calls.submit(_message(1), lambda *_: pytest.fail("finish called on a closed loop"))
    assert ran.is_set()


def test_a_shut_down_pool_refuses_and_the_queue_starts_again() -> None:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    calls = SessionCalls(pool, lambda m: b"", asyncio.new_event_loop(), serial=True)
    finish: Any = lambda *_: None
    with pytest.raises(RuntimeError):
        calls.submit(_message(1), finish)
    with pytest.raises(RuntimeError):  # not stuck "draining": it tries the pool again
        calls.submit(_message(2), finish)
    calls.loop.close()
