"""Whole binary messages read from a stream's socket by another thread, while its loop runs.

A service that runs each message's work in a worker thread pays, per message, for two
wake-ups: the loop's, on the socket, and the worker's, on the hand-off.
:class:`ThreadReader` lets one thread read the socket itself and do the work of what it
reads, with one wake-up and no hand-off:

- reading is taken from the loop (its transport stops reading) only between frames,
  with nothing read and not yet consumed (:meth:`ThreadReader.open`);
- the thread reads on its own duplicate of the socket's descriptor and takes only whole
  final binary frames, unmasked, no longer than the endpoint's limit, and of those only
  the ones its ``judge`` accepts (:meth:`ThreadReader.next_message`).  Anything else -- a
  control frame (Ping, Close), a text or fragmented message, a broken rule, a message
  the judge leaves to the loop, the socket's end -- goes back to the loop with every
  byte after it, untouched: the loop's endpoint reads them as if it had read them
  itself, and the thread's reading is over;
- the loop takes reading back whenever it needs it (:meth:`ThreadReader.take_over`:
  before it closes the WebSocket, when the thread is busy for too long): the bytes the
  thread read and did not take go to the protocol first, in order.

Both hand-overs and every read of the thread happen under one lock, so each byte is
read once and parsed by one side.  Plain TCP only (a TLS object cannot be shared with
the loop's transport), and only for a client endpoint (its peer's frames are unmasked).
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from collections.abc import Callable
from typing import TypeVar

from hc.asyncio.connection import WebSocketProtocol, thread_shareable
from hc.framing import WebSocketEndpoint

__all__ = ["ThreadReader"]

T = TypeVar("T")

_READ_SIZE = 256 * 1024
_FINAL_BINARY = 0x82  # FIN, no RSV bit, opcode 2


class ThreadReader:
    """One thread's reading of a plain-TCP client WebSocket (see the module docstring).

    Build it with :meth:`open`, in the loop's thread; the reading thread calls
    :meth:`next_message` until it returns None, then :meth:`close`.
    """

    def __init__(self, protocol: WebSocketProtocol, endpoint: WebSocketEndpoint, fd: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.protocol, self.loop = protocol, loop
        self.max_size = endpoint.max_message_size
        self._fd = os.dup(fd)
        self._wake_read, self._wake_write = os.pipe()
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._poll.register(self._wake_read, select.POLLIN)
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._reading = True  # the thread holds reading; False once it went back
        #: Messages the thread took.
        self.taken = 0

    def __repr__(self) -> str:
        return f"<ThreadReader reading={self._reading} taken={self.taken}>"

    @classmethod
    def open(cls, protocol: WebSocketProtocol) -> ThreadReader | None:
        """Take ``protocol``'s reading for another thread; None when it cannot be
        (TLS, not open, something read and not consumed, a reader already).  In the
        loop's thread."""
        if protocol.reader is not None or not protocol.read_idle:
            return None
        shared = thread_shareable(protocol)
        if shared is None or not shared[0].between_frames:
            return None
        endpoint, fd = shared
        reader = cls(protocol, endpoint, fd, asyncio.get_running_loop())
        protocol.reader = reader
        assert protocol.transport is not None
        protocol.transport.pause_reading()
        return reader

    @property
    def reading(self) -> bool:
        """Whether the thread still holds reading."""
        return self._reading

    # -- the reading thread's side -------------------------------------------------------

    def next_message(self, judge: Callable[[bytes], T | None]) -> T | None:
        """Block until the next whole binary message and return what ``judge`` made of
        it; None once reading is the loop's again (the thread should stop).

        ``judge`` is called with the message under the reader's lock (the loop's
        :meth:`take_over` waits for it: it must not wait for the loop); a None from it
        leaves the message, and everything after it, to the loop.
        """
        while True:
            with self._lock:
                if not self._reading:
                    return None
                got, complete = self._next(judge)
                if complete:
                    return got
            ready = self._poll.poll()
            with self._lock:
                if not self._read(ready):
                    return None

    def _read(self, ready: list[tuple[int, int]]) -> bool:
        """Under the lock: what the socket has, to the buffer; False once reading is the loop's."""
        if not self._reading:
            return False
        if not any(fd == self._fd for fd, _ in ready):
            return True
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:  # the end (or a failure): the loop's transport reads it itself
            self._give_back()
            return False
        self._buffer += data
        return True

    def _next(self, judge: Callable[[bytes], T | None]) -> tuple[T | None, bool]:
        """Under the lock: the next buffered frame judged -- ``(value, True)``; taken
        unless the value is None (then given back) -- or ``(None, False)``: more to read."""
        buf = self._buffer
        if len(buf) < 2:
            return None, False
        first, length = buf[0], buf[1]
        if first != _FINAL_BINARY or length & 0x80:
            self._give_back()
            return None, True
        at = 2
        if length >= 126:
            at = 4 if length == 126 else 10
            if len(buf) < at:
                return None, False
            length = int.from_bytes(buf[2:at], "big")
        if length > self.max_size:
            self._give_back()
            return None, True
        end = at + length
        if len(buf) < end:
            return None, False
        value = judge(bytes(buf[at:end]))
        if value is None:
            self._give_back()
            return None, True
        del buf[:end]
        self.taken += 1
        return value, True

    def _give_back(self) -> None:
        """Under the lock, in the reading thread: reading and the unread bytes to the loop."""
        self._reading = False
        rest = bytes(self._buffer)
        self._buffer.clear()
        try:
            self.loop.call_soon_threadsafe(self._resume, rest)
        except RuntimeError:  # the loop is closed: the connection went with it
            pass

    def close(self) -> None:
        """In the reading thread, once it stops: reading goes back to the loop if the
        thread still held it, and the reader's descriptors are closed."""
        with self._lock:
            if self._reading:
                self._give_back()
            if self._fd >= 0:
                os.close(self._fd)
                os.close(self._wake_read)
                os.close(self._wake_write)
                self._fd = -1

    # -- the loop's side ---------------------------------------------------------------

    def take_over(self) -> None:
        """In the loop's thread: reading is the loop's again, from the first byte the
        thread did not take (waits for a judge at work).  Idempotent."""
        with self._lock:
            if not self._reading:
                return
            self._reading = False
            rest = bytes(self._buffer)
            self._buffer.clear()
            if self._fd >= 0:
                os.write(self._wake_write, b"\0")
        self._resume(rest)

    def _resume(self, rest: bytes) -> None:
        """In the loop's thread: ``rest`` to the protocol, as if the transport had read it;
        then the transport reads again."""
        protocol = self.protocol
        if protocol.reader is self:
            protocol.reader = None
        transport = protocol.transport
        if transport is None or transport.is_closing():
            return
        if rest:
            protocol.data_received(rest)
        protocol.read_again()  # unless what it just took filled the queue or owes Pongs
