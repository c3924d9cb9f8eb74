"""The direct links' framing (relay.cluster.direct.Frames): sans-I/O, bounded."""

from __future__ import annotations

import pytest

from relay.cluster.direct import MAX_FRAME, FrameError, Frames, frame

pytestmark = pytest.mark.usefixtures("no_sockets")


def test_whole_split_and_joined_frames_come_out_in_order() -> None:
    frames = Frames()
    one, two, empty = frame(1, b"ask one"), frame(0xFFFFFFFF, b"x" * 70_000), frame(3, b"")
    assert frames.feed(one) == [(1, b"ask one")]
    stream = two + empty + one
    got: list[tuple[int, bytes]] = []
    for start in range(0, len(stream), 1000):  # a byte stream cut anywhere
        got += frames.feed(stream[start:start + 1000])
    assert got == [(0xFFFFFFFF, b"x" * 70_000), (3, b""), (1, b"ask one")]
    assert frames.feed(one[:3]) == [] and frames.feed(one[3:] + one) == [(1, b"ask one")] * 2


def test_a_frame_over_the_bound_is_refused_before_it_is_held() -> None:
    frames = Frames()
    assert frames.feed(frame(1, b"y" * MAX_FRAME)) == [(1, b"y" * MAX_FRAME)]
    with pytest.raises(FrameError, match="at most"):
        frames.feed(frame(2, b"z" * (MAX_FRAME + 1))[:100])
