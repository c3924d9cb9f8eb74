"""The node's NATS connection: connect, stay connected, say when it is not.

Over the cluster's own client (``relay.cluster.natsclient``): a message's
handler runs from the connection's ``data_received`` and a publish is one
write, so a cross-node call costs no task and no loop turn here.  It
reconnects by itself (forever, every half second round the servers) and
subscribes again what was subscribed; while it is down the node is *degraded*
(:class:`LinkState`): asks fail at once with :class:`LinkDown` instead of
waiting, and the node serves the pairs whose listener and sender are both on it.
Credentials in the URLs, or a creds file, go to the client and are never logged:
every line here names the servers by :meth:`ClusterConfig.redacted`, and error
texts are scrubbed the same way.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import re
import time
from collections.abc import Callable

from relay.cluster.config import ClusterConfig
from relay.cluster.natsclient import ClientState, NatsClient, NotConnected
from relay.cluster.natswire import Msg

__all__ = ["Handler", "Heard", "Link", "LinkDown", "LinkState", "Msg", "Subscription", "no_responders"]

log = logging.getLogger("relay.cluster")
#: Seconds between log lines about NATS errors (a reconnect fails every half second).
ERROR_LOG_EVERY = 10.0
_USERINFO = re.compile(r"//[^/@\s]*@")
_NO_RESPONDERS = "503"
#: Told each message of a subscription, synchronously (from the connection's data_received).
Handler = Callable[[Msg], None]
#: Told each answer to an :meth:`Link.ask`.
Heard = Callable[[Msg], None]


class LinkState(enum.Enum):
    """CONNECTING --> CONNECTED <--> DEGRADED; any --close()--> CLOSED."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    CLOSED = "closed"


class LinkDown(Exception):
    """NATS is unreachable right now: the cluster cannot be asked."""


def scrub(text: object) -> str:
    """``text`` without any ``//user:password@`` in it."""
    return _USERINFO.sub("//***@", str(text))


def no_responders(msg: Msg) -> bool:
    """NATS's own answer when nobody subscribes to the subject asked."""
    headers = msg.headers
    return headers is not None and headers.get("Status") == _NO_RESPONDERS and not msg.data


class Subscription:
    """One subscription of a :class:`Link` (made again on every reconnect)."""

    __slots__ = ("_client", "sid")

    def __init__(self, client: NatsClient, sid: int) -> None:
        self._client, self.sid = client, sid

    def unsubscribe(self) -> None:
        self._client.unsubscribe(self.sid)


