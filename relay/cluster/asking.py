"""One ask of the cluster, on the asking node: sent at once, answered by callbacks.

No task and no awaited future per call: :meth:`Asking.start` publishes the ask
(``relay.cluster.link.Link.ask``), each answer is heard from the NATS
connection's ``data_received`` (``relay.cluster.natsclient``), and deadlines bound
the waits (:class:`Deadlines`: one timer for all of a node's asks, looking every
:data:`SWEEP_EVERY` seconds, not a timer per ask; so each wait below may last up
to that much longer than its figure); the outcome (an
:class:`~relay.cluster.messages.Answer` or the :class:`~relay.exceptions.RelayError`
to fail the call with) goes to ``done`` exactly once, unless :meth:`cancel` came
first.  Life of an ask::

    SENT --"no listener" (it just left; at most TRIES sends)--> SENT again (over NATS)
    SENT --"posted", a whole request--> POSTED (the node is watched)
    SENT --any other answer--> DONE
    SENT --nothing within ASK_TIMEOUT s--> DONE: ListenerTimeout
    POSTED --"replied" / "gone"--> DONE
    POSTED --the node forgotten (dead)--> DONE: ListenerGone
    POSTED --the ask's timeout (+1 s)--> DONE: ListenerTimeout
    SENT|POSTED --its direct link lost--> DONE: ListenerGone
    any --cancel()--> DONE (done is not told)

An ask may go first over a direct link to a node holding listeners
(``relay.cluster.direct``, chosen by the caller) instead of NATS; the answers are
the same.  A "no listener" there (the peer table was stale) sends it over NATS;
a link lost before the answer fails it as a node's death does, never sent twice.

The listener's node says "posted" for a whole request only once its listener
took longer than ``relay.cluster.serve.POSTED_AFTER`` to answer: a quick call
crosses NATS twice, not three times.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import Protocol

from relay.cluster.direct import PeerLink
from relay.cluster.link import Link, LinkDown, Msg, no_responders
from relay.cluster.messages import Answer, AnswerStatus, Ask, MessageError, parse_answer
from relay.exceptions import (
    InvalidListenerResponse,
    ListenerGone,
    ListenerTimeout,
    NoListener,
    RelayError,
)

__all__ = ["ASK_TIMEOUT", "NO_SERVICE", "SWEEP_EVERY", "TRIES", "WATCH_EVERY", "AskState", "Asking",
           "Deadlines", "Due", "Outcome"]

log = logging.getLogger("relay.cluster")
#: Seconds a node may take to hand an address-only request or an accept to its
#: listener, or to answer a whole request (or say it is "posted").
ASK_TIMEOUT = 5.0
#: Seconds between looks at whether the node with a whole request is still alive.
WATCH_EVERY = 0.5
#: Sends of one ask at most: a node whose listener just left answers "no listener".
TRIES = 3
#: Seconds between looks at the deadlines of the asks in flight (:class:`Deadlines`).
SWEEP_EVERY = 0.1
NO_SERVICE = "No service is hosted at the specified address."
Outcome = Answer | RelayError


class AskState(enum.Enum):
    SENT = "sent"
    POSTED = "posted"
    DONE = "done"


class Due(Protocol):
    """What :class:`Deadlines` looks at (an :class:`Asking`)."""

    def due(self) -> None:
        """Its deadline passed."""


class Deadlines:
    """When each of a node's asks in flight is next due a look (:meth:`Asking.due`),
    looked at every :data:`SWEEP_EVERY` seconds by one timer, armed only while some
    ask waits: a cross-node call sets and clears a dict entry instead of making and
    cancelling a timer of its own."""

    __slots__ = ("_due", "_loop", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[Due, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._due)

    def set(self, asking: Due, delay: float) -> None:
        """Look at ``asking`` once ``delay`` seconds have passed (at most SWEEP_EVERY later)."""
        self._due[asking] = self._loop.time() + delay
        if self._timer is None:
            self._timer = self._loop.call_later(SWEEP_EVERY, self._sweep)

    def clear(self, asking: Due) -> None:
        self._due.pop(asking, None)

    def _sweep(self) -> None:
        now = self._loop.time()
        due = [asking for asking, when in self._due.items() if when <= now]
        for asking in due:
            del self._due[asking]
        self._timer = self._loop.call_later(SWEEP_EVERY, self._sweep) if self._due else None
        for asking in due:  # each may set itself again
            try:
                asking.due()
            except Exception:  # a bug of ours: say so, and still look at the others
                log.exception("cluster: an ask's deadline failed")


class Asking:
    """One ask in flight (see the module's docstring)."""

    __slots__ = ("_alive", "_deadline", "_deadlines", "_direct", "_done", "_drop", "_known", "_link",
                 "_loop", "_node", "_number", "_token", "_tries", "ask", "payload", "state", "subject")

    def __init__(
        self, link: Link, subject: str, ask: Ask, done: Callable[[Outcome], None],
        alive: Callable[[str], bool], drop: Callable[[str, object], None], deadlines: Deadlines,
        direct: PeerLink | None = None,
    ) -> None:
        self._link, self.subject, self.ask, self._done = link, subject, ask, done
        self._alive, self._drop, self._deadlines = alive, drop, deadlines
        self._loop = link.loop
        self.payload = ask.serialize()
        self.state = AskState.SENT
        self._token = ""
        self._tries = 0
        self._node, self._known, self._deadline = "", False, 0.0
        #: The open link the ask goes over first (None: NATS), and its number there.
        self._direct, self._number = direct, 0

    def start(self) -> None:
        """Send the ask (again); raises NoListener at once when NATS is unreachable
        (and no direct link is given)."""
        self._tries += 1
        self._hang_up()
        direct = self._direct
        if direct is not None:
            self._number = direct.ask(self.payload, self._heard_direct)
            self._arm(ASK_TIMEOUT)
            return
        try:
            self._token = self._link.ask(self.subject, self.payload, self._heard)
        except LinkDown as exc:
            self._token = ""
            raise NoListener(f"{NO_SERVICE} (the cluster is unreachable)") from exc
        self._arm(ASK_TIMEOUT)

    def cancel(self) -> None:
        """Stop: hear no more answers, tell nobody."""
        self.state = AskState.DONE
        self._stop()

    # -- answers ---------------------------------------------------------------------

    def _heard(self, msg: Msg) -> None:
        if self.state is AskState.DONE:
            return
        if no_responders(msg):
            self._end(NoListener(NO_SERVICE))
            return
        self._take(msg.data)

    def _heard_direct(self, data: bytes | None) -> None:
        direct = self._direct
        if self.state is AskState.DONE or direct is None:
            return
        if data is None:
            self._end(ListenerGone(f"the listener's node {direct.node} went away"))
            return
        self._take(data)

    def _take(self, data: bytes) -> None:
        try:
            answer = parse_answer(data)
        except MessageError as exc:
            self._drop(self.subject, exc)
            self._end(InvalidListenerResponse("the listener's node answered nonsense"))
            return
        if answer.status is AnswerStatus.NO_LISTENER and self.state is AskState.SENT:
            if self._tries < TRIES:
                self._again()
                return
        elif answer.status is AnswerStatus.POSTED and self.ask.body is not None:
            if self.state is AskState.SENT:  # a whole request: its reply follows
                self._watch(answer.node)
            return
        self._end(answer)

    def _again(self) -> None:
        direct = self._direct
        if direct is not None:  # the peer table was stale: NATS knows who holds one
            direct.fell_back()
            self._hang_up()
            self._direct = None
        try:
            self.start()
        except NoListener as exc:
            self._end(exc)

    def _watch(self, node: str) -> None:
        self.state, self._node, self._known = AskState.POSTED, node, self._alive(node)
        self._deadline = self._loop.time() + self.ask.timeout + 1
        self._arm(min(WATCH_EVERY, self.ask.timeout + 1))

    # -- deadlines -------------------------------------------------------------------

    def _arm(self, delay: float) -> None:
        self._deadlines.set(self, delay)

    def due(self) -> None:
        """The deadline set last passed (told by :class:`Deadlines`)."""
        if self.state is AskState.SENT:
            self._end(ListenerTimeout(f"the listener's node did not answer within {ASK_TIMEOUT:g} s"))
            return
        left = self._deadline - self._loop.time()
        if left <= 0:
            self._end(ListenerTimeout(f"the listener did not answer within {self.ask.timeout:g} s"))
        elif self._known and not self._alive(self._node):
            self._end(ListenerGone(f"the listener's node {self._node} went away"))
        else:
            self._arm(min(left, WATCH_EVERY))

    # -- the end ---------------------------------------------------------------------

    def _end(self, outcome: Outcome) -> None:
        self.state = AskState.DONE
        self._stop()
        self._done(outcome)

    def _stop(self) -> None:
        self._deadlines.clear(self)
        self._hang_up()

    def _hang_up(self) -> None:
        if self._token:
            self._link.hang_up(self._token)
            self._token = ""
        if self._number:
            if self._direct is not None:
                self._direct.hang_up(self._number)
            self._number = 0
