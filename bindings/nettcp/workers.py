"""A session's calls in worker threads, handed over with no task and no asyncio future.

The host runs a service's calls off its event loop (a Spyne method may block).  Through
``loop.run_in_executor`` each call costs a task, an asyncio future chained to the pool's
future (a callback each way), a lock's await for the session's order and two more loop
steps before its reply is queued.  :class:`SessionCalls` does the same work with less:

- :meth:`SessionCalls.submit` (in the loop's thread) queues the request; with
  ``serial`` (``ConcurrencyMode.SINGLE``) one pool job at a time runs the session's
  queued requests in the order they came, else each request is a job of its own;
- :meth:`SessionCalls.run_here` (in the session's own thread, which reads its socket:
  :mod:`bindings.nettcp.session_thread`) runs a request in the calling thread, then
  whatever was queued meanwhile -- unless a pool job is running the session's requests
  already (it is queued for that job), or no call slot is free (it goes to the pool);
- each outcome -- the reply's bytes, None for a one-way operation, or the exception the
  service's pipeline raised -- goes to ``finish(message, outcome)`` in the worker's
  thread, which writes the reply itself or hands it to the loop
  (``SessionChannel._outcome``): in serial mode the next request runs only after it.

The pool is shared by a host's sessions (``max_concurrent_calls`` threads), and so are
the ``slots``: a call runs only while it holds one, in the pool or in a session's thread,
so that at most ``max_concurrent_calls`` calls run at once, however they came.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Executor

from bindings.nettcp.framing import ChannelMessage

__all__ = ["Finish", "Outcome", "SessionCalls"]

#: What a call came to: its reply's bytes, None (one-way), or what the pipeline raised.
Outcome = bytes | None | Exception
#: Called in the worker's thread with each request and its outcome.
Finish = Callable[[ChannelMessage, Outcome], None]


class SessionCalls:
    """Runs one session's requests in ``pool`` (see the module docstring).

    Args:
        pool: the host's worker threads.
        run: the pipeline, called in a worker thread with each request.
        serial: one at a time, in order (``ConcurrencyMode.SINGLE``).
        slots: the host's call slots (none: the pool's size is the only bound).
    """

    def __init__(self, pool: Executor, run: Callable[[ChannelMessage], bytes | None], *,
                 serial: bool, slots: threading.Semaphore | None = None) -> None:
        self.pool, self.run, self.serial, self.slots = pool, run, serial, slots
        self._queue: collections.deque[tuple[ChannelMessage, Finish]] = collections.deque()
        self._lock = threading.Lock()
        self._draining = False  # a pool job is running the queue (serial)

    def __repr__(self) -> str:
        return f"<SessionCalls queued={len(self._queue)} serial={self.serial}>"

    @property
    def draining(self) -> bool:
        """Whether a pool job runs the session's requests now (serial): a request the
        session's thread reads meanwhile is queued for that job, not run in the thread.
        The job ends a moment after its last reply is written."""
        return self._draining

    def submit(self, message: ChannelMessage, finish: Finish) -> None:
        """Run ``message`` in a worker; ``finish`` gets its outcome in that worker's thread.

        Raises:
            RuntimeError: the pool is shut down (the host is closing).
        """
        if not self.serial:
            self.pool.submit(self._one, message, finish)
            return
        with self._lock:
            self._queue.append((message, finish))
            if self._draining:
                return
            self._draining = True
        try:
            self.pool.submit(self._drain)
        except BaseException:
            with self._lock:
                self._queue.clear()
                self._draining = False
            raise

    def run_here(self, message: ChannelMessage, finish: Finish) -> None:
        """In a serial session's own thread: run ``message`` now, then the requests queued
        meanwhile; or queue it for the pool job running the session's requests; or, with
        no call slot free, hand it to the pool (:meth:`submit`).

        Raises:
            RuntimeError: the pool is shut down (the host is closing).
        """
        assert self.serial
        slots = self.slots
        if slots is not None and not slots.acquire(blocking=False):
            self.submit(message, finish)
            return
        with self._lock:
            self._queue.append((message, finish))
            if self._draining:
                if slots is not None:
                    slots.release()
                return
            self._draining = True
        self._drain(slot_held=slots is not None)

    def _drain(self, *, slot_held: bool = False) -> None:
        """In a worker: the queued requests, one after the other, until none is left."""
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._draining = False
                        return
                    message, finish = self._queue.popleft()
                self._one(message, finish, slot_held=slot_held)
                slot_held = False
        except BaseException:  # the worker is being torn down: the next submit starts anew
            with self._lock:
                self._draining = False
            raise

    def _one(self, message: ChannelMessage, finish: Finish, *, slot_held: bool = False) -> None:
        outcome: Outcome
        slots = self.slots
        if slots is not None and not slot_held:
            slots.acquire()
        try:
            outcome = self.run(message)
        except Exception as exc:  # noqa: BLE001 - handed on: ``finish`` logs and answers it
            outcome = exc
        finally:
            if slots is not None:
                slots.release()
        finish(message, outcome)
