"""A Spyne service for the NetTcp tests: session state, order, gates, callbacks."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from spyne import Application, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap12

from bindings.nettcp.session import SESSION_CLOSE, SESSION_OPEN, ServiceSession, session_of
from bindings.oneway import oneway

TNS = "urn:soap-relay:tests:nettcp"
_STDOUT = threading.Lock()


class Progress(ServiceBase):  # type: ignore[misc]
    """The callback contract: the client implements it."""

    __namespace__ = "urn:soap-relay:tests:nettcp:progress"

    @oneway(Integer, Integer)
    def Step(ctx, done, total):  # type: ignore[no-untyped-def]
        """One step done (one-way)."""

    @rpc(Unicode, _returns=Unicode)
    def Ask(ctx, question):  # type: ignore[no-untyped-def]
        """A question the client answers (request/response)."""


class Board:
    """What the service saw, for the tests to read (shared across threads)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.events: list[tuple[str, str]] = []
        self.records: list[str] = []
        self.running = 0
        self.most_running = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.sessions: dict[str, ServiceSession] = {}

    def note(self, kind: str, value: str) -> None:
        with self.lock:
            self.events.append((kind, value))
            self.lock.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        with self.lock:
            return bool(self.lock.wait_for(lambda: predicate(self), timeout))


def _board(ctx: Any) -> Board:
    board: Board = ctx.app.board
    return board


class SessionService(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode, _returns=Unicode)
    def Echo(ctx, text):  # type: ignore[no-untyped-def]
        return text

    @rpc(Integer, _returns=Integer)
    def Add(ctx, amount):  # type: ignore[no-untyped-def]
        session = session_of(ctx)
        session.state["total"] = session.state.get("total", 0) + amount
        return session.state["total"]

    @rpc(_returns=Unicode)
    def SessionId(ctx):  # type: ignore[no-untyped-def]
        session = session_of(ctx)
        _board(ctx).sessions[session.id] = session
        return session.id

    @rpc(Unicode, _returns=Unicode)
    def Gated(ctx, text):  # type: ignore[no-untyped-def]
        """Waits for the board's gate; counts calls running at once."""
        board = _board(ctx)
        with board.lock:
            board.running += 1
            board.most_running = max(board.most_running, board.running)
        board.entered.release()
        try:
            board.gate.wait(20)
        finally:
            with board.lock:
                board.running -= 1
        board.note("gated", text)
        return text

    @rpc(Integer, _returns=Integer)
    def Sleep(ctx, ms):  # type: ignore[no-untyped-def]
        """Sleeps ``ms`` milliseconds; says so on stdout first (host_process's readers)."""
        with _STDOUT:  # one whole line per call, whatever the threads
            sys.stdout.write("SLEEPING\n")
            sys.stdout.flush()
        time.sleep(ms / 1000)
        return ms

    @rpc(_returns=Unicode)
    def ThreadName(ctx):  # type: ignore[no-untyped-def]
        """The name of the thread the call runs in."""
        return threading.current_thread().name

    @oneway(Unicode)
    def Record(ctx, text):  # type: ignore[no-untyped-def]
        board = _board(ctx)
        with board.lock:
            board.records.append(text)
            board.lock.notify_all()

    @rpc(Integer, _returns=Integer)
    def Count(ctx, steps):  # type: ignore[no-untyped-def]
        """One-way callbacks only, then the reply."""
        progress = session_of(ctx).callback(Progress)
        for done in range(1, steps + 1):
            progress.Step(done, steps)
        return steps

    @rpc(Integer, _returns=Unicode)
    def Run(ctx, steps):  # type: ignore[no-untyped-def]
        """Reports each step through the callback, then asks the client."""
        progress = session_of(ctx).callback(Progress)
        for done in range(1, steps + 1):
            progress.Step(done, steps)
        return progress.Ask(f"done {steps}?")


def session_app(board: Board | None = None) -> Application:
    """The test service (SOAP 1.2) with its :class:`Board` as ``app.board``."""
    app = Application([SessionService], tns=TNS, in_protocol=Soap12(), out_protocol=Soap12())
    app.board = board or Board()
    app.event_manager.add_listener(SESSION_OPEN, lambda s: app.board.note("open", s.id))
    app.event_manager.add_listener(SESSION_CLOSE, lambda s: app.board.note("close", s.id))
    return app


class ShowProgress:
    """The client's implementation of :class:`Progress`."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int]] = []
        self.questions: list[str] = []

    def Step(self, done: int, total: int) -> None:
        self.steps.append((done, total))

    def Ask(self, question: str) -> str:
        self.questions.append(question)
        return f"yes after {len(self.steps)} steps"
