"""A session channel's message pump, the same on both ends (asyncio shell over the pure parts).

One :class:`SessionChannel` drives one session over a WebSocket link (a
:class:`~hc.asyncio.HybridConnectionStream`, relayed, or a direct one in Hybrid mode):

- :meth:`SessionChannel.call` sends a request and waits for the reply whose
  ``RelatesTo`` names its ``MessageID`` (many at once, :class:`~bindings.nettcp.calls.PendingCalls`);
  :meth:`SessionChannel.send` sends a one-way request or a reply;
- each request received is handed to ``handler`` in a task of its own, at most
  ``max_calls_per_session`` at once (or, given an ``inline`` handler, run by it at once,
  in the reader, one at a time: no task; or, given an ``offload``, handed to it with no
  task -- a host's worker threads, :mod:`bindings.nettcp.workers` -- its reply written
  from the worker's thread when the link can take it at once (:mod:`hc.asyncio.thread_writer`),
  else handed to the loop; or, given ``in_thread`` as well, read and run by the session's
  own thread while it can, :mod:`bindings.nettcp.session_thread`); one over that gets a
  ``ServerTooBusy`` fault, and a
  peer that keeps sending while refused is closed with 1008 (:class:`~bindings.nettcp.calls.FloodGuard`);
- a request without ``MessageID`` closes the session with 1008; a message that is not
  a SOAP 1.2 envelope gets a fault (the session stays up); a reply for no call in
  flight is dropped with a warning, never given to another caller;
- a KeepAlive goes out every ``keepalive_interval`` (answered by the peer's channel
  at once); no answer within ``keepalive_timeout`` ends the session;
- when the link ends, every call in flight fails at once with :class:`SessionClosed`;
- in Hybrid mode a proven direct link is attached (:meth:`SessionChannel.attach`): from then on
  messages are sent on it and read from both (a message already sent on the relayed link
  still arrives there: nothing is lost, nothing sent twice); when the direct link ends or
  stops answering keep-alive, sending goes back to the relayed link, and the calls whose
  request went out on the direct link fail with :class:`DirectConnectionLost` (their
  outcome is unknown: never sent again).

Warnings about the peer's messages are logged once per kind and session (the rest are
counted and reported when the session ends), and at most 10 per 10 s in all
(:mod:`bindings.nettcp.peer_log`).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, cast

from bindings.nettcp.binding import NetTcpRelayBinding
from bindings.nettcp.calls import FloodGuard, PendingCalls, TooManyCalls
from bindings.nettcp.errors import CallTimeout, DirectConnectionLost, SessionClosed
from bindings.nettcp.framing import (
    KEEPALIVE_ACTION,
    ChannelMessage,
    CloseCode,
    MalformedMessage,
    MessageKind,
    fault_message,
    parse_message,
    reply_message,
    request_message,
)
from bindings.nettcp.peer_log import PeerLog, peer_log
from bindings.nettcp.session_thread import SessionThread
from bindings.nettcp.workers import Finish, Outcome
from hc.asyncio.thread_writer import ThreadWriter
from soap.addressing import new_message_id
from soap.fault import FaultCode

__all__ = ["ChannelState", "InlineHandler", "Link", "Offload", "RequestHandler", "SessionChannel"]

log = logging.getLogger("bindings.nettcp")

#: Messages read while an earlier one is still awaited (a write waiting for room, a
#: fault) before reading pauses (the link's own queue's bound, ``hc.asyncio.connection``).
BACKLOG = 16
#: Seconds after a session thread stopped reading before another may start.
THREAD_AGAIN = 1.0
#: Awaited with each request received; returns the reply's bytes, or None (one-way).
RequestHandler = Callable[[ChannelMessage], Awaitable[bytes | None]]
#: Called with each request received, in the loop's thread (``inline_calls``).
InlineHandler = Callable[[ChannelMessage], bytes | None]
#: ``offload(message, finish)`` runs a request elsewhere (a worker thread) and calls
#: ``finish(message, outcome)`` in that thread: the reply, None, or what it raised.
Offload = Callable[[ChannelMessage, Finish], None]


class Link(Protocol):
    """What the channel needs of a WebSocket (a HybridConnectionStream is one)."""

    async def receive(self) -> str | bytes | None: ...

    async def write(self, data: bytes | str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str: ...


class _Pausing(Protocol):
    """A link read by its callback (``deliver``) can pause its reading."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class ChannelState(enum.Enum):
    """OPEN -> CLOSING (close(): no new calls, in-flight ones finish) -> CLOSED."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class SessionChannel:
    """One session's calls, replies and callbacks over ``link`` (see the module docstring).

    Args:
        link: the WebSocket.
        handler: awaited with each request the peer sends.
        binding: bounds, quotas, keep-alive and the call timeout.
        name: for log lines (the session id).
        ordered_replies: hand a reply to its caller only once the requests that came
            before it were handled (the client, so that the progress callbacks a service
            sent before its reply are seen before the result).
        warnings: where warnings about the peer go (the host's or client's, shared by
            its sessions; by default the process's).
        inline: runs each request in the loop's thread instead of ``handler``
            (a host's ``inline_calls``).
        offload: runs each request off the loop instead of ``handler``, with no task
            (a host's worker threads).
        in_thread: with ``offload``, runs a request in the session's own thread, which
            reads the relayed link itself while it can (a serial host's
            :meth:`SessionCalls.run_here <bindings.nettcp.workers.SessionCalls.run_here>`).
        thread_permits: one taken by each session thread while it lives (a host's
            bound on them); none: no bound.
    """

    def __init__(
        self, link: Link, handler: RequestHandler, binding: NetTcpRelayBinding, name: str = "",
        *, ordered_replies: bool = False, warnings: PeerLog = peer_log,
        inline: InlineHandler | None = None, offload: Offload | None = None,
        in_thread: Offload | None = None, thread_permits: threading.Semaphore | None = None,
    ) -> None:
        self.link, self.handler, self.binding = link, handler, binding
        self.inline, self.offload = inline, offload
        self.in_thread = in_thread if offload is not None else None
        #: The thread reading the relayed link now or last (``in_thread``).
        self.thread: SessionThread | None = None
        self._permits = thread_permits
        self._thread_ended = 0.0  # when the last one stopped reading (its give-back)
        self.relayed: Link = link  # the session's own link: its end is the session's
        #: Messages sent and received per path ("relayed", "direct").
        self.sent: collections.Counter[str] = collections.Counter()
        self.received: collections.Counter[str] = collections.Counter()
        self._on_direct: set[str] = set()  # calls whose request went on the direct link
        self._direct_readers: dict[asyncio.Task[None], Link] = {}
        self._closing_links: set[asyncio.Task[None]] = set()
        self.name = name or uuid.uuid4().hex[:8]
        self.state = ChannelState.OPEN
        self.pending: PendingCalls[asyncio.Future[ChannelMessage]] = PendingCalls(
            binding.max_calls_per_session)
        self.flood = FloodGuard(binding.max_calls_per_session)
        self.ended: asyncio.Future[SessionClosed] = asyncio.get_running_loop().create_future()
        self._running: set[asyncio.Task[None]] = set()
        #: Calls taken whose reply is not yet queued: what ``max_calls_per_session``
        #: bounds (a task stays in ``_running`` while its reply is written, and a peer
        #: that got the reply may send its next call before the task has ended).
        self._serving = 0
        self._offloaded = 0  # requests handed to ``offload`` whose outcome is not back
        self._deferred = 0  # offloaded replies handed to the loop and not yet queued there
        #: ``_serving``, ``_offloaded`` and ``_deferred`` change in worker threads too.
        self._counts = threading.Lock()
        self._all_back: asyncio.Future[None] | None = None  # close() waits on it
        self._loop = asyncio.get_running_loop()
        #: Writes offloaded replies from the worker threads (a plain-TCP relayed link).
        self._writer: ThreadWriter | None = None
        self._warned: collections.Counter[str] = collections.Counter()
        self._runner: asyncio.Task[None] | None = None
        # Reading by the link's callback: the end of reading, the messages waiting for an
        # earlier one's await (None: none is awaited) and the task that awaits it.
        self._read_end: asyncio.Future[None]
        self._backlog: collections.deque[str | bytes | None] | None = None
        self._catching: asyncio.Task[None] | None = None
        self._paused = False
        #: Replies to the peer's calls waiting for room in the link (a peer that does not
        #: read): at ``BACKLOG`` of them reading pauses (``_room_paused``) until half are out.
        self._unsent = 0
        self._room_paused = False
        self._ordered = ordered_replies
        self.warnings = warnings

    def __repr__(self) -> str:
        return f"<SessionChannel {self.name} {self.state.name} pending={len(self.pending)}>"

    # -- life ------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Read and keep alive in a task (idempotent); it ends with the session."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())
        return self._runner

    async def _run(self) -> None:
        keepalive = None
        if self.binding.keepalive_interval > 0:
            keepalive = asyncio.get_running_loop().create_task(self._keep_alive())
        try:
            thread_writer = getattr(self.relayed, "thread_writer", None)
            if self.offload is not None and thread_writer is not None:
                self._writer = thread_writer()
            deliver = getattr(self.relayed, "deliver", None)
            if deliver is not None:
                await self._read_delivered(deliver)
            else:
                while (message := await self.relayed.receive()) is not None:
                    self.received["relayed"] += 1
                    await self._on_message(message)
            code = self.relayed.close_code or CloseCode.NORMAL
            self._end(SessionClosed(int(code), self.relayed.close_reason))
        finally:
            if keepalive is not None:
                keepalive.cancel()
            self._end(SessionClosed(1006, "the connection dropped"))
            await self._stop_direct()

    async def _read_delivered(self, deliver: Callable[[Callable[[str | bytes | None], None]], None]) -> None:
        """Read the relayed link by its callback (``HybridConnectionStream.deliver``): each
        message handled as it is read, with no reader-task step; until the link ends."""
        self._read_end = asyncio.get_running_loop().create_future()
        deliver(self._delivered)
        self._read_in_thread()
        await self._read_end

    def _delivered(self, data: str | bytes | None) -> None:
        """One message of the relayed link (None: it ended), in the loop's thread.  What
        it leaves to await is awaited in a task, and the messages read meanwhile wait for
        it in order (:meth:`_catch_up`); reading pauses while ``BACKLOG`` of them wait."""
        if self._backlog is not None:
            self._backlog.append(data)
            if len(self._backlog) >= BACKLOG and not self._paused:
                self._paused = True
                cast(_Pausing, self.relayed).pause_reading()
            return
        if data is None:
            if not self._read_end.done():
                self._read_end.set_result(None)
            return
        if self._room_paused or self._unsent >= BACKLOG:
            self._room_paused = True  # (again: a session thread's give-back resumed reading)
            cast(_Pausing, self.relayed).pause_reading()
        self.received["relayed"] += 1
        try:
            left = self._dispatch(data)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: the session ends with it, as with a reader task
            self._backlog = collections.deque()
            if not self._read_end.done():
                self._read_end.set_exception(exc)
            return
        if left is not None:
            self._backlog = collections.deque()
            self._catching = asyncio.get_running_loop().create_task(self._catch_up(left))
        elif self.in_thread is not None:
            self._read_in_thread()

    async def _catch_up(self, left: Coroutine[Any, Any, None]) -> None:
        """Await ``left``, then handle the messages read meanwhile as a reader task would."""
        try:
            await left
            while self._backlog:
                data = self._backlog.popleft()
                if data is None:
                    self._read_end.set_result(None)
                    return
                self.received["relayed"] += 1
                await self._on_message(data)
        except BaseException as exc:
            if not self._read_end.done():
                self._read_end.set_exception(exc)
            raise
        self._backlog = None
        if self._paused:
            self._paused = False
            if not self._room_paused:
                cast(_Pausing, self.relayed).resume_reading()

    def _end(self, why: SessionClosed) -> None:
        """CLOSED: every call in flight fails at once with ``why``."""
        if self.state is ChannelState.CLOSED:
            return
        self.state = ChannelState.CLOSED
        if not self.ended.done():
            self.ended.set_result(why)
        for waiter in self.pending.drain():
            if not waiter.done():
                waiter.set_exception(why)
        if self._warned:
            log.info("session %s ended (%s); peer problems: %s", self.name, why,
                     dict(self._warned))

    async def abort(self, code: int, reason: str) -> None:
        """End now: calls in flight fail, the link closes with ``code``."""
        self._end(SessionClosed(code, reason))
        try:  # (closing the link takes reading back from a session thread first)
            await self.relayed.close(code, reason)
        except (ConnectionError, OSError):
            pass
        await self._stop_direct()

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "", timeout: float = 30.0) -> None:
        """Graceful: no new calls; those in flight (both ways) finish, at most ``timeout`` s."""
        if self.state is ChannelState.OPEN:
            self.state = ChannelState.CLOSING
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            work: list[asyncio.Future[Any]] = [*self._running, *self.pending.waiters()]
            with self._counts:
                if self._offloaded:
                    self._all_back = loop.create_future()
                    work.append(self._all_back)
            if work:
                await asyncio.wait(work, timeout=timeout)
            if self._running and (left := deadline - loop.time()) > 0:
                await asyncio.wait(self._running, timeout=left)  # replies still being written
        await self.abort(code, reason)
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)

    # -- calls out -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.state is ChannelState.CLOSED:
            assert self.ended.done()
            raise self.ended.result()
        if self.state is ChannelState.CLOSING:
            raise SessionClosed(CloseCode.NORMAL, "the session is closing")

    async def call(self, data: bytes, message_id: str, timeout: float | None = None,
                   *, bounded: bool = True) -> ChannelMessage:
        """Send the request ``data`` (whose MessageID is ``message_id``); its reply.

        Raises:
            SessionClosed: the session ended (or is closing) before the reply came.
            CallTimeout: no reply within ``timeout`` (default: the binding's call timeout).
            TooManyCalls: ``max_calls_per_session`` calls of ours are in flight.
        """
        self._check_open()
        thread = self.thread
        if thread is not None and thread.busy:  # its answer must be read while it works
            self._take_reading()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[ChannelMessage] = loop.create_future()
        self.pending.add(message_id, waiter, bounded=bounded)
        limit = self.binding.call_timeout if timeout is None else timeout
        timer = None
        try:
            if await self._write(data) is not self.relayed:
                self._on_direct.add(message_id)
            # A timer on the waiter itself, not wait_for(shield(...)): that wakes the
            # caller through three more futures, each a loop step (bench S8).
            timer = loop.call_later(limit, _expire, waiter)
            return await waiter
        except TimeoutError:
            raise CallTimeout(f"no reply to {message_id} within {limit:g} s") from None
        finally:
            if timer is not None:
                timer.cancel()
            self.pending.forget(message_id)
            self._on_direct.discard(message_id)

    def begin_call(self, data: bytes, message_id: str) -> asyncio.Future[ChannelMessage] | None:
        """:meth:`call` with no task and no await (a sync caller's call, started from a loop
        callback): the future of its reply, failed with :class:`CallTimeout` past the
        binding's call timeout.  None when it cannot be written at once (a direct link,
        or the transport's buffer over its mark): nothing was sent, use :meth:`call`.

        Raises:
            SessionClosed: the session ended (or is closing).
            TooManyCalls: ``max_calls_per_session`` calls of ours are in flight.
        """
        self._check_open()
        if self.link is not self.relayed:
            return None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[ChannelMessage] = loop.create_future()
        self.pending.add(message_id, waiter)
        written = False
        try:
            written = self._write_nowait(data)
        finally:
            if not written:
                self.pending.forget(message_id)
        if not written:
            return None
        self._time(waiter, message_id, self.binding.call_timeout)
        return waiter

    def adopt_call(self, message_id: str, left: float) -> asyncio.Future[ChannelMessage]:
        """A request sent outside the loop (a sync caller's lane, ``bindings.nettcp.lane``):
        the future of its reply, failed with :class:`CallTimeout` after ``left`` s.

        Raises:
            SessionClosed: the session ended.
        """
        if self.state is ChannelState.CLOSED:
            raise self.ended.result()
        waiter: asyncio.Future[ChannelMessage] = asyncio.get_running_loop().create_future()
        self.pending.add(message_id, waiter, bounded=False)
        self._time(waiter, message_id, self.binding.call_timeout, max(left, 0.0))
        return waiter

    @property
    def quiet(self) -> bool:
        """Open and relayed, with no call in flight either way: nothing to do until the
        peer speaks (when a sync client's loop may be parked, ``bindings.nettcp.lane``)."""
        return (self.state is ChannelState.OPEN and self.link is self.relayed
                and not self.pending and not self._running and not self._offloaded
                and not self._direct_readers)

    def _time(self, waiter: asyncio.Future[ChannelMessage], message_id: str, limit: float,
              delay: float | None = None) -> None:
        """Fail ``waiter`` with CallTimeout (of ``limit`` s) after ``delay`` s (``limit``)."""
        timer = asyncio.get_running_loop().call_later(
            limit if delay is None else delay, _time_out, waiter, message_id, limit)
        waiter.add_done_callback(lambda _: self._done(message_id, timer))

    def _write_nowait(self, data: bytes) -> bool:
        """Send on the relayed link with no await if it can take it now; False: nothing
        sent (a direct link, or the relayed link's buffer is over its mark).

        Raises:
            SessionClosed: the link is closed (the session ends).
        """
        link = self.link
        write_nowait = getattr(link, "write_nowait", None)
        if link is not self.relayed or write_nowait is None:
            return False
        try:
            written: bool = write_nowait(data)
        except (ConnectionError, OSError) as exc:
            self._end(SessionClosed(self.relayed.close_code or 1006,
                                    str(exc) or "the connection dropped"))
            raise self.ended.result() from exc
        if written:
            self.sent["relayed"] += 1
        return written

    def _done(self, message_id: str, timer: asyncio.TimerHandle) -> None:
        timer.cancel()
        self.pending.forget(message_id)

    async def send(self, data: bytes) -> None:
        """Send a one-way request or a reply.

        Raises:
            SessionClosed: the session ended.
        """
        self._check_open()
        await self._write(data)

    async def _write(self, data: bytes) -> Link:
        """Send on the current path; the link it went on."""
        link = self.link
        if link is not self.relayed:
            try:
                await link.write(data)
                self.sent["direct"] += 1
                return link
            except (ConnectionError, OSError):  # not sent: the relayed link takes it
                self._drop_direct(link, "it failed a write")
        try:
            await self.relayed.write(data)
        except (ConnectionError, OSError) as exc:
            self._end(SessionClosed(self.relayed.close_code or 1006,
                                    str(exc) or "the connection dropped"))
            raise self.ended.result() from exc
        self.sent["relayed"] += 1
        return self.relayed

    # -- Hybrid: the direct link -----------------------------------------------------

    @property
    def path(self) -> str:
        """Where messages go now: ``"direct"`` or ``"relayed"``."""
        return "relayed" if self.link is self.relayed else "direct"

    def attach(self, direct: Link) -> asyncio.Task[None]:
        """Send on ``direct`` from now on and read it too; the task ends with it."""
        self.link = direct
        reader = asyncio.get_running_loop().create_task(self._read_direct(direct))
        self._direct_readers[reader] = direct
        reader.add_done_callback(self._direct_readers.pop)
        return reader

    async def _stop_direct(self) -> None:
        """The session ended: close its direct links and wait for their readers."""
        readers = dict(self._direct_readers)
        for link in readers.values():
            try:
                await link.close(CloseCode.NORMAL, "the session ended")
            except (ConnectionError, OSError):
                pass
        if readers:
            await asyncio.gather(*readers, return_exceptions=True)

    async def _read_direct(self, direct: Link) -> None:
        try:
            while self.state is not ChannelState.CLOSED and (message := await direct.receive()) is not None:
                self.received["direct"] += 1
                await self._on_message(message)
        finally:
            self._drop_direct(direct, f"it closed ({direct.close_code})")

    def _drop_direct(self, direct: Link, why: str) -> None:
        """Back to the relayed link; calls sent on ``direct`` fail (their outcome is unknown)."""
        if self.link is not direct:
            return
        self.link = self.relayed
        if self.state is not ChannelState.CLOSED:
            log.info("session %s: the direct connection is gone (%s); relayed again", self.name, why)
        lost = DirectConnectionLost()
        for message_id in list(self._on_direct):
            waiter = self.pending.settle(message_id)
            if waiter is not None and not waiter.done():
                waiter.set_exception(lost)
        self._on_direct.clear()
        if self.state is not ChannelState.CLOSED:
            closing = asyncio.get_running_loop().create_task(
                direct.close(CloseCode.GOING_AWAY, "direct connection dropped"))
            self._closing_links.add(closing)
            closing.add_done_callback(self._closing_links.discard)

    # -- messages in -----------------------------------------------------------------

    async def _on_message(self, data: str | bytes) -> None:
        left = self._dispatch(data)
        if left is not None:
            await left

    def _dispatch(self, data: str | bytes) -> Coroutine[Any, Any, None] | None:
        """Handle one message as far as it goes with no await; what is left to await
        (a write that must wait for room, a fault, the session's end), if anything."""
        try:
            message = parse_message(data, self.binding.reader_quotas,
                                    self.binding.max_received_message_size)
        except MalformedMessage as exc:
            self._warn("malformed", "session %s: a malformed message: %s", self.name, exc)
            return self._reply_quietly(fault_message(f"Malformed message: {exc}", None))
        if message.kind is MessageKind.REPLY:
            if self._ordered and self._running:
                earlier = set(self._running)
                asyncio.get_running_loop().create_task(self._settle_after(earlier, message))
            else:
                self._settle(message)
            return None
        if message.headers.message_id is None:
            self._warn("no-message-id", "session %s: a request without wsa:MessageID", self.name)
            return self.abort(CloseCode.POLICY, "a request without wsa:MessageID")
        if message.headers.action == KEEPALIVE_ACTION:
            return self._reply_soon(
                reply_message(KEEPALIVE_ACTION + "Response", message.headers.message_id))
        return self._take(message)

    async def _settle_after(self, earlier: set[asyncio.Task[None]], message: ChannelMessage) -> None:
        await asyncio.wait(earlier)
        self._settle(message)

    def _settle(self, message: ChannelMessage) -> None:
        relates_to = message.headers.relates_to
        assert relates_to is not None
        waiter = self.pending.settle(relates_to)
        if waiter is None:
            self._warn("unknown-reply", "session %s: a reply for no call in flight (%s) dropped",
                       self.name, relates_to)
        elif not waiter.done():
            waiter.set_result(message)

    def _take(self, message: ChannelMessage) -> Coroutine[Any, Any, None] | None:
        """A request: run, handed on, or refused; what is left to await (as :meth:`_dispatch`)."""
        relates_to = message.headers.message_id
        if self.state is not ChannelState.OPEN:
            return self._reply_quietly(fault_message(
                "The session is closing; open a new one", relates_to,
                code=FaultCode.SERVER, subcode="SessionClosing"))
        if self._serving >= self.binding.max_calls_per_session:
            if self.flood.refuse():
                self._warn("flood", "session %s: flooded with calls; closing", self.name)
                return self.abort(CloseCode.POLICY, "too many calls refused in a row (flood)")
            self._warn("busy", "session %s: a call over the limit of %d refused", self.name,
                       self.binding.max_calls_per_session)
            reason = str(TooManyCalls(self.binding.max_calls_per_session))
            return self._reply_quietly(fault_message(
                reason, relates_to, code=FaultCode.SERVER, subcode="ServerTooBusy"))
        self.flood.accepted()
        if self.inline is not None:
            reply = self._run_inline(self.inline, message)
            return None if reply is None else self._reply_soon(reply)
        if self.offload is not None:
            with self._counts:
                self._serving += 1
                self._offloaded += 1
            try:
                self.offload(message, self._outcome)
            except Exception as exc:  # noqa: BLE001 - not run (workers shut down): a fault, as a failed call
                with self._counts:
                    self._serving -= 1
                    self._deferred += 1
                self._finished(message, self._internal_error(message, exc))
            return None
        self._serving += 1
        task = asyncio.get_running_loop().create_task(self._serve(message))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return None

    def _run_inline(self, inline: InlineHandler, message: ChannelMessage) -> bytes | None:
        try:
            return inline(message)
        except Exception:  # noqa: BLE001 - logged with its traceback, answered with a fault
            return self._internal_error(message)

    def _outcome(self, message: ChannelMessage, outcome: Outcome) -> None:
        """An offloaded request's outcome, in the worker's thread.  Its reply is written
        from here when the link's thread writer can take it now -- the loop is not woken
        at all -- and nothing handed to the loop before it is still on its way; else it
        goes to the loop (:meth:`_finished`), as every message did before, so that the
        replies of a serial session leave in order."""
        reply = self._internal_error(message, outcome) if isinstance(outcome, Exception) else outcome
        with self._counts:  # over for the bound before its reply leaves: the client may
            self._serving -= 1  # send its next call as soon as it reads it
        writer = self._writer
        if writer is not None and self._deferred == 0 and not self._running and (
                reply is None or (self.link is self.relayed and self.state is not ChannelState.CLOSED
                                  and writer.send(reply))):
            with self._counts:
                self._offloaded -= 1
                back = not self._offloaded and self._all_back is not None
            if back:
                self._call_in_loop(self._settled_all)
            return
        with self._counts:
            self._deferred += 1
        self._call_in_loop(self._finished, message, reply)

    def _call_in_loop(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: the session went with it
            pass

    def _finished(self, message: ChannelMessage, reply: bytes | None) -> None:
        """An offloaded request's reply, in the loop's thread: queued (with no await
        when the link takes it now)."""
        if reply is not None and not self._reply_nowait(reply):
            task = asyncio.get_running_loop().create_task(self._reply_quietly(reply))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            self._unsent += 1
            task.add_done_callback(self._reply_out)
        with self._counts:  # (over for the bound already: :meth:`_outcome`)
            self._offloaded -= 1
            self._deferred -= 1
        self._settled_all()

    def _reply_out(self, _: object) -> None:
        """A reply that waited for room is out: reading resumes once half of them are."""
        self._unsent -= 1
        if self._room_paused and self._unsent <= BACKLOG // 2:
            self._room_paused = False
            if not self._paused:
                cast(_Pausing, self.relayed).resume_reading()

    def _settled_all(self) -> None:
        """In the loop's thread: tell :meth:`close` when no offloaded call is left."""
        if not self._offloaded and self._all_back is not None and not self._all_back.done():
            self._all_back.set_result(None)

    def _internal_error(self, message: ChannelMessage, error: Exception | None = None) -> bytes:
        tracking = uuid.uuid4().hex
        log.error("session %s: a call failed TrackingId:%s", self.name, tracking,
                  exc_info=error if error is not None else True)
        return fault_message(f"Internal server error TrackingId:{tracking}",
                             message.headers.message_id, code=FaultCode.SERVER)

    async def _serve(self, message: ChannelMessage) -> None:
        try:
            reply = await self.handler(message)
        except Exception:  # noqa: BLE001 - logged with its traceback, answered with a fault
            reply = self._internal_error(message)
        finally:
            self._serving -= 1  # the call is over for the bound before its reply leaves
        if reply is not None and not self._reply_nowait(reply):
            self._unsent += 1  # waits for room: counted, as an offloaded reply would be
            try:
                await self._reply_quietly(reply)
            finally:
                self._reply_out(None)

    def _reply_nowait(self, data: bytes) -> bool:
        """:meth:`_reply_quietly` with no await when the link takes it now; False: not sent."""
        if self.state is ChannelState.CLOSED:
            return True
        try:
            return self._write_nowait(data)
        except SessionClosed:
            return True

    def _reply_soon(self, data: bytes) -> Coroutine[Any, Any, None] | None:
        """Queue ``data`` with no await if the link takes it now; else what sends it."""
        return None if self._reply_nowait(data) else self._reply_quietly(data)

    async def _reply_quietly(self, data: bytes) -> None:
        """Send, unless the session ended meanwhile (the reply has nobody to go to)."""
        if self.state is ChannelState.CLOSED:
            return
        try:
            await self._write(data)
        except SessionClosed:
            pass

    # -- the session's own thread (``in_thread``) ---------------------------------------

    def _read_in_thread(self) -> None:
        """In the loop's thread: let a session thread read the relayed link from now on,
        if it can (a plain-TCP link, nothing read and not yet handled, none reading,
        the last one stopped ``THREAD_AGAIN`` s ago or more, a permit free)."""
        thread = self.thread
        if thread is not None and thread.reading:
            return
        if (self.in_thread is None or self._writer is None or self.state is not ChannelState.OPEN
                or self._backlog is not None or self._paused or self._room_paused):
            return
        if thread is not None:
            if not self._thread_ended:  # it gave reading back by itself: noticed now
                self._thread_ended = time.monotonic()
            if time.monotonic() - self._thread_ended < THREAD_AGAIN:
                return
        permits = self._permits
        if permits is not None and not permits.acquire(blocking=False):
            return  # the host has all the session threads it may: the loop reads
        opener = getattr(self.relayed, "thread_reader", None)
        reader = opener() if opener is not None else None
        if reader is None:  # something read and not yet handled: later
            if permits is not None:
                permits.release()
            return
        self.thread = SessionThread(reader, self._judge, self.in_thread, self._outcome, self.name,
                                    permits)
        self._thread_ended = 0.0
        self.thread.start()

    def _take_reading(self) -> None:
        """In the loop's thread: the loop reads the relayed link again (its thread's unread
        bytes first)."""
        thread = self.thread
        if thread is not None and thread.reading:
            thread.reader.take_over()
            self._thread_ended = time.monotonic()

    def watch_thread(self, longest: float, now: float) -> None:
        """In the loop's thread: read the relayed link again if a call kept its reading
        thread for more than ``longest`` s (the client's keep-alives must be answered)."""
        thread = self.thread
        if thread is not None and thread.reading and thread.busy_for(now) > longest:
            log.debug("session %s: a call runs for %.1f s; the loop reads meanwhile",
                      self.name, thread.busy_for(now))
            self._take_reading()

    def _judge(self, data: bytes) -> ChannelMessage | bool | None:
        """In the session's thread (its reader's lock held): a request for it to run --
        counted as taken, as :meth:`_take` does --, True when handled here (a reply,
        settled by the loop; a keep-alive, answered), or None: the loop's to handle
        (a malformed message, a request to refuse or that ends the session)."""
        if self._unsent:  # replies wait for room: the loop holds the peer back
            return None
        try:
            message = parse_message(data, self.binding.reader_quotas,
                                    self.binding.max_received_message_size)
        except MalformedMessage:
            return None
        if message.kind is MessageKind.REPLY:
            self.received["relayed"] += 1
            self._call_in_loop(self._settle, message)
            return True
        if message.headers.message_id is None or self.state is not ChannelState.OPEN:
            return None
        with self._counts:
            if self._serving >= self.binding.max_calls_per_session:
                return None
            self._serving += 1
            self._offloaded += 1
            self.flood.accepted()
        self.received["relayed"] += 1
        if message.headers.action == KEEPALIVE_ACTION:
            self._outcome(message, reply_message(KEEPALIVE_ACTION + "Response",
                                                 message.headers.message_id))
            return True
        return message

    # -- keep-alive ------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        interval, timeout = self.binding.keepalive_interval, self.binding.keepalive_timeout
        while self.state is not ChannelState.CLOSED:
            await asyncio.sleep(interval)
            message_id = new_message_id()
            try:
                await self.call(request_message(KEEPALIVE_ACTION, message_id), message_id,
                                timeout, bounded=False)
            except CallTimeout:
                if self.link is not self.relayed:  # the direct path went silent: drop it
                    self._drop_direct(self.link, "no keep-alive answer")
                    continue
                self.warnings.warning("session %s: no keep-alive answer within %g s; ending it",
                            self.name, timeout)
                await self.abort(CloseCode.GOING_AWAY, f"no keep-alive answer within {timeout:g} s")
                return
            except SessionClosed:
                return

    def _warn(self, kind: str, message: str, *args: object) -> None:
        self._warned[kind] += 1
        if self._warned[kind] == 1:
            self.warnings.warning(message, *args)


def _time_out(waiter: asyncio.Future[Any], message_id: str, limit: float) -> None:
    """:meth:`SessionChannel.begin_call`'s time is up: its waiter fails with CallTimeout."""
    if not waiter.done():
        waiter.set_exception(CallTimeout(f"no reply to {message_id} within {limit:g} s"))


def _expire(waiter: asyncio.Future[Any]) -> None:
    """A call's time is up: its waiter fails with TimeoutError (the call raises CallTimeout)."""
    if not waiter.done():
        waiter.set_exception(TimeoutError())
