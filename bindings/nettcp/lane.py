"""The sync NetTcp client's calls on the calling thread, while its loop thread is parked.

The sync zeep client runs its session in a loop thread (:mod:`bindings.nettcp.background`):
a call handed to it and its reply handed back cost two thread switches and a handful of
loop steps.  Between calls the loop has nothing to do but wait for the peer, so once a
call through the loop ended on a quiet session (:attr:`SessionChannel.quiet
<bindings.nettcp.channel.SessionChannel.quiet>`: relayed, nothing in flight), the loop
thread *parks* -- blocks in a callback -- and the next calls write their request and read
their reply themselves on the session's socket (:class:`hc.asyncio.lane.StreamLane`), one
at a time.  The loop thread comes back as soon as:

- no call used the lane for ``IDLE`` s (it then answers keep-alives and callbacks the
  service sends between calls, ``IDLE`` late at most), or ``LONGEST_PARK`` s went by;
- a caller needs the loop: a second thread's call while the lane is busy (the lane's
  call is handed over to the loop at once: calls stay concurrent), a one-way call,
  closing, or the client's own ``background.run``;
- the lane read anything but its own reply first (a callback, a keep-alive, a Close,
  the socket's end, a malformed message): it stops, gives all it read back to the
  loop in order, and its call waits for its reply there, as any other.

A stream whose socket cannot be shared (TLS) never parks its loop; Hybrid mode parks only
while the session is relayed.  A call past the binding's call timeout on the lane fails
with :class:`~bindings.nettcp.errors.CallTimeout` and the session goes on.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from typing import TYPE_CHECKING

from bindings.nettcp.errors import CallTimeout, SessionClosed
from bindings.nettcp.framing import ChannelMessage, MalformedMessage, MessageKind, parse_message
from hc.asyncio.lane import StreamLane
from hc.events import BinaryReceived, TextReceived

if TYPE_CHECKING:
    from bindings.nettcp.client import Deliver, SessionClient

__all__ = ["IDLE", "LONGEST_PARK", "CallLane", "Handoff"]

#: Seconds without a lane call after which the loop thread comes back.
IDLE = 0.02
#: Seconds the loop thread stays parked at most, however busy the lane.
LONGEST_PARK = 1.0
#: Tries to park again when the session was not quiet yet.
RETRIES = 4


class Handoff:
    """A call's outcome, passed from the loop's thread to the caller's by a plain lock
    (``run_coroutine_threadsafe`` costs a task, a concurrent future and a condition)."""

    __slots__ = ("_done", "_error", "_reply")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self._reply: ChannelMessage | None = None
        self._error: BaseException | None = None

    def deliver(self, reply: ChannelMessage | None, error: BaseException | None) -> None:
        """In the loop's thread: the outcome; the caller wakes."""
        self._reply, self._error = reply, error
        self._done.release()

    def wait(self) -> ChannelMessage | None:
        """In the caller's thread: the reply (None: one-way), or the call's error raised."""
        self._done.acquire()
        if self._error is not None:
            raise self._error
        return self._reply


