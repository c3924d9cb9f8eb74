"""HostStatus transitions and callbacks."""

from __future__ import annotations

import asyncio

import pytest

from bindings.status import HostStatus, StatusTracker

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network


def test_transitions_follow_the_table_and_notify_on_change() -> None:
    seen: list[HostStatus] = []
    tracker = StatusTracker([seen.append])
    error = OSError("refused")
    tracker.set(HostStatus.CONNECTING, error)  # a retry: no change, but the error is kept
    tracker.set(HostStatus.ONLINE)
    tracker.set(HostStatus.CONNECTING)
    tracker.set(HostStatus.OFFLINE, PermissionError("401"))
    tracker.set(HostStatus.CLOSING)
    tracker.set(HostStatus.CLOSED)
    assert seen == [HostStatus.ONLINE, HostStatus.CONNECTING, HostStatus.OFFLINE,
                    HostStatus.CLOSING, HostStatus.CLOSED]
    assert isinstance(tracker.last_error, PermissionError)


@pytest.mark.parametrize(
    "path",
    [
        [HostStatus.OFFLINE, HostStatus.ONLINE],
        [HostStatus.ONLINE, HostStatus.OFFLINE],
        [HostStatus.CLOSING, HostStatus.ONLINE],
        [HostStatus.CLOSING, HostStatus.CLOSED, HostStatus.CONNECTING],
    ],
)
def test_illegal_transitions_raise(path: list[HostStatus]) -> None:
    tracker = StatusTracker()
    *legal, illegal = path
    for status in legal:
        tracker.set(status)
    with pytest.raises(ValueError, match="cannot go from"):
        tracker.set(illegal)


def test_a_failing_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[HostStatus] = []

    def broken(status: HostStatus) -> None:
        raise RuntimeError("user bug")

    tracker = StatusTracker([broken, seen.append])
    tracker.set(HostStatus.ONLINE)
    assert seen == [HostStatus.ONLINE] and "on_status callback failed" in caplog.text


async def test_wait_for_returns_when_the_status_is_reached() -> None:
    tracker = StatusTracker()
    waiter = asyncio.ensure_future(tracker.wait_for(HostStatus.ONLINE, HostStatus.OFFLINE))
    await asyncio.sleep(0)
    assert not waiter.done()
    tracker.set(HostStatus.OFFLINE)
    assert await asyncio.wait_for(waiter, 1) is HostStatus.OFFLINE
    assert await tracker.wait_for(HostStatus.OFFLINE) is HostStatus.OFFLINE
