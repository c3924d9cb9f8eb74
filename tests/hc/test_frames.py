"""hc.frames: re-framing keeps every message and never holds a frame whole. No sockets."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.streams import StreamReader

import hc.frames
from hc.frames import FrameSplitter


def client_bytes(frames: list[Frame]) -> bytes:
    return b"".join(f.serialize(mask=True) for f in frames)


def parse(data_chunks: list[bytes]) -> list[Frame]:
    """What the relay's server-side Protocol yields for these reads."""
    proto = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    events: list[Frame] = []
    for chunk in data_chunks:
        proto.receive_data(chunk)
        events.extend(proto.events_received())  # type: ignore[arg-type]
    return events


def messages(frames: list[Frame]) -> list[tuple[Opcode, bytes]]:
    """Data messages (reassembled) and control frames, in order."""
    out: list[tuple[Opcode, bytes]] = []
    current: tuple[Opcode, bytearray] | None = None
    for frame in frames:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            current = (frame.opcode, bytearray(frame.data))
        elif frame.opcode is Opcode.CONT:
            assert current is not None
            current[1].extend(frame.data)
        else:
            out.append((frame.opcode, bytes(frame.data)))
            continue
        if frame.fin:
            assert current is not None
            out.append((current[0], bytes(current[1])))
            current = None
    return out


def frame_sizes(data: bytes) -> list[int]:
    """Payload length of every frame in ``data`` (a whole number of client frames)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    sizes = []
    while not reader.at_eof():
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            sizes.append(len(done.value.data))
    return sizes


@st.composite
def message_streams(draw: st.DrawFn) -> list[Frame]:
    frames: list[Frame] = []
    for _ in range(draw(st.integers(1, 6))):
        size = draw(st.sampled_from([0, 1, 125, 126, 3000, 70_000]))
        parts = draw(st.integers(1, 3))
        opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
        for index in range(parts):
            frames.append(Frame(opcode if index == 0 else Opcode.CONT, os.urandom(size),
                                fin=index == parts - 1))
            if draw(st.booleans()):  # a control frame between fragments is allowed
                frames.append(Frame(Opcode.PING, os.urandom(draw(st.integers(0, 125)))))
    return frames


@settings(max_examples=60, deadline=None)
@given(message_streams(), st.lists(st.integers(1, 90_000), min_size=1, max_size=8), st.integers(0, 200))
def test_messages_survive_any_reads_and_any_pass_whole_limit(
    frames: list[Frame], cuts: list[int], pass_whole: int
) -> None:
    original = client_bytes(frames)
    reads, at = [], 0
    for cut in cuts * 20:
        if at >= len(original):
            break
        reads.append(original[at : at + cut])
        at += cut
    reads.append(original[at:])
    saved, hc.frames.PASS_WHOLE = hc.frames.PASS_WHOLE, pass_whole
    try:
        splitter = FrameSplitter()
        out = [splitter.feed(chunk) for chunk in reads]
    finally:
        hc.frames.PASS_WHOLE = saved
    assert messages(parse(out)) == messages(frames)
    for chunk, produced in zip(reads, out, strict=True):  # nothing bigger than a read + the held head
        assert all(size <= max(pass_whole, len(chunk)) or size <= 125 for size in frame_sizes(produced))


def test_a_huge_frame_leaves_in_pieces_as_it_arrives() -> None:
    payload = os.urandom(3 * 1024 * 1024)
    data = Frame(Opcode.BINARY, payload).serialize(mask=True)
    splitter = FrameSplitter()
    pieces = [splitter.feed(data[i : i + 65536]) for i in range(0, len(data), 65536)]
    assert all(len(p) <= 65536 + 14 for p in pieces)
    assert messages(parse(pieces)) == [(Opcode.BINARY, payload)]


def test_small_whole_frames_pass_untouched() -> None:
    data = client_bytes([Frame(Opcode.TEXT, b"hello"), Frame(Opcode.BINARY, b"x" * 5000)])
    assert FrameSplitter().feed(data) == data


def test_unmasked_input_is_left_for_the_parser_to_refuse() -> None:
    data = Frame(Opcode.TEXT, b"hello").serialize(mask=False)
    splitter = FrameSplitter()
    assert splitter.feed(data) == data
    assert splitter.feed(b"more") == b"more"


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_the_pure_mask_is_websockets_mask(data: bytes, key: bytes) -> None:
    from websockets.utils import apply_mask as reference

    assert hc.frames.apply_mask(data, key) == reference(data, key)
    assert hc.frames.apply_mask(hc.frames.apply_mask(data, key), key) == data


def test_the_splitter_uses_the_mask_it_is_given() -> None:
    calls: list[int] = []

    def counting(data: bytes, key: bytes) -> bytes:
        calls.append(len(data))
        return hc.frames.apply_mask(data, key)

    payload = os.urandom(hc.frames.PASS_WHOLE + 10)
    data = Frame(Opcode.BINARY, payload).serialize(mask=True)
    out = FrameSplitter(counting).feed(data)
    assert messages(parse([out])) == [(Opcode.BINARY, payload)]
    assert sum(calls) == len(payload)
