"""A session's calls in worker threads, handed over with no task and no asyncio future.

The host runs a service's calls off its event loop (a Spyne method may block).  Through
``loop.run_in_executor`` each call costs a task, an asyncio future chained to the pool's
future (a callback each way), a lock's await for the session's order and two more loop
steps before its reply is queued.  :class:`SessionCalls` does the same work with less:

- :meth:`SessionCalls.submit` (in the loop's thread) queues the request; with
  ``serial`` (``ConcurrencyMode.SINGLE``) one pool job at a time runs the session's
  queued requests in the order they came, else each request is a job of its own;
- each outcome -- the reply's bytes, None for a one-way operation, or the exception the
  service's pipeline raised -- comes back to the loop's thread with one
  ``call_soon_threadsafe`` to ``finish(message, outcome)``.

The pool, :class:`Workers`, is shared by a host's sessions (``max_concurrent_calls``
threads, started as needed, as a ``ThreadPoolExecutor``'s); a job is handed to it with
:meth:`Workers.run_soon` through one queue, with no ``Future`` and no semaphore
(``submit`` still gives a ``Future``, for ``loop.run_in_executor``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from bindings.nettcp.framing import ChannelMessage

log = logging.getLogger("bindings.nettcp")

__all__ = ["Finish", "Outcome", "SessionCalls", "Workers"]

#: What a call came to: its reply's bytes, None (one-way), or what the pipeline raised.
Outcome = bytes | None | Exception
#: Called in the loop's thread with each request and its outcome.
Finish = Callable[[ChannelMessage, Outcome], None]


class Workers(Executor):
    """Up to ``max_workers`` threads running the jobs handed to them, in the order given.

    Args:
        max_workers: threads at most (started when a job finds none idle).
        name: their names' prefix.
    """

    def __init__(self, max_workers: int, name: str = "worker") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers, self.name = max_workers, name
        self._jobs: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job
        self._queued = 0  # jobs no thread took yet
        self._shutdown = False

    def __repr__(self) -> str:
        return f"<Workers threads={len(self._threads)} idle={self._idle} queued={self._queued}>"

    @property
    def threads(self) -> int:
        """Threads started so far (at most ``max_workers``)."""
        return len(self._threads)

    def run_soon(self, job: Callable[[], object]) -> None:
        """Run ``job()`` in a worker thread (its outcome is its own business).

        Raises:
            RuntimeError: the workers are shut down.
        """
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot run new jobs after shutdown")
            self._queued += 1
            start = self._queued > self._idle and len(self._threads) < self.max_workers
            if start:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"{self.name}_{len(self._threads)}")
                self._threads.append(thread)
        self._jobs.put(job)
        if start:
            thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """:meth:`run_soon` with a ``Future`` of ``fn(*args, **kwargs)``."""
        future: Future[Any] = Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed over in the future, as a pool's
                future.set_exception(exc)

        self.run_soon(job)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new jobs; the threads end once the jobs queued before are done."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                thread.join()

    def _work(self) -> None:
        jobs, lock = self._jobs, self._lock
        while True:
            with lock:
                self._idle += 1
            job = jobs.get()
            with lock:
                self._idle -= 1
                if job is not None:
                    self._queued -= 1
            if job is None:
                return
            try:
                job()
            except Exception:  # a job's own failure: logged, the thread goes on
                log.exception("a job of %s failed", self.name)
            del job


class SessionCalls:
    """Runs one session's requests in ``pool`` (see the module docstring).

    Args:
        pool: the host's worker threads.
        run: the pipeline, called in a worker thread with each request.
        loop: the session's event loop (where ``finish`` is called).
        serial: one at a time, in order (``ConcurrencyMode.SINGLE``).
    """

    def __init__(self, pool: Workers, run: Callable[[ChannelMessage], bytes | None],
                 loop: asyncio.AbstractEventLoop, *, serial: bool) -> None:
        self.pool, self.run, self.loop, self.serial = pool, run, loop, serial
        self._queue: collections.deque[tuple[ChannelMessage, Finish]] = collections.deque()
        self._lock = threading.Lock()
        self._draining = False  # a pool job is running the queue (serial)

    def __repr__(self) -> str:
        return f"<SessionCalls queued={len(self._queue)} serial={self.serial}>"

    def submit(self, message: ChannelMessage, finish: Finish) -> None:
        """Run ``message`` in a worker; ``finish`` gets its outcome in the loop's thread.

        Raises:
            RuntimeError: the pool is shut down (the host is closing).
        """
        if not self.serial:
            self.pool.run_soon(lambda: self._one(message, finish))
            return
        with self._lock:
            self._queue.append((message, finish))
            if self._draining:
                return
            self._draining = True
        try:
            self.pool.run_soon(self._drain)
        except BaseException:
            with self._lock:
                self._queue.clear()
                self._draining = False
            raise

    def _drain(self) -> None:
        """In a worker: the queued requests, one after the other, until none is left."""
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._draining = False
                        return
                    message, finish = self._queue.popleft()
                self._one(message, finish)
        except BaseException:  # the worker is being torn down: the next submit starts anew
            with self._lock:
                self._draining = False
            raise

    def _one(self, message: ChannelMessage, finish: Finish) -> None:
        outcome: Outcome
        try:
            outcome = self.run(message)
        except Exception as exc:  # noqa: BLE001 - handed to the loop, which logs and answers it
            outcome = exc
        try:
            self.loop.call_soon_threadsafe(finish, message, outcome)
        except RuntimeError:  # the loop is closed: the session is gone with it
            pass
