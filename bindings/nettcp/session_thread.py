"""A session's own thread: it reads the session's socket and runs the calls it reads.

The default host runs a service's calls in worker threads (a Spyne method may block).
Handed over by the event loop, each call costs two wake-ups: the loop's, on the socket,
and the worker's.  A :class:`SessionThread` reads the relayed link itself
(:class:`hc.asyncio.thread_reader.ThreadReader`) and runs each request it reads right
there -- one wake-up per call, and the loop does not wake at all -- for as long as the
session is an ordinary exchange of whole binary messages:

- ``judge`` (the channel's, called under the reader's lock) says what each message is:
  a request to run, handled already (a reply, passed to the loop; a keep-alive,
  answered), or the loop's (anything else, and everything while replies wait for room
  in the link: reading goes back to the loop, which holds a peer that does not read);
- each request runs through ``run`` (:meth:`SessionCalls.run_here
  <bindings.nettcp.workers.SessionCalls.run_here>`): in this thread, in order with the
  session's other calls, holding one of the host's call slots;
- the loop takes reading back when it needs it: before it closes the session, before
  it calls the client while this thread is in a call (the answer must be read), and
  when a call has kept this thread for ``LONGEST_CALL`` s (so that keep-alives and the
  client's other messages are read meanwhile; the host checks, :meth:`busy_for`).

A host has at most ``MOST_THREADS`` of them at once (``permits``); its other sessions
are read by the loop, their calls handed to the pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bindings.nettcp.framing import ChannelMessage
from bindings.nettcp.workers import Finish
from hc.asyncio.thread_reader import ThreadReader

__all__ = ["LONGEST_CALL", "MOST_THREADS", "Judge", "SessionThread"]

#: Seconds a call may keep the reading thread before the loop reads again (a client's
#: keep-alive must be answered within its ``keepalive_timeout``, 3 s by default).
LONGEST_CALL = 1.0
#: Session threads of one host at once.
MOST_THREADS = 64
#: What the reading thread does with a message: a request to run, True (handled), or
#: None (the loop's: reading goes back to it).
Judge = Callable[[bytes], ChannelMessage | bool | None]


class SessionThread:
    """One session's reading thread (see the module docstring).

    Args:
        reader: the relayed link's socket, its reading taken from the loop.
        judge: what each message is.
        run: runs a request (``run(message, finish)``).
        finish: given each request's outcome (``run`` calls it).
        name: the session's, for the thread's name.
        permit: released when the thread ends (the host's count of session threads).
    """

    def __init__(self, reader: ThreadReader, judge: Judge,
                 run: Callable[[ChannelMessage, Finish], None], finish: Finish, name: str,
                 permit: threading.Semaphore | None = None) -> None:
        self.reader, self.judge, self.run, self.finish = reader, judge, run, finish
        self.permit = permit
        self._busy_since: float | None = None
        self.thread = threading.Thread(target=self._serve, name=f"nettcp-session-{name[-8:]}",
                                       daemon=True)

    def __repr__(self) -> str:
        return f"<SessionThread reading={self.reader.reading} busy={self._busy_since is not None}>"

    def start(self) -> None:
        self.thread.start()

    @property
    def reading(self) -> bool:
        """Whether this thread still reads the session's socket."""
        return self.reader.reading

    @property
    def busy(self) -> bool:
        """Whether a call is running in this thread now."""
        return self._busy_since is not None

    def busy_for(self, now: float) -> float:
        """Seconds the call running in this thread has taken so far (0: none runs)."""
        since = self._busy_since
        return 0.0 if since is None else now - since

    def _serve(self) -> None:
        reader = self.reader
        try:
            while (taken := reader.next_message(self.judge)) is not None:
                if not isinstance(taken, ChannelMessage):
                    continue
                self._busy_since = time.monotonic()
                try:
                    self.run(taken, self.finish)
                except RuntimeError as exc:  # not run: the workers are shut down (closing)
                    self.finish(taken, exc)
                finally:
                    self._busy_since = None
        finally:
            reader.close()
            if self.permit is not None:
                self.permit.release()