class CallLane:
    """Parks ``client``'s loop between calls and runs calls on the caller's thread meanwhile.

    Args:
        client: the session client the loop runs.
        loop: the loop thread's loop.
    """

    def __init__(self, client: SessionClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop
        self._cv = threading.Condition()
        self._parked = self._busy = self._wanted = False
        self._outside = 0  # calls going through the loop now: it must run
        self._last = 0.0
        self._handed: list[tuple[str, float, Deliver]] = []
        self._stream: StreamLane | None = None
        self._stream_of: object = None
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        #: Calls made on the lane (and handed over from it), for tests and the bench.
        self.calls = self.handed_over = 0

    def __repr__(self) -> str:
        return f"<CallLane parked={self._parked} busy={self._busy} calls={self.calls}>"

    # -- the caller's side -------------------------------------------------------------

    def call(self, data: bytes, message_id: str) -> tuple[bool, ChannelMessage | None]:
        """``(True, reply)`` when the call was made here; ``(False, None)``: the loop must
        take it (:meth:`through_loop`).

        Raises:
            CallTimeout: no reply within the binding's call timeout.
            SessionClosed: the session ended (a call handed over to the loop).
        """
        with self._cv:
            stream = self._stream
            if (not self._parked or self._busy or self._outside or self._wanted
                    or stream is None or not stream.usable):
                return False, None
            self._busy = True
        outcome: ChannelMessage | Handoff | None = None
        try:
            outcome = self._on_lane(stream, data, message_id)
        finally:
            with self._cv:
                self._busy = False
                self._last = time.monotonic()
                if not isinstance(outcome, ChannelMessage) or self._wanted:
                    self._cv.notify()
        if isinstance(outcome, Handoff):
            return True, outcome.wait()
        return True, outcome

    def through_loop(self, data: bytes, message_id: str, oneway: bool) -> ChannelMessage | None:
        """Make the call in the loop thread (woken if parked); its reply."""
        handoff = Handoff()
        self._enter_loop()
        try:
            self.loop.call_soon_threadsafe(self.client.start_call, data, message_id, oneway,
                                           self._after(handoff.deliver))
        except BaseException:
            self._left_loop()
            raise
        return handoff.wait()

    def want_loop(self) -> None:
        """Someone needs the loop thread (closing, ``background.run``): unpark it."""
        with self._cv:
            self._wanted = True
            self._wake()

    def close(self) -> None:
        """Let the descriptors of the wake-up pipe go (the loop has stopped)."""
        for fd in (self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass

    def _on_lane(self, stream: StreamLane, data: bytes, message_id: str) -> ChannelMessage | Handoff:
        channel = self.client.channel
        assert channel is not None
        limit = self.client.binding.call_timeout
        deadline = time.monotonic() + limit
        try:
            stream.send(data, deadline)
        except (ConnectionResetError, TimeoutError):
            return self._hand_over(message_id, deadline)
        channel.sent["relayed"] += 1
        self.calls += 1
        while True:
            try:
                events = stream.receive(deadline)
            except TimeoutError:
                raise CallTimeout(f"no reply to {message_id} within {limit:g} s") from None
            if not events:  # woken, the socket's end, a broken rule
                return self._hand_over(message_id, deadline)
            reply = self._reply_in(stream, events, message_id)
            if reply is not None:
                channel.received["relayed"] += 1
                if not stream.usable:  # more was read, or the end: the loop takes it now
                    self._wanted = True
                return reply
            stream.held.extend(events)  # another message first, a Ping, a broken rule
            return self._hand_over(message_id, deadline)

    def _reply_in(self, stream: StreamLane, events: list[object], message_id: str) -> ChannelMessage | None:
        """The reply to ``message_id`` if it is the first message in ``events`` (the rest
        is held for the loop), else None (``events`` untouched)."""
        for at, event in enumerate(events):
            if not isinstance(event, (BinaryReceived, TextReceived)):
                continue
            binding = self.client.binding
            raw = event.data if isinstance(event, BinaryReceived) else event.text
            try:
                message = parse_message(raw, binding.reader_quotas, binding.max_received_message_size)
            except MalformedMessage:
                return None
            if message.kind is not MessageKind.REPLY or message.headers.relates_to != message_id:
                return None
            stream.held.extend(events[:at] + events[at + 1:])
            return message
        return None

    def _hand_over(self, message_id: str, deadline: float) -> Handoff:
        """The loop takes the call (it waits for its reply there) and all that was read."""
        handoff = Handoff()
        with self._cv:
            self._handed.append((message_id, deadline, self._after(handoff.deliver)))
            self._outside += 1
        self.handed_over += 1
        return handoff

    # -- the loop's side ---------------------------------------------------------------

    @property
    def parked(self) -> bool:
        """Whether the loop thread is parked (the next call goes on the lane)."""
        return self._parked

    def park(self, attempt: int = 0) -> None:
        """In the loop's thread: block while callers use the lane (see the module docstring).

        A session not quiet yet (a callback's task ending, say) is tried again a few
        times, ``IDLE / 4`` s apart, unless a call goes through the loop meanwhile."""
        stream = self._parkable()
        if stream is None:
            if attempt < RETRIES and not self._outside and self._shareable():
                self.loop.call_later(IDLE / 4, self.park, attempt + 1)
            return
        with self._cv:
            if self._outside or self._wanted:
                self._wanted = False
                return
            self._drain_wake()
            self._parked, self._stream = True, stream
            started = self._last = time.monotonic()
            while True:
                now = time.monotonic()
                if not self._busy and (self._outside or self._wanted or now - self._last >= IDLE
                                       or now - started >= LONGEST_PARK):
                    break
                self._cv.wait(IDLE)
            self._parked = self._wanted = False
            handed, self._handed = self._handed, []
        self._adopt(handed)
        stream.give_back()

    def _shareable(self) -> bool:
        """The session's socket can be shared (or it is not known yet)."""
        channel = self.client.channel
        return channel is not None and (self._stream_of is not channel.relayed
                                        or self._stream is not None)

    def _parkable(self) -> StreamLane | None:
        client = self.client
        channel = client.channel
        if channel is None or not channel.quiet or not client.hybrid_settled.is_set():
            return None
        if self._stream_of is not channel.relayed:  # a new session: its own socket
            self._stream_of = channel.relayed
            opener = getattr(channel.relayed, "lane", None)
            self._stream = opener() if opener is not None else None
            if self._stream is not None:
                self._stream.watch(self._wake_read)
        stream = self._stream
        if stream is None or not stream.protocol.idle:
            return None
        return stream

    def _adopt(self, handed: list[tuple[str, float, Deliver]]) -> None:
        """The calls the lane handed over wait for their replies in the channel."""
        from bindings.nettcp.client import deliver_outcome

        channel = self.client.channel
        for message_id, deadline, deliver in handed:
            try:
                if channel is None:
                    raise SessionClosed(1006, "the session is gone")
                waiter = channel.adopt_call(message_id, deadline - time.monotonic())
            except SessionClosed as exc:
                deliver(None, exc)
                continue
            waiter.add_done_callback(functools.partial(deliver_outcome, deliver))

    def _after(self, deliver: Deliver) -> Deliver:
        """``deliver``, and then (in the loop's thread) the loop may park again."""

        def delivered(reply: ChannelMessage | None, error: BaseException | None) -> None:
            self._left_loop()
            deliver(reply, error)
            self.loop.call_soon(self.park)

        return delivered

    def _enter_loop(self) -> None:
        with self._cv:
            self._outside += 1
            self._wake()

    def _left_loop(self) -> None:
        with self._cv:
            self._outside -= 1

    def _wake(self) -> None:
        """Under the condition: the parked loop thread (and a busy lane) notice at once."""
        if self._parked:
            self._cv.notify()
            if self._busy:
                try:
                    os.write(self._wake_write, b"!")
                except OSError:
                    pass

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_read, 64):
                pass
        except OSError:
            pass

