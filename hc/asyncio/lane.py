"""Blocking I/O on a client stream's socket from a thread other than its loop's.

A sync caller that waits for one answer pays, when a loop thread does its I/O, for two
thread hand-offs and several loop steps.  :class:`StreamLane` lets that caller write its
message and read the answer itself, on the stream's socket, through the same sans-I/O
endpoint the stream's protocol drives.

It is sound only while the stream's loop does nothing at all -- its thread blocked in a
callback (``bindings.nettcp.lane`` parks it so) -- and the lane touches no loop object:
what it read and did not consume is kept, in order, and given back to the protocol in
the loop's thread (:meth:`StreamLane.give_back`), as if the loop had read it.  Only for
a plain TCP stream (a TLS object cannot be shared with the loop's transport; a proxy
tunnel without TLS is plain TCP).
"""

from __future__ import annotations

import os
import select
import time

from hc.asyncio.connection import WebSocketProtocol, thread_shareable
from hc.exceptions import LocalProtocolError, RemoteProtocolError
from hc.framing import WebSocketEndpoint

__all__ = ["StreamLane"]

_READ_SIZE = 256 * 1024


class StreamLane:
    """Blocking writes and reads on one plain-TCP WebSocket (see the module docstring).

    Build it with :meth:`open` in the loop's thread.

    Attributes:
        held: events read but not consumed, for :meth:`give_back` (in order).
        error: the peer's broken rule, once read (given back after ``held``).
        ended: the socket reached its end (the loop will read that end itself).
    """

    def __init__(self, protocol: WebSocketProtocol, endpoint: WebSocketEndpoint, fd: int) -> None:
        self.protocol, self.endpoint, self.fd = protocol, endpoint, fd
        self.held: list[object] = []
        self.error: RemoteProtocolError | None = None
        self.ended = False
        self._unsent = b""
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    @classmethod
    def open(cls, protocol: WebSocketProtocol) -> StreamLane | None:
        """A lane on ``protocol``'s socket, or None when it has none that can be shared
        (TLS, not a socket, closing).  In the loop's thread."""
        shared = thread_shareable(protocol) if protocol.idle else None
        if shared is None:
            return None
        endpoint, fd = shared
        return cls(protocol, endpoint, fd)

    @property
    def usable(self) -> bool:
        """Nothing held, no end or error read, nothing left unsent."""
        return not self.held and self.error is None and not self.ended and not self._unsent

    def watch(self, wake_fd: int) -> None:
        """Also wake :meth:`receive` when ``wake_fd`` is readable."""
        self._poll.register(wake_fd, select.POLLIN)

    def send(self, data: bytes, deadline: float) -> None:
        """Send one binary message (and whatever the endpoint had queued before it).

        Raises:
            ConnectionResetError: the WebSocket is closing, or the socket failed.
            TimeoutError: the peer did not take it by ``deadline``; the rest is kept
                for :meth:`give_back`.
        """
        try:
            self.endpoint.send_binary(data)
        except LocalProtocolError as exc:
            raise ConnectionResetError(f"the WebSocket is closing: {exc}") from exc
        self._write_out(deadline)

    def receive(self, deadline: float) -> list[object] | None:
        """The next events read (consumed by the caller or added to :attr:`held`); an
        empty list once the socket ended or the peer broke a rule; None when woken
        through the watched descriptor.

        Raises:
            TimeoutError: nothing by ``deadline``.
        """
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready = self._poll.poll(max(1, int(left * 1000)))
            if any(fd != self.fd for fd, _ in ready):
                return None
            if not ready:
                continue
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self.ended = True
                return []
            try:
                self.endpoint.receive_data(data)
            except RemoteProtocolError as exc:
                self.error = exc
            self._write_out(deadline)  # the endpoint's answers: Pong, Close
            events = self.endpoint.events_received()
            if events or self.error is not None:
                return list(events)

    def give_back(self) -> None:
        """In the loop's thread, once the caller is done: what is held goes to the
        protocol, and what was left unsent to its transport."""
        held, self.held = self.held, []
        error, self.error = self.error, None
        if self._unsent and self.protocol.transport is not None:
            self.protocol.transport.write(self._unsent)
        self._unsent = b""
        if held or error is not None:
            self.protocol.take_back(held, error)

    def _write_out(self, deadline: float) -> None:
        out = self.endpoint.data_to_send()
        view = memoryview(b"".join(out) if len(out) != 1 else out[0])
        while view:
            try:
                # Not ``view[os.write(...):]``: mypyc 2.4 evaluates a slice bound twice
                # when the sliced object is not a list, tuple, str or bytes (the
                # request went out twice in the accelerated build).
                written = os.write(self.fd, view)
            except BlockingIOError:
                if not _writable(self.fd, deadline):
                    self._unsent = bytes(view)
                    raise TimeoutError from None
            except OSError as exc:
                raise ConnectionResetError(f"the socket failed: {exc}") from exc
            else:
                view = view[written:]


def _writable(fd: int, deadline: float) -> bool:
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    left = deadline - time.monotonic()
    return left > 0 and bool(poll.poll(max(1, int(left * 1000))))
