"""A minimal RFC 6455 endpoint: WebSocket frames and messages, sans-I/O.

Bytes go in (:meth:`WebSocketEndpoint.receive_data`, :meth:`~WebSocketEndpoint.receive_eof`),
events come out (:meth:`~WebSocketEndpoint.events_received`), and the bytes to
write are collected by :meth:`~WebSocketEndpoint.data_to_send`.  Fragmented
messages are joined (up to ``max_message_size``), Pings are answered with a
Pong, the closing handshake is tracked.

An endpoint made with ``stream_binary=True`` does not join binary messages: it
reports each as :class:`~hc.events.BinaryFragment` pieces as their bytes arrive
(a frame's payload included: one 100 MiB frame is never held whole), and
``max_message_size`` then bounds text messages only; the reader of the pieces
decides how much it takes.  :meth:`WebSocketEndpoint.send_binary_fragment`
sends a binary message in pieces the same way.  The handshake (HTTP Upgrade) and
extensions are not this module's: the endpoint starts OPEN, with no
permessage-deflate (PROTOCOL.md §3: control channels do not negotiate it).

States and transitions::

    OPEN    --send_close()-------------------------> CLOSING
    OPEN    --peer's Close (answered at once)-------> CLOSED   ConnectionClosed(code)
    OPEN    --bad input (our Close queued, raise)---> CLOSING
    CLOSING --peer's Close-------------------------> CLOSED   ConnectionClosed(code)
    any     --receive_eof()------------------------> CLOSED   ConnectionClosed(1006)
                                                               (unless already CLOSED)

In CLOSING the endpoint still reads frames, looking for the peer's Close, but
drops data messages, Pings and Pongs (RFC 6455 §1.4: after sending a Close
"the endpoint ... MUST NOT send any more data frames").  After bad input it
reads nothing more: the stream cannot be trusted to be in step.  Once CLOSED
(or after bad input, once the Close is written) the shell closes the transport;
RFC 6455 §7.1.1 wants the server to do so first, and a client to wait a little
for the server's EOF.

Each rejection raises :class:`~hc.exceptions.RemoteProtocolError` with
``close_code`` 1002 (framing), 1007 (invalid UTF-8) or 1009 (too big), after
queueing the Close frame that says so; events parsed before the bad frame stay
in :meth:`~WebSocketEndpoint.events_received`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from hc.events import (
    BinaryFragment,
    BinaryReceived,
    ConnectionClosed,
    PingReceived,
    PongReceived,
    TextReceived,
    WebSocketEvent,
)
from hc.exceptions import LocalProtocolError, RemoteProtocolError
from hc.frames import (
    ABNORMAL,
    INVALID_DATA,
    MAX_CONTROL,
    MAX_REASON,
    NO_STATUS,
    OPCODES,
    PROTOCOL_ERROR,
    TOO_BIG,
    Mask,
    Opcode,
    apply_mask,
    close_payload,
    frame_header,
    is_valid_close_code,
    parse_close,
    serialize_frame,
    truncate_reason,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Opcode",
    "Side",
    "State",
    "WebSocketEndpoint",
    "close_payload",
    "parse_close",
    "serialize_frame",
]

#: The largest message (all fragments together) an endpoint accepts unless told otherwise.
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
class Side(Enum):
    """Which end: a client masks what it sends (RFC 6455 §5.3), a server must not."""

    CLIENT = "client"
    SERVER = "server"


class State(Enum):
    """The endpoint's life; the transitions are in the module docstring."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass
class _PartFrame:
    """A streamed frame whose payload is still arriving."""

    remaining: int
    key: bytes | None  # the masking key, for a client's frame
    offset: int  # payload bytes already passed on (where the key stands)
    fin: bool


def _rotated(key: bytes, offset: int) -> bytes:
    """The masking key as it stands ``offset`` bytes into a payload."""
    at = offset % 4
    return key[at:] + key[:at]


#: Opcodes that start a data message.
_DATA = frozenset((Opcode.TEXT, Opcode.BINARY))


