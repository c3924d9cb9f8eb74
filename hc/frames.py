"""Single WebSocket frames (RFC 6455 §5): opcodes, headers, masking, Close payloads,
and re-framing a client's frames so that none is ever held whole. No I/O.

:mod:`hc.framing` builds whole connections (messages, Ping/Pong, the closing
handshake) from these parts.

The websockets library's sans-I/O ``Protocol`` reads a frame in full before it
yields it, so one 150 MiB frame from a peer would sit in the relay's memory.
:class:`FrameSplitter` sits in front of it: a frame of up to 256 KiB passes
through untouched once it has arrived; a longer one leaves as a series of
smaller frames made of what has arrived, which RFC 6455 §5.4 allows an
intermediary to do ("... MAY change the fragmentation of a message").

Before, one frame of a 3 MiB binary message, arriving in two reads::

    [FIN BINARY mask=K len=3Mi | 2 MiB ...]  [... 1 MiB]

After: two frames, unmasked here and re-masked with the all-zero key (which is
the identity, so the payload is not touched again)::

    [BINARY mask=0 len=2Mi | 2 MiB]  [FIN CONT mask=0 len=1Mi | 1 MiB]

Control frames (at most 125 bytes, never fragmented) always pass whole.

Unmasking is the only work on the payload.  The module's own :func:`apply_mask`
is pure Python (one big-integer XOR per piece); a shell with a faster one at
hand (websockets' C ``speedups``) passes it to :class:`FrameSplitter`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

from hc.exceptions import RemoteProtocolError

__all__ = [
    "FrameSplitter",
    "Mask",
    "Opcode",
    "apply_mask",
    "close_payload",
    "frame_header",
    "is_valid_close_code",
    "parse_close",
    "serialize_frame",
    "truncate_reason",
]

#: ``apply_mask(data, key)``: ``data`` XOR the 4-byte ``key`` repeated (RFC 6455 §5.3).
Mask = Callable[[bytes, bytes], bytes]

#: A frame at most this long is passed on whole, as it came, once it has arrived.
PASS_WHOLE = 256 * 1024
_ZERO_MASK = b"\0\0\0\0"


def apply_mask(data: bytes, key: bytes) -> bytes:
    """``data`` XOR ``key`` repeated over its length: masks and unmasks alike."""
    size = len(data)
    if not size:
        return b""
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        size, "little"
    )


def frame_header(first_byte: int, length: int, *, masked: bool) -> bytes:
    """A frame's first bytes (RFC 6455 §5.2): ``first_byte`` holds FIN, RSV and opcode;
    the mask key itself, when ``masked``, is the caller's to append."""
    flag = 0x80 if masked else 0
    if length < 126:
        return bytes((first_byte, flag | length))
    if length < 1 << 16:
        return bytes((first_byte, flag | 126)) + length.to_bytes(2, "big")
    return bytes((first_byte, flag | 127)) + length.to_bytes(8, "big")


