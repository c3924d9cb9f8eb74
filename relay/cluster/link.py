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
import functools
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from relay.cluster.config import ClusterConfig

__all__ = ["Heard", "Link", "LinkDown", "LinkState", "Msg", "NoResponders", "Subscription", "no_responders"]

log = logging.getLogger("relay.cluster")
#: Seconds between connection attempts while NATS is unreachable.
RETRY_EVERY = 0.5
#: Seconds between log lines about NATS errors (a reconnect fails every RETRY_EVERY).
ERROR_LOG_EVERY = 10.0
_USERINFO = re.compile(r"//[^/@\s]*@")
_NO_RESPONDERS = "503"
Handler = Callable[[Msg], Awaitable[None]]
#: Told each answer to an :meth:`Link.ask` (synchronously, in nats-py's task).
Heard = Callable[[Msg], None]


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


def no_responders(msg: Msg) -> bool:
    """NATS's own answer when nobody subscribes to the subject asked."""
    headers = msg.headers
    return headers is not None and headers.get("Status") == _NO_RESPONDERS and not msg.data


class _Rest:
    """The rest of a coroutine that suspended at its first step, for a task to await."""

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: object) -> None:
        self._coro, self._waiting = coro, waiting

    def __await__(self) -> Generator[Any, Any, None]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                value = yield waiting
            except BaseException as exc:  # noqa: BLE001 - cancelled: the coroutine hears it
                step = functools.partial(coro.throw, exc)
            else:
                step = functools.partial(coro.send, value)
            try:
                waiting = step()
            except StopIteration:
                return


class Link:
    """One NATS connection for one node; ``on_change(state)`` hears every state change."""

    def __init__(self, config: ClusterConfig, on_change: Callable[[LinkState], None]) -> None:
        self.config = config
        self.state = LinkState.CONNECTING
        self._on_change = on_change
        self._client: Client | None = None
        self._starting: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        #: The loop the node runs on (made in it).
        self.loop = asyncio.get_running_loop()
        self._mux = ""  # the inbox prefix of the answers to asks (subscribed once connected)
        self._waiting: dict[str, Heard] = {}
        self._finishing: set[asyncio.Task[None]] = set()
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
                mux = client.new_inbox()  # nats-py subscribes it again after a reconnect
                await client.subscribe(f"{mux}.*", cb=self._on_mux)
            except (OSError, NatsError, TimeoutError) as exc:
                log.debug("cluster: connecting to NATS failed: %s", scrub(exc))
                await asyncio.sleep(RETRY_EVERY)
                continue
            self._mux, self._client = mux, client
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

    def ask(self, subject: str, payload: bytes, heard: Heard) -> str:
        """Ask one subscriber (queue group) without waiting; ``heard(msg)`` hears each of
        its answers, in order, until :meth:`hang_up` with the returned token."""
        client = self._ready()
        token = f"{next(self._tokens)}"
        self._waiting[token] = heard
        try:
            self._send(client, subject, payload, f"{self._mux}.{token}")
        except BaseException:
            self._waiting.pop(token, None)
            raise
        return token

    def hang_up(self, token: str) -> None:
        """Hear no more answers to the ask ``token``."""
        self._waiting.pop(token, None)

    async def _on_mux(self, msg: Msg) -> None:
        heard = self._waiting.get(msg.subject.rpartition(".")[2])
        if heard is not None:
            heard(msg)

    def answer_now(self, msg: Msg, payload: bytes) -> None:
        """Answer ``msg`` without waiting (dropped quietly if NATS went away meanwhile)."""
        if msg.reply:
            try:
                self._send(self._ready(), msg.reply, payload)
            except LinkDown as exc:
                log.info("cluster: an answer was lost: %s", exc)

    def _send(self, client: Client, subject: str, payload: bytes, reply: str = "") -> None:
        """Publish now, with no task and no loop turn: nats-py's ``publish()`` only queues
        the bytes for its flusher task unless its buffer is over its limit; when it does
        wait, a task finishes it.  Measured: a task per publish costs more CPU per
        cross-node call than the rest of the ask (docs/cluster.md)."""
        coro = client.publish(subject, payload, reply=reply)
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except (NatsError, OSError) as exc:
            raise LinkDown(f"the cluster's NATS refused a message: {scrub(exc)}") from exc
        task = asyncio.ensure_future(self._finish(coro, waiting))
        self._finishing.add(task)
        task.add_done_callback(self._finished)

    async def _finish(self, coro: Coroutine[Any, Any, None], waiting: object) -> None:
        await _Rest(coro, waiting)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._finishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("cluster: a message was lost: %s", scrub(task.exception()))

    async def gather(self, subject: str, payload: bytes, timeout: float,
                     take: Callable[[bytes], None], done: Callable[[], bool]) -> None:
        """Scatter ``payload`` to every subscriber; each answer to ``take`` as it comes,
        until ``done()`` or ``timeout`` seconds."""
        client = self._ready()
        inbox = client.new_inbox()
        complete = asyncio.Event()

        async def heard(msg: Msg) -> None:
            take(msg.data)
            if done():
                complete.set()

        sub = await client.subscribe(inbox, cb=heard)
        try:
            await client.publish(subject, payload, reply=inbox)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not done():  # asked again now and then: a node may have died
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(complete.wait(), min(left, 0.25))
                except TimeoutError:
                    continue
        finally:
            await sub.unsubscribe()

    async def answer(self, msg: Msg, payload: bytes) -> None:
        """Answer ``msg`` (dropped quietly if NATS went away meanwhile)."""
        if msg.reply:
            try:
                await self._ready().publish(msg.reply, payload)
            except (LinkDown, NatsError, OSError) as exc:
                log.info("cluster: an answer was lost: %s", scrub(exc))
