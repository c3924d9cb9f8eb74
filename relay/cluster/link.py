"""The node's NATS connection: connect, stay connected, say when it is not.

The only module that imports ``nats`` (nats-py).  It reconnects by itself
(forever, every half second) and re-subscribes what was subscribed; while it is
down the node is *degraded* (:class:`LinkState`): asks fail at once with
:class:`LinkDown` instead of waiting, and the node serves the pairs whose
listener and sender are both on it.  Credentials in the URLs, or a creds file,
are handed to nats-py and never logged: every line here names the servers by
:meth:`ClusterConfig.redacted`, and error texts are scrubbed the same way.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from relay.cluster.config import ClusterConfig

__all__ = ["Conversation", "Link", "LinkDown", "LinkState", "Msg", "NoResponders", "Subscription"]

log = logging.getLogger("relay.cluster")
#: Seconds between connection attempts while NATS is unreachable.
RETRY_EVERY = 0.5
#: Seconds between log lines about NATS errors (a reconnect fails every RETRY_EVERY).
ERROR_LOG_EVERY = 10.0
_USERINFO = re.compile(r"//[^/@\s]*@")
_NO_RESPONDERS = "503"
#: Answers a conversation keeps (it expects two: "posted", then the reply).
_MAX_ANSWERS = 4
Handler = Callable[[Msg], Awaitable[None]]


class LinkState(enum.Enum):
    """CONNECTING --> CONNECTED <--> DEGRADED; any --close()--> CLOSED."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    CLOSED = "closed"


class LinkDown(Exception):
    """NATS is unreachable right now: the cluster cannot be asked."""


class NoResponders(Exception):
    """Nobody subscribes to the subject: no node has a listener there."""


def scrub(text: object) -> str:
    """``text`` without any ``//user:password@`` in it."""
    return _USERINFO.sub("//***@", str(text))


class Conversation:
    """The answers to one :meth:`Link.converse`; :meth:`close` when done with it."""

    def __init__(self, answers: asyncio.Queue[Msg], close: Callable[[], object]) -> None:
        self._answers, self.close = answers, close

    async def next(self, timeout: float) -> bytes:
        """The next answer; NoResponders when nobody was there, TimeoutError after ``timeout``."""
        msg = await asyncio.wait_for(self._answers.get(), timeout)
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS and not msg.data:
            raise NoResponders("no responders")
        return msg.data