class FrameSplitter:
    """Client frames in, client frames out, each of them no larger than what has arrived.

    Malformed input (an unmasked frame, a bad length) is passed on unchanged for
    the ``Protocol`` behind to reject.

    Args:
        unmask: the masking function; :func:`apply_mask` by default.
    """

    def __init__(self, unmask: Mask = apply_mask) -> None:
        self._unmask = unmask
        self._buffer = bytearray()
        self._remaining = 0  # payload bytes of the current split frame still to come
        self._first_byte = 0  # FIN/RSV/opcode of the frame being split
        self._mask = b""
        self._offset = 0  # payload bytes of the current split frame already passed on
        self._broken = False

    def feed(self, data: bytes) -> bytes:
        """Frames to hand to the parser for ``data`` (possibly empty, never more than whole)."""
        if self._broken:
            return data
        self._buffer += data
        out: list[bytes] = []
        while self._buffer:
            if self._remaining:
                self._pass_piece(out)
            elif not self._start_frame(out):
                break
        return b"".join(out)

    def _start_frame(self, out: list[bytes]) -> bool:
        """Parse the next frame's header; False while it has not fully arrived."""
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        first, second = buffer[0], buffer[1]
        length, at = second & 0x7F, 2
        if not second & 0x80:  # unmasked: not ours to fix, let the parser refuse it
            self._broken = True
            out.append(bytes(buffer))
            buffer.clear()
            return False
        if length == 126:
            if len(buffer) < 4:
                return False
            length, at = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                return False
            length, at = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < at + 4:
            return False
        total = at + 4 + length
        if length <= PASS_WHOLE or first & 0x0F >= Opcode.CLOSE:
            if len(buffer) < total:
                return False
            out.append(bytes(buffer[:total]))
            del buffer[:total]
            return True
        self._first_byte, self._mask = first, bytes(buffer[at : at + 4])
        self._remaining, self._offset = length, 0
        del buffer[: at + 4]
        return True

    def _pass_piece(self, out: list[bytes]) -> None:
        """Pass on as much of the split frame's payload as has arrived, as one frame."""
        take = min(self._remaining, len(self._buffer))
        rotation = self._offset % 4
        mask = self._mask[rotation:] + self._mask[:rotation]
        payload = self._unmask(bytes(self._buffer[:take]), mask)
        del self._buffer[:take]
        first_piece = self._offset == 0
        self._offset += take
        self._remaining -= take
        fin = self._first_byte & 0x80 if self._remaining == 0 else 0
        if first_piece:
            first_byte = fin | (self._first_byte & 0x7F)  # RSV and opcode as sent
        else:
            first_byte = fin | Opcode.CONT
        out.append(frame_header(first_byte, take, masked=True) + _ZERO_MASK + payload)


# -- single frames: opcodes, serializing, Close payloads ---------------------------------

PROTOCOL_ERROR, NO_STATUS, ABNORMAL, INVALID_DATA, TOO_BIG = 1002, 1005, 1006, 1007, 1009
MAX_CONTROL = 125  # RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less"
MAX_REASON = MAX_CONTROL - 2


class Opcode(IntEnum):
    """Frame opcodes (RFC 6455 §5.2); 0x3-0x7 and 0xB-0xF are reserved."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


#: Opcode by the low four bits of a frame's first byte; None where it is reserved.
OPCODES: tuple[Opcode | None, ...] = tuple(
    Opcode(n) if n in Opcode._value2member_map_ else None for n in range(16)
)



def is_valid_close_code(code: int) -> bool:
    """Codes that may appear in a Close frame (RFC 6455 §7.4; 1004-1006 and 1015 may not)."""
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def serialize_frame(
    opcode: Opcode,
    payload: bytes,
    *,
    fin: bool = True,
    mask_key: bytes | None = None,
    mask: Mask = apply_mask,
) -> bytes:
    """One frame's bytes: masked with ``mask_key`` when it is given (a client's frame)."""
    first = (0x80 if fin else 0) | opcode
    if mask_key is None:
        return frame_header(first, len(payload), masked=False) + payload
    return frame_header(first, len(payload), masked=True) + mask_key + mask(payload, mask_key)


def close_payload(code: int, reason: str = "") -> bytes:
    """A Close frame's payload: the code, two bytes big-endian, then the UTF-8 reason."""
    return code.to_bytes(2, "big") + reason.encode()


def parse_close(payload: bytes) -> tuple[int, str]:
    """A Close frame's (code, reason); (1005, "") when it has no payload.

    Raises:
        RemoteProtocolError: 1002 for a 1-byte payload or a code no one may send,
            1007 for a reason that is not UTF-8.
    """
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise RemoteProtocolError("close frame with a 1-byte payload", close_code=PROTOCOL_ERROR)
    code = int.from_bytes(payload[:2], "big")
    if not is_valid_close_code(code):
        raise RemoteProtocolError(f"invalid close code {code}", close_code=PROTOCOL_ERROR)
    try:
        return code, payload[2:].decode()
    except UnicodeDecodeError:
        raise RemoteProtocolError("invalid UTF-8 in a close reason", close_code=INVALID_DATA) from None


def truncate_reason(reason: str) -> str:
    """``reason`` cut to fit a Close frame (123 bytes of UTF-8), never mid-character."""
    return reason.encode()[:MAX_REASON].decode(errors="ignore")
