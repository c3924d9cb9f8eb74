"""Whole binary messages written to a stream's socket from another thread, while its loop runs.

A service that computes a reply in a worker thread and hands it back to the event loop
to be written pays a thread wake-up and a loop step for each reply.  :class:`ThreadWriter`
lets the worker write it itself, straight to the socket, when nothing stands in the way:

- every write of the loop to this connection goes through :meth:`ThreadWriter.write`
  (``WebSocketProtocol._flush`` does), under the same lock as a worker's write, so
  the two never interleave on the socket: what the loop writes while a worker writes
  is held and leaves after the worker's frame, in order;
- a worker writes only when the connection is open, nothing is waiting in the
  transport's buffer or the endpoint's, no flush is due and no earlier message was
  left to the loop (:meth:`ThreadWriter.send` says False: the caller hands its message
  to the loop, as before), so the order of messages is the order they were given;
- what the socket does not take at once (a full send buffer) goes to the loop's
  transport, with what was held, in one step; the connection stays "busy" until then;
- the worker writes on its own duplicate of the socket's descriptor, closed when the
  connection is lost (under the lock), so a write never lands on a descriptor number
  the loop has closed and the OS has given to another connection.

Plain TCP only (a TLS object cannot be shared with the loop's transport), and only for a
client endpoint (its frames masked, each with a fresh key).
"""

from __future__ import annotations

import asyncio
import os
import threading

from hc.asyncio.connection import MaskKeys, WebSocketProtocol, thread_shareable, xor_mask
from hc.frames import Opcode, serialize_frame
from hc.framing import State, WebSocketEndpoint

__all__ = ["ThreadWriter"]


class ThreadWriter:
    """Writes from other threads on one plain-TCP client WebSocket (see the module docstring).

    Build it with :meth:`open`, in the loop's thread.
    """

    def __init__(self, protocol: WebSocketProtocol, endpoint: WebSocketEndpoint, fd: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.protocol, self.endpoint, self.loop = protocol, endpoint, loop
        self._fd = os.dup(fd)
        self._lock = threading.Lock()
        self._busy = False  # a worker writes, or its unsent rest waits for the loop
        self._held: list[bytes] = []  # the loop's writes meanwhile, to follow it
        self._closed = False
        self._keys = MaskKeys()  # its own: MaskKeys is not shared between threads
        self._mask = xor_mask
        #: Messages written by other threads (for a channel's counts).
        self.sent = 0

    @classmethod
    def open(cls, protocol: WebSocketProtocol) -> ThreadWriter | None:
        """A writer on ``protocol``'s socket, installed as its ``gate``; None for a
        connection whose socket cannot be shared (TLS, not a socket, not open)."""
        shared = thread_shareable(protocol)
        if shared is None:
            return None
        endpoint, fd = shared
        writer = cls(protocol, endpoint, fd, asyncio.get_running_loop())
        protocol.gate = writer
        return writer

    @property
    def fd(self) -> int:
        """The duplicate descriptor threads write on; -1 once closed (the connection lost)."""
        return self._fd

    # -- the loop's side ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """In the loop's thread: write ``data`` to the transport, or hold it while a
        worker's write is on its way (it then follows that write)."""
        with self._lock:
            if self._busy:
                self._held.append(data)
                return
            transport = self.protocol.transport
            if transport is not None:
                transport.write(data)

    def close(self) -> None:
        """In the loop's thread, once the connection is lost: no more writes from workers."""
        with self._lock:
            self._closed = True
            if not self._busy:
                self._close_fd()

    def _hand_over(self, rest: bytes) -> None:
        """In the loop's thread: what a worker's write left, then what the loop held."""
        with self._lock:
            out = b"".join([rest, *self._held])
            self._held.clear()
            self._busy = False
            transport = self.protocol.transport
            if out and transport is not None and not transport.is_closing():
                transport.write(out)
            if self._closed:
                self._close_fd()

    # -- a worker's side ---------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """From a thread other than the loop's: ``data`` as one binary message, written
        now; False when it was not (the connection is not open, something is waiting to
        be written before it): the caller hands it to the loop instead."""
        key = self._keys()  # under no lock: a key wasted now and then costs nothing
        frame = serialize_frame(Opcode.BINARY, data, mask_key=key, mask=self._mask)
        with self._lock:
            if self._busy or self._closed or not self._clear():
                return False
            self._busy = True
            self.sent += 1
        try:
            written = os.write(self._fd, frame)
        except OSError:  # full (BlockingIOError) or failing: the loop's transport takes it
            written = 0
        rest = frame[written:] if written < len(frame) else b""
        with self._lock:
            if not rest and not self._held:
                self._busy = False
                if self._closed:
                    self._close_fd()
                return True
        try:
            self.loop.call_soon_threadsafe(self._hand_over, rest)
        except RuntimeError:  # the loop is closed: the connection went with it
            with self._lock:
                self._busy = False
                self._close_fd()
        return True

    def _clear(self) -> bool:
        """Under the lock: open, and nothing the loop queued is still on its way out."""
        protocol, transport = self.protocol, self.protocol.transport
        return (transport is not None and not transport.is_closing() and not protocol.closed.done()
                and transport.get_write_buffer_size() == 0 and not protocol.write_paused
                and not protocol.flush_due and self.endpoint.state is State.OPEN
                and not self.endpoint.sending_fragments)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