class WebSocketEndpoint:
    """One end of a WebSocket connection, from the OPEN state on.

    Args:
        side: CLIENT masks its frames and refuses masked ones; SERVER the reverse.
        max_message_size: the largest message accepted, fragments together (1009 beyond).
        mask_key: a fresh 4-byte masking key per client frame (``os.urandom(4)`` by default).
        mask: the masking function; :func:`hc.frames.apply_mask` by default.
        on_event: when given, each event is passed to it as it is parsed instead of
            being kept for :meth:`events_received`; it may raise what :meth:`fail` returns.
        stream_binary: report binary messages as :class:`~hc.events.BinaryFragment`
            pieces as they arrive instead of joined (``max_message_size`` then bounds
            text messages only).
    """

    def __init__(
        self,
        side: Side,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        mask_key: Callable[[], bytes] = lambda: os.urandom(4),
        mask: Mask = apply_mask,
        on_event: Callable[[WebSocketEvent], None] | None = None,
        stream_binary: bool = False,
    ) -> None:
        self.side = side
        self._server = side is Side.SERVER
        self.stream_binary = stream_binary
        self.max_message_size = max_message_size
        self._mask_key = mask_key
        self._mask = mask
        self._events: list[WebSocketEvent] = []
        self._outgoing: list[bytes] = []
        self._on_event = on_event or self._events.append
        self._state = State.OPEN
        self._failed = False
        self._buffer = bytearray()
        self._message: list[bytes] | None = None  # fragments of the data message in progress
        self._message_opcode = Opcode.BINARY
        self._message_size = 0
        self._streaming = False  # a streamed binary message is being received
        self._part: _PartFrame | None = None  # its frame whose payload is still arriving
        self._fragmenting = False  # a binary message is being sent in pieces

    @property
    def state(self) -> State:
        """OPEN, CLOSING or CLOSED."""
        return self._state

    @property
    def buffered(self) -> int:
        """Bytes held for frames and messages not yet complete: at most
        ``max_message_size`` plus one frame header (14 bytes), or one control frame."""
        return len(self._buffer) + self._message_size

    @property
    def between_frames(self) -> bool:
        """Nothing of an incoming frame or message is held: the next byte starts a frame."""
        return not self._buffer and self._message is None and self._part is None and not self._streaming

    # -- input -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Parse ``data``, the next bytes from the peer.

        Raises:
            RemoteProtocolError: the peer broke RFC 6455; the Close is queued, state CLOSING.
        """
        if self._failed or self._state is State.CLOSED:
            return
        self._buffer += data
        while not self._failed and self._state is not State.CLOSED and self._next_frame():
            pass

    def receive_eof(self) -> None:
        """The peer's end of the stream: CLOSED, with ConnectionClosed(1006) unless it was."""
        if self._state is State.CLOSED:
            return
        self._state = State.CLOSED
        self._forget_input()
        self._on_event(ConnectionClosed(ABNORMAL))

    def events_received(self) -> list[WebSocketEvent]:
        """The events parsed since the last call, in order (none when ``on_event`` is set)."""
        events = self._events[:]
        self._events.clear()
        return events

    def data_to_send(self) -> list[bytes]:
        """The bytes to write, in order, since the last call."""
        out, self._outgoing = self._outgoing, []
        return out

    def fail(self, code: int, reason: str) -> RemoteProtocolError:
        """Queue a Close(``code``, ``reason``), stop reading, and return the error to raise."""
        if not self._failed and self._state is State.OPEN:
            self._send_frame(Opcode.CLOSE, close_payload(code, truncate_reason(reason)))
            self._state = State.CLOSING
        self._failed = True
        self._forget_input()
        return RemoteProtocolError(reason, close_code=code)

    def _forget_input(self) -> None:
        self._buffer.clear()
        self._message, self._message_size = None, 0
        self._streaming, self._part = False, None

    def _next_frame(self) -> bool:
        """Parse and handle one frame from the buffer; False while none is complete."""
        if self._part is not None:
            return self._pass_part()
        buf = self._buffer
        if len(buf) < 2:
            return False
        first, second = buf[0], buf[1]
        opcode = OPCODES[first & 0x0F]
        if opcode is None or first & 0x70:
            opcode = self._check_first_byte(first)  # raises
        fin, masked, length, at = first >= 0x80, second >= 0x80, second & 0x7F, 2
        if masked is not self._server:
            raise self.fail(PROTOCOL_ERROR, "unmasked frame from a client" if not masked
                            else "masked frame from a server")
        if opcode >= Opcode.CLOSE and (not fin or length > MAX_CONTROL):
            raise self.fail(PROTOCOL_ERROR, "fragmented control frame" if not fin
                            else "control frame longer than 125 bytes")
        if length >= 126:
            at = 4 if length == 126 else 10
            if len(buf) < at:
                return False
            length = int.from_bytes(buf[2:at], "big")
        if (self._streaming or self.stream_binary) and self._is_streamed(opcode):
            return self._start_part(opcode, fin, masked, at, length)
        if opcode < Opcode.CLOSE and self._message_size + length > self.max_message_size:
            raise self.fail(TOO_BIG, f"message longer than {self.max_message_size} bytes")
        end = at + (4 if masked else 0) + length
        if len(buf) < end:
            return False
        payload = bytes(buf[end - length : end])
        if masked:
            payload = self._mask(payload, bytes(buf[at : at + 4]))
        del buf[:end]
        if fin and opcode in _DATA and self._message is None and not self._streaming:
            self._whole_message(opcode, payload)  # one frame, one message: the usual case
        else:
            self._handle(opcode, fin, payload)
        return True

    def _is_streamed(self, opcode: Opcode) -> bool:
        """Whether a data frame belongs to a binary message reported in pieces."""
        if opcode is Opcode.CONT:
            return self._streaming
        return opcode is Opcode.BINARY and self.stream_binary

    def _start_part(self, opcode: Opcode, fin: bool, masked: bool, at: int, length: int) -> bool:
        """The header of a streamed frame is in: pass its payload on as it arrives."""
        buf = self._buffer
        if len(buf) < at + (4 if masked else 0):
            return False
        if opcode is Opcode.BINARY and (self._streaming or self._message is not None):
            raise self.fail(PROTOCOL_ERROR, "new data frame before the previous message ended")
        key = bytes(buf[at : at + 4]) if masked else None
        del buf[: at + (4 if masked else 0)]
        self._streaming = not fin
        self._part = _PartFrame(length, key, 0, fin)
        return self._pass_part()

    def _pass_part(self) -> bool:
        """Report what has arrived of the streamed frame; True once it is all in."""
        part, buf = self._part, self._buffer
        assert part is not None
        size = min(part.remaining, len(buf))
        if part.remaining and not size:
            return False
        data = bytes(buf[:size])
        del buf[:size]
        if part.key is not None and data:
            data = self._mask(data, _rotated(part.key, part.offset))
        part.offset += size
        part.remaining -= size
        done = not part.remaining
        if done:
            self._part = None
        last = done and part.fin
        if (data or last) and self._state is State.OPEN:
            self._on_event(BinaryFragment(data, last))
        return done

    def _check_first_byte(self, first: int) -> Opcode:
        if first & 0x70:
            raise self.fail(PROTOCOL_ERROR, "reserved bits set without an extension")
        opcode = OPCODES[first & 0x0F]  # a table, not Opcode(...): this runs for every frame
        if opcode is None:
            raise self.fail(PROTOCOL_ERROR, f"unknown opcode {first & 0x0F:#x}")
        return opcode

    def _handle(self, opcode: Opcode, fin: bool, payload: bytes) -> None:
        if opcode is Opcode.CLOSE:
            self._handle_close(payload)
        elif opcode is Opcode.PING:
            if self._state is State.OPEN:
                self._send_frame(Opcode.PONG, payload)
                self._on_event(PingReceived(payload))
        elif opcode is Opcode.PONG:
            if self._state is State.OPEN:
                self._on_event(PongReceived(payload))
        else:
            self._handle_data(opcode, fin, payload)

    def _handle_data(self, opcode: Opcode, fin: bool, payload: bytes) -> None:
        """Join fragments (RFC 6455 §5.4); control frames may come between them."""
        if fin and opcode is not Opcode.CONT and self._message is None and not self._streaming:
            self._whole_message(opcode, payload)  # one frame, one message: nothing to join
            return
        if opcode is Opcode.CONT:
            if self._message is None:  # (a streamed message's frames never come here)
                raise self.fail(PROTOCOL_ERROR, "continuation frame with no message to continue")
        elif self._message is not None or self._streaming:
            raise self.fail(PROTOCOL_ERROR, "new data frame before the previous message ended")
        else:
            self._message, self._message_opcode = [], opcode
        self._message.append(payload)
        self._message_size += len(payload)
        if not fin:
            return
        data = b"".join(self._message)
        self._message, self._message_size = None, 0
        self._whole_message(self._message_opcode, data)

    def _whole_message(self, opcode: Opcode, data: bytes) -> None:
        if self._state is not State.OPEN:
            return
        if opcode is Opcode.BINARY:
            self._on_event(BinaryReceived(data))
            return
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise self.fail(INVALID_DATA, "invalid UTF-8 in a text message") from None
        self._on_event(TextReceived(text))

    def _handle_close(self, payload: bytes) -> None:
        try:
            code, reason = parse_close(payload)
        except RemoteProtocolError as exc:
            raise self.fail(exc.close_code, exc.reason) from exc
        if self._state is State.OPEN:  # echo it: RFC 6455 §5.5.1
            self._send_frame(Opcode.CLOSE, b"" if code == NO_STATUS else payload[:2])
        self._state = State.CLOSED
        self._buffer.clear()
        self._on_event(ConnectionClosed(code, reason))

    # -- output ------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """Queue a text message, as one frame."""
        self._send_data(Opcode.TEXT, text.encode(), "a text message")

    def send_binary(self, data: bytes) -> None:
        """Queue a binary message, as one frame."""
        self._send_data(Opcode.BINARY, data, "a binary message")

    def send_framed(self, frames: bytes) -> None:
        """SERVER: queue whole data frames framed already (unmasked; ``hc.fanout``).

        Raises:
            LocalProtocolError: a client (its frames are masked, each with a fresh key),
                not OPEN, or a binary message being sent in pieces.
        """
        if not self._server:
            raise LocalProtocolError("only a server sends frames framed in advance")
        self._check_open("prepared frames")
        if self._fragmenting:
            raise LocalProtocolError("cannot send prepared frames: a binary message is being sent in pieces")
        self._outgoing.append(frames)

    def send_binary_fragment(self, data: bytes, *, fin: bool) -> None:
        """Queue one piece of a binary message sent in pieces; ``fin`` on the last.

        Until the last piece, only control frames may be sent (RFC 6455 §5.4).

        Raises:
            LocalProtocolError: not OPEN.
        """
        self._check_open("a binary fragment")
        opcode = Opcode.CONT if self._fragmenting else Opcode.BINARY
        self._fragmenting = not fin
        self._send_frame(opcode, data, fin=fin)

    def send_ping(self, data: bytes = b"") -> None:
        """Queue a Ping (at most 125 bytes of payload)."""
        self._send_control(Opcode.PING, data, "a ping")

    def send_pong(self, data: bytes = b"") -> None:
        """Queue an unsolicited Pong, a heartbeat (received Pings are answered already)."""
        self._send_control(Opcode.PONG, data, "a pong")

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake: OPEN -> CLOSING.

        Raises:
            LocalProtocolError: not OPEN, a code no one may send, a reason over 123 bytes.
        """
        if not is_valid_close_code(code):
            raise LocalProtocolError(f"close code {code} may not be sent")
        if len(reason.encode()) > MAX_REASON:
            raise LocalProtocolError("a close reason is at most 123 bytes of UTF-8")
        self._send_control(Opcode.CLOSE, close_payload(code, reason), "a close frame")
        self._state = State.CLOSING

    @property
    def sending_fragments(self) -> bool:
        """Whether a binary message sent in pieces still lacks its last piece."""
        return self._fragmenting

    def _send_data(self, opcode: Opcode, payload: bytes, what: str) -> None:
        self._check_open(what)
        if self._fragmenting:
            raise LocalProtocolError(f"cannot send {what}: a binary message is being sent in pieces")
        self._send_frame(opcode, payload)

    def _send_control(self, opcode: Opcode, payload: bytes, what: str) -> None:
        self._check_open(what)
        if len(payload) > MAX_CONTROL:
            raise LocalProtocolError(f"{what} carries at most 125 bytes")
        self._send_frame(opcode, payload)

    def _check_open(self, what: str) -> None:
        if self._state is not State.OPEN:
            raise LocalProtocolError(f"cannot send {what}: the connection is {self._state.value}")

    def _send_frame(self, opcode: Opcode, payload: bytes, *, fin: bool = True) -> None:
        if self._server:  # unmasked: the header and the payload, one chunk per frame
            self._outgoing.append(
                frame_header((0x80 if fin else 0) | opcode, len(payload), masked=False) + payload
            )
            return
        key = self._mask_key()  # a client's frame: masked, with a fresh key each
        if len(key) != 4:
            raise LocalProtocolError("a masking key is 4 bytes")
        length = len(payload)
        head = (  # frame_header(..., masked=True), inline: this runs for every frame a listener sends
            bytes(((0x80 if fin else 0) | opcode, 0x80 | length)) if length < 126
            else frame_header((0x80 if fin else 0) | opcode, length, masked=True)
        )
        self._outgoing.append(head + key + self._mask(payload, key) if length else head + key)
