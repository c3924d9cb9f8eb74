"""The deadlines of a node's asks (relay.cluster.asking.Deadlines): one timer for
all of them, looking every SWEEP_EVERY seconds.  Pure: a loop of our own, no sockets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from relay.cluster.asking import SWEEP_EVERY, Deadlines

pytestmark = pytest.mark.usefixtures("no_sockets")


class _Loop:
    """Just what Deadlines uses of a loop: its time and call_later, run by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        self.timers.append((self.now + delay, callback))
        return object()

    def run_until(self, when: float) -> None:
        while self.timers and self.timers[0][0] <= when:
            self.now, callback = self.timers.pop(0)
            callback()
        self.now = when


class _Ask:
    def __init__(self, name: str, ticked: list[str], fail: bool = False,
                 then: Callable[[], None] = lambda: None) -> None:
        self.name, self.ticked, self.fail, self.then = name, ticked, fail, then

    def due(self) -> None:
        self.ticked.append(self.name)
        if self.fail:
            raise RuntimeError("a bug")
        self.then()


def _deadlines() -> tuple[_Loop, Deadlines]:
    loop = _Loop()
    return loop, Deadlines(cast(Any, loop))


def test_each_ask_is_looked_at_once_due_within_a_sweep_and_one_timer_serves_all() -> None:
    loop, deadlines = _deadlines()
    ticked: list[str] = []
    first, second = _Ask("first", ticked), _Ask("second", ticked)
    deadlines.set(first, 0.25)
    deadlines.set(second, 5.0)
    assert len(loop.timers) == 1 and len(deadlines) == 2
    loop.run_until(0.25 - 1e-9)
    assert ticked == []
    loop.run_until(0.25 + SWEEP_EVERY)
    assert ticked == ["first"] and len(deadlines) == 1
    loop.run_until(5.0 - 1e-9)
    assert ticked == ["first"]
    loop.run_until(5.0 + SWEEP_EVERY)
    assert ticked == ["first", "second"]
    assert loop.timers == [] and len(deadlines) == 0  # nothing waits: no timer armed


def test_a_cleared_ask_is_never_looked_at_and_an_ask_may_set_itself_again() -> None:
    loop, deadlines = _deadlines()
    ticked: list[str] = []
    gone = _Ask("gone", ticked)
    again = _Ask("again", ticked, then=lambda: deadlines.set(again, 1.0))
    deadlines.set(gone, 0.1)
    deadlines.set(again, 0.1)
    deadlines.clear(gone)
    deadlines.clear(gone)  # twice is fine
    loop.run_until(0.1 + SWEEP_EVERY)
    assert ticked == ["again"] and len(deadlines) == 1 and len(loop.timers) == 1
    loop.run_until(1.5)
    assert ticked == ["again", "again"]


def test_a_failing_look_is_logged_and_the_others_still_happen(caplog: pytest.LogCaptureFixture) -> None:
    loop, deadlines = _deadlines()
    ticked: list[str] = []
    deadlines.set(_Ask("broken", ticked, fail=True), 0.05)
    deadlines.set(_Ask("fine", ticked), 0.05)
    loop.run_until(SWEEP_EVERY)
    assert sorted(ticked) == ["broken", "fine"]
    assert "an ask's deadline failed" in caplog.text