class Link:
    """One NATS connection for one node; ``on_change(state)`` hears every state change."""

    def __init__(self, config: ClusterConfig, on_change: Callable[[LinkState], None]) -> None:
        self.config = config
        self.state = LinkState.CONNECTING
        self._on_change = on_change
        self._client = NatsClient(
            config.nats, name=f"soaprelay {config.name}", creds_file=config.creds_file,
            on_state=self._client_changed, on_error=self._error, on_malformed=self._malformed,
        )
        self.connected = asyncio.Event()
        #: The loop the node runs on (made in it).
        self.loop = asyncio.get_running_loop()
        self._mux = ""  # the inbox prefix of the answers to asks
        self._waiting: dict[str, Heard] = {}
        self._tokens = itertools.count(1)
        self._errors, self._error_logged = 0, -ERROR_LOG_EVERY
        self._joined = False

    # -- life --------------------------------------------------------------------------

    async def start(self, wait: float = 2.0) -> None:
        """Connect, waiting at most ``wait`` seconds; after that keep trying in the
        background while the node runs degraded."""
        self._mux = self._client.new_inbox()
        self._client.subscribe(f"{self._mux}.*", self._on_mux)
        self._client.start()
        try:
            await asyncio.wait_for(asyncio.shield(self.connected.wait()), wait)
        except TimeoutError:
            log.warning("cluster: NATS at %s unreachable; serving this node's own pairs "
                        "until it is", self.config.redacted())
            self._set(LinkState.DEGRADED)

    async def close(self) -> None:
        self._set(LinkState.CLOSED)
        await self._client.close()

    def _set(self, state: LinkState) -> None:
        if state is not self.state and self.state is not LinkState.CLOSED:
            self.state = state
            self._on_change(state)

    def _client_changed(self, state: ClientState) -> None:
        if state is ClientState.CONNECTED:
            if self._joined:
                log.info("cluster: NATS back (%s); rejoined the cluster", self._client.server)
            else:
                log.info("cluster: connected to NATS at %s as node %s",
                         self.config.redacted(), self.config.name)
            self._joined = True
            self.connected.set()
            self._set(LinkState.CONNECTED)
        elif state is ClientState.CONNECTING and self.state is LinkState.CONNECTED:
            log.warning("cluster: lost NATS; degraded: serving this node's own pairs only")
            self.connected.clear()
            self._set(LinkState.DEGRADED)

    def _error(self, text: str) -> None:
        """A failed connection attempt (one every half second while NATS is down): one
        line per ERROR_LOG_EVERY s."""
        self._errors += 1
        now = time.monotonic()
        if now - self._error_logged >= ERROR_LOG_EVERY:
            log.info("cluster: NATS: %s (%d errors so far)", scrub(text), self._errors)
            self._error_logged = now

    def _malformed(self, subject: str, why: str) -> None:
        """A message whose NATS headers are malformed: dropped (one line per ERROR_LOG_EVERY s)."""
        self._error(f"dropped a message with malformed headers on {subject[:128]}: {why}")

    # -- messages ----------------------------------------------------------------------

    def _ready(self) -> NatsClient:
        if self.state is not LinkState.CONNECTED or not self._client.is_connected:
            raise LinkDown("the cluster's NATS is unreachable")
        return self._client

    def subscribe(self, subject: str, handler: Handler, queue: str = "") -> Subscription:
        """Subscribe now, or at the next connect (and again after every reconnect)."""
        return Subscription(self._client, self._client.subscribe(subject, handler, queue))

    def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        """Send now; LinkDown if NATS is unreachable or will not take it."""
        try:
            self._ready().publish(subject, payload, reply)
        except NotConnected as exc:
            raise LinkDown(f"the cluster's NATS refused a message: {scrub(exc)}") from exc

    def ask(self, subject: str, payload: bytes, heard: Heard) -> str:
        """Ask one subscriber (queue group) without waiting; ``heard(msg)`` hears each of
        its answers, in order, until :meth:`hang_up` with the returned token."""
        token = f"{next(self._tokens)}"
        self._waiting[token] = heard
        try:
            self.publish(subject, payload, f"{self._mux}.{token}")
        except BaseException:
            self._waiting.pop(token, None)
            raise
        return token

    def hang_up(self, token: str) -> None:
        """Hear no more answers to the ask ``token``."""
        self._waiting.pop(token, None)

    def _on_mux(self, msg: Msg) -> None:
        heard = self._waiting.get(msg.subject.rpartition(".")[2])
        if heard is not None:
            heard(msg)

    def answer_now(self, msg: Msg, payload: bytes) -> None:
        """Answer ``msg`` (dropped quietly if NATS went away meanwhile)."""
        if msg.reply:
            try:
                self.publish(msg.reply, payload)
            except LinkDown as exc:
                log.info("cluster: an answer was lost: %s", exc)

    async def gather(self, subject: str, payload: bytes, timeout: float,
                     take: Callable[[bytes], None], done: Callable[[], bool]) -> None:
        """Scatter ``payload`` to every subscriber; each answer to ``take`` as it comes,
        until ``done()`` or ``timeout`` seconds."""
        client = self._ready()
        inbox = client.new_inbox()
        complete = asyncio.Event()

        def heard(msg: Msg) -> None:
            take(msg.data)
            if done():
                complete.set()

        sub = self.subscribe(inbox, heard)
        try:
            self.publish(subject, payload, inbox)
            deadline = self.loop.time() + timeout
            while not done():  # asked again now and then: a node may have died
                left = deadline - self.loop.time()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(complete.wait(), min(left, 0.25))
                except TimeoutError:
                    continue
        finally:
            sub.unsubscribe()
