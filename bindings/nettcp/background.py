"""An event loop in a daemon thread, for the blocking faces (the sync zeep client).

One async core (the session channel) serves both zeep clients: the sync one runs it
here and waits for each call's result from its own thread.  The loop is uvloop's when
it is installed (the ``fast`` extra, as for the relay): bench S8 measured about 180 us
less CPU per sync zeep call on a session (1,002 -> 817 us in the client, c=1).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundLoop"]

T = TypeVar("T")


class BackgroundLoop:
    """A loop running in a thread of its own until :meth:`stop`."""

    def __init__(self, name: str = "nettcp-client") -> None:
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        #: Called before work is submitted (a parked loop is woken: bindings.nettcp.lane).
        self.on_submit: Callable[[], None] | None = None

    def run(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``work`` on the loop; block until it is done (at most ``timeout`` s)."""
        if self.on_submit is not None:
            self.on_submit()
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and join its thread (idempotent)."""
        if self.loop.is_closed():
            return
        self.run(_cancel_the_rest(), 10)  # no task is left to die with the loop
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


async def _cancel_the_rest() -> None:
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