class Link:
    """One NATS connection for one node; ``on_change(state)`` hears every state change."""

    def __init__(self, config: ClusterConfig, on_change: Callable[[LinkState], None]) -> None:
        self.config = config
        self.state = LinkState.CONNECTING
        self._on_change = on_change
        self._client: Client | None = None
        self._starting: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._mux: str | None = None  # the inbox prefix of conversations' answers
        self._waiting: dict[str, asyncio.Queue[Msg]] = {}
        self._tokens = itertools.count(1)
        self._errors, self._error_logged = 0, -ERROR_LOG_EVERY

    # -- life --------------------------------------------------------------------------

    async def start(self, wait: float = 2.0) -> None:
        """Connect, waiting at most ``wait`` seconds; after that keep trying in the
        background while the node runs degraded."""
        self._starting = asyncio.ensure_future(self._connect_until_up())
        try:
            await asyncio.wait_for(asyncio.shield(self.connected.wait()), wait)
        except TimeoutError:
            log.warning("cluster: NATS at %s unreachable; serving this node's own pairs "
                        "until it is", self.config.redacted())
            self._set(LinkState.DEGRADED)

    async def _connect_until_up(self) -> None:
        while self.state is not LinkState.CLOSED:
            client = Client()
            try:
                await client.connect(**self._options())
            except (OSError, NatsError, TimeoutError) as exc:
                log.debug("cluster: connecting to NATS failed: %s", scrub(exc))
                await asyncio.sleep(RETRY_EVERY)
                continue
            self._client = client
            self._up()
            return

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "servers": list(self.config.nats), "name": f"soaprelay {self.config.name}",
            "allow_reconnect": True, "max_reconnect_attempts": -1,
            "reconnect_time_wait": RETRY_EVERY, "connect_timeout": 2,
            "ping_interval": 2, "max_outstanding_pings": 2, "no_echo": True,
            "error_cb": self._error, "disconnected_cb": self._disconnected,
            "reconnected_cb": self._reconnected,
        }
        if self.config.creds_file:
            options["user_credentials"] = self.config.creds_file
        return options

    async def close(self) -> None:
        self._set(LinkState.CLOSED)
        if self._starting is not None:
            self._starting.cancel()
        if self._client is not None and not self._client.is_closed:
            try:  # close, not drain: a drain while NATS is down leaves a failed future behind
                await asyncio.wait_for(self._client.close(), 2.0)
            except (NatsError, TimeoutError, OSError) as exc:
                log.info("cluster: closing the NATS connection: %s", scrub(exc))

    def _set(self, state: LinkState) -> None:
        if state is not self.state:
            self.state = state
            self._on_change(state)

    def _up(self) -> None:
        log.info("cluster: connected to NATS at %s as node %s",
                 self.config.redacted(), self.config.name)
        self.connected.set()
        self._set(LinkState.CONNECTED)

    async def _error(self, exc: Exception) -> None:
        """nats-py's errors (each failed reconnect is one): one line per ERROR_LOG_EVERY s."""
        self._errors += 1
        now = time.monotonic()
        if now - self._error_logged >= ERROR_LOG_EVERY:
            log.info("cluster: NATS: %s (%d errors so far)", scrub(exc) or type(exc).__name__,
                     self._errors)
            self._error_logged = now

    async def _disconnected(self) -> None:
        if self.state is LinkState.CONNECTED:  # nats-py says so again on each failed retry
            log.warning("cluster: lost NATS; degraded: serving this node's own pairs only")
            self.connected.clear()
            self._set(LinkState.DEGRADED)

    async def _reconnected(self) -> None:
        log.info("cluster: NATS back; rejoined the cluster")
        self._up()

    # -- messages ----------------------------------------------------------------------

    def _ready(self) -> Client:
        client = self._client
        if client is None or self.state is not LinkState.CONNECTED or not client.is_connected:
            raise LinkDown("the cluster's NATS is unreachable")
        return client

    async def subscribe(self, subject: str, handler: Handler, queue: str = "") -> Subscription | None:
        """Subscribe (None while never connected: the caller subscribes again on connect)."""
        if self._client is None:
            return None
        return await self._client.subscribe(subject, queue=queue, cb=handler)

    async def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        await self._ready().publish(subject, payload, reply=reply)

    async def request(self, subject: str, payload: bytes, timeout: float) -> bytes:
        """One answer from one subscriber; NoResponders at once when there is none."""
        try:
            msg = await self._ready().request(subject, payload, timeout=timeout)
        except NoRespondersError as exc:
            raise NoResponders(subject) from exc
        except NatsTimeout as exc:
            raise TimeoutError(f"no answer on the cluster within {timeout:g} s") from exc
        return msg.data

    async def converse(self, subject: str, payload: bytes) -> Conversation:
        """Ask one subscriber (queue group) and hear each of its answers, in order:
        a request answered in two steps ("posted", then the listener's reply)."""
        client = self._ready()
        if self._mux is None:
            self._mux = client.new_inbox()
            await client.subscribe(f"{self._mux}.*", cb=self._on_mux)
        token = f"{next(self._tokens)}"
        answers: asyncio.Queue[Msg] = asyncio.Queue(maxsize=_MAX_ANSWERS)
        self._waiting[token] = answers
        try:
            await client.publish(subject, payload, reply=f"{self._mux}.{token}")
        except BaseException:
            self._waiting.pop(token, None)
            raise
        return Conversation(answers, lambda: self._waiting.pop(token, None))

    async def _on_mux(self, msg: Msg) -> None:
        answers = self._waiting.get(msg.subject.rsplit(".", 1)[1])
        if answers is not None and not answers.full():
            answers.put_nowait(msg)

    async def gather(self, subject: str, payload: bytes, timeout: float,
                     done: Callable[[list[bytes]], bool]) -> list[bytes]:
        """Scatter ``payload`` to every subscriber; the answers until ``done(answers)``
        or ``timeout`` seconds."""
        client = self._ready()
        inbox = client.new_inbox()
        answers: list[bytes] = []
        complete = asyncio.Event()

        async def heard(msg: Msg) -> None:
            answers.append(msg.data)
            if done(answers):
                complete.set()

        sub = await client.subscribe(inbox, cb=heard)
        try:
            await client.publish(subject, payload, reply=inbox)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not done(answers):  # asked again now and then: a node may have died
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(complete.wait(), min(left, 0.25))
                except TimeoutError:
                    continue
            return list(answers)
        finally:
            await sub.unsubscribe()

    async def answer(self, msg: Msg, payload: bytes) -> None:
        """Answer ``msg`` (dropped quietly if NATS went away meanwhile)."""
        if msg.reply:
            try:
                await self._ready().publish(msg.reply, payload)
            except (LinkDown, NatsError, OSError) as exc:
                log.info("cluster: an answer was lost: %s", scrub(exc))
