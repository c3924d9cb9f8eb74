"""The cluster's own NATS connection: an ``asyncio.Protocol`` with no task per message.

Why not nats-py: it hands every message received to a task awaiting a queue (one
per subscription) and every publish to a flusher task, a loop turn each; on the
cross-node call's path that cost more than the call itself (bench S7,
bench/results/issue12-speed.md).  Here ``data_received`` parses
(``relay.cluster.natswire``) and calls each subscription's callback at once, and
:meth:`NatsClient.publish` is one ``transport.write``.

Life (:class:`ClientState`)::

    CONNECTING --handshake done--> CONNECTED --connection lost / stale--> CONNECTING
    any --close()--> CLOSED

While CONNECTING a task tries the servers in turn (every :data:`RETRY_EVERY` seconds
round the list); on each connect it sends CONNECT (credentials from the URL or the
creds file: a token, a user and password, a JWT and the nonce's signature), PING,
waits for PONG (an ``-ERR`` there is refused credentials), then subscribes again
everything subscribed.  ``tls://`` URLs (or a server that requires TLS) upgrade with
asyncio's ssl after the INFO.  A PING every ``ping_interval`` seconds; ``max_pings``
unanswered and the connection is given up.  Bounds: what the parser holds
(``max_payload`` plus header room, else the connection goes) and what waits to be
sent (:data:`MAX_PENDING`: publish refuses beyond it).  Credentials are never
logged: servers are named ``host:port``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import ssl
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from relay.cluster import natswire as wire
from relay.cluster.nkeys import CredsError, parse_creds, sign

__all__ = ["MAX_PENDING", "RETRY_EVERY", "ClientState", "NatsClient", "NotConnected", "Refused"]

log = logging.getLogger("relay.cluster")
#: Seconds between rounds of connection attempts while no server answers.
RETRY_EVERY = 0.5
#: Bytes that may wait in the transport to be sent; publish refuses beyond.
MAX_PENDING = 8 * 1024 * 1024
#: Seconds between WARNING lines about a server breaking the protocol.
WARN_EVERY = 10.0
_VERSION = "1"
Callback = Callable[[wire.Msg], None]


class ClientState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class NotConnected(Exception):
    """No NATS server is connected right now (or the message cannot go).

    Not a ``ConnectionError``: mypyc compiles this module, and a compiled class may
    extend ``Exception`` but not ``OSError``'s family."""


class Refused(Exception):
    """The server refused the connection (credentials, most likely)."""


class _Server:
    """One server URL, parsed once; ``str()`` has no credentials."""

    __slots__ = ("host", "password", "port", "tls", "user")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 4222
        self.tls = parts.scheme == "tls"
        self.user = unquote(parts.username) if parts.username else ""
        self.password = unquote(parts.password) if parts.password is not None else None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class _Sub:
    __slots__ = ("callback", "queue", "subject")

    def __init__(self, subject: str, queue: str, callback: Callback) -> None:
        self.subject, self.queue, self.callback = subject, queue, callback


class _Wire(asyncio.Protocol):
    """One TCP (or TLS) connection to one server: bytes to events, events to the client."""

    def __init__(self, client: NatsClient) -> None:
        self.client = client
        self.parser = wire.Parser()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.info: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.pings = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            events = self.parser.feed(data)
        except wire.WireError as exc:
            self.client.broken(exc)
            self.abort()
            return
        client = self.client
        for event in events:
            if isinstance(event, wire.Msg):
                client.deliver(event)
            elif event is wire.PING:
                self.write(wire.pong())
            elif event is wire.PONG:
                self.pings = 0
                if not self.ready.done():
                    self.ready.set_result(None)
            elif isinstance(event, wire.Info):
                self._info(event.fields)
            elif isinstance(event, wire.Err):
                self._err(event.text)
            elif isinstance(event, wire.Malformed):
                client.malformed(event)

    def _info(self, fields: dict[str, Any]) -> None:
        size = fields.get("max_payload")
        if isinstance(size, int) and 0 < size <= 64 * 1024 * 1024:
            self.parser.max_payload = size
        if not self.info.done():
            self.info.set_result(fields)

    def _err(self, text: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(Refused(text))
        else:
            log.info("cluster: NATS said: %s", text[:200])

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        for waiter in (self.info, self.ready):
            if not waiter.done():
                waiter.set_exception(NotConnected(str(exc or "connection closed")))
                waiter.exception()  # raised to the handshake if it waits; never logged
        if not self.lost.done():
            self.lost.set_result(None)
        self.client.lost(self)


class NatsClient:
    """A NATS connection that stays up; see the module's docstring.

    ``on_state(state)`` hears every change of :attr:`state`; ``on_error(text)`` each
    failed connection attempt (already free of credentials).
    """

    def __init__(
        self, servers: list[str] | tuple[str, ...], *, name: str = "",
        creds_file: str | None = None, on_state: Callable[[ClientState], None] = lambda s: None,
        on_error: Callable[[str], None] = lambda text: None,
        on_malformed: Callable[[str, str], None] = lambda subject, why: None,
        ping_interval: float = 2.0, max_pings: int = 2, connect_timeout: float = 2.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._servers = [_Server(url) for url in servers]
        self._name, self._creds_file = name, creds_file
        self._on_state, self._on_error, self._on_malformed = on_state, on_error, on_malformed
        self._ping_interval, self._max_pings, self._timeout = ping_interval, max_pings, connect_timeout
        self._tls = tls
        self.state = ClientState.CONNECTING
        self._wire: _Wire | None = None
        self._subs: dict[int, _Sub] = {}
        self._sids = 0
        self._next = 0  # the server to try next
        self._runner: asyncio.Task[None] | None = None
        self._pinger: asyncio.TimerHandle | None = None
        self.max_payload = wire.DEFAULT_MAX_PAYLOAD
        self.server = ""  # the server connected now (host:port)
        self._warned = -WARN_EVERY

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background, and again whenever the connection is lost."""
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())

    @property
    def is_connected(self) -> bool:
        return self.state is ClientState.CONNECTED

    async def close(self) -> None:
        self._set(ClientState.CLOSED)
        if self._pinger is not None:
            self._pinger.cancel()
        if self._runner is not None:
            self._runner.cancel()
        if self._wire is not None and self._wire.transport is not None:
            self._wire.transport.close()

    def _set(self, state: ClientState) -> None:
        if state is not self.state and self.state is not ClientState.CLOSED:
            self.state = state
            self._on_state(state)

    async def _run(self) -> None:
        while self.state is not ClientState.CLOSED:
            for _ in range(len(self._servers)):  # a round: each server once
                server = self._servers[self._next]
                self._next = (self._next + 1) % len(self._servers)
                try:
                    conn = await asyncio.wait_for(self._connect(server), self._timeout)
                except (OSError, TimeoutError, NotConnected, Refused, CredsError, ssl.SSLError) as exc:
                    self._on_error(f"{server}: {type(exc).__name__}: {exc}")
                    continue
                self._up(conn, server)
                await asyncio.shield(conn.lost)
                if self.state is ClientState.CLOSED:
                    return
                self._set(ClientState.CONNECTING)  # the next server at once
            await asyncio.sleep(RETRY_EVERY)

    async def _connect(self, server: _Server) -> _Wire:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Wire(self), server.host, server.port)
        try:
            info = await conn.info
            if server.tls or info.get("tls_required"):
                context = self._tls or ssl.create_default_context()
                assert conn.transport is not None
                upgraded = await loop.start_tls(conn.transport, conn, context, server_hostname=server.host)
                if upgraded is None:  # pragma: no cover - only for a closed transport
                    raise NotConnected("the TLS upgrade found the connection closed")
                conn.transport = upgraded  # type: ignore[assignment]
            conn.write(wire.connect(self._connect_options(server, info)) + wire.ping())
            await conn.ready
        except BaseException:
            conn.abort()
            raise
        return conn

    def _connect_options(self, server: _Server, info: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            "verbose": False, "pedantic": False, "lang": "python3", "version": _VERSION,
            "protocol": 1, "headers": True, "no_responders": True, "echo": False,
            "name": self._name,
        }
        if server.password is not None:
            options["user"], options["pass"] = server.user, server.password
        elif server.user:
            options["auth_token"] = server.user
        if self._creds_file:
            with open(self._creds_file, encoding="utf-8") as file:
                creds = parse_creds(file.read())
            options["jwt"] = creds.jwt
            nonce = info.get("nonce")
            if isinstance(nonce, str):
                options["sig"] = sign(creds.seed, nonce)
        return options

    def _up(self, conn: _Wire, server: _Server) -> None:
        self._wire, self.server = conn, str(server)
        self.max_payload = conn.parser.max_payload
        again = b"".join(wire.sub(s.subject, sid, s.queue) for sid, s in self._subs.items())
        if again:
            conn.write(again)
        self._set(ClientState.CONNECTED)
        self._arm_ping()

    def _arm_ping(self) -> None:
        self._pinger = asyncio.get_running_loop().call_later(self._ping_interval, self._ping)

    def _ping(self) -> None:
        conn = self._wire
        if conn is None or self.state is not ClientState.CONNECTED:
            return
        if conn.pings >= self._max_pings:
            log.info("cluster: NATS at %s stopped answering PINGs; reconnecting", self.server)
            conn.abort()
            return
        conn.pings += 1
        conn.write(wire.ping())
        self._arm_ping()

    def lost(self, conn: _Wire) -> None:
        """``conn`` closed (the run task connects again)."""
        if conn is self._wire:
            self._wire = None
            if self._pinger is not None:
                self._pinger.cancel()

    # -- messages ----------------------------------------------------------------------

    def deliver(self, msg: wire.Msg) -> None:
        sub = self._subs.get(msg.sid)
        if sub is None:
            return  # unsubscribed meanwhile
        try:
            sub.callback(msg)
        except Exception:  # a bug of ours, not the server's: say so, keep the connection
            log.exception("cluster: a NATS message's handler failed")

    def broken(self, exc: wire.WireError) -> None:
        """The server broke the protocol: one WARNING per :data:`WARN_EVERY` seconds."""
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("cluster: NATS at %s broke the protocol: %s; reconnecting", self.server, exc)

    def malformed(self, event: wire.Malformed) -> None:
        self._on_malformed(event.subject, event.why)

    def new_inbox(self) -> str:
        return f"_INBOX.{secrets.token_urlsafe(12).replace('-', 'A').replace('_', 'B')}"

    def subscribe(self, subject: str, callback: Callback, queue: str = "") -> int:
        """Subscribe now (or at the next connect); the subscription's id."""
        line = wire.sub(subject, self._sids + 1, queue)  # ValueError first, for a bad subject
        self._sids += 1
        self._subs[self._sids] = _Sub(subject, queue, callback)
        if self._wire is not None and self.state is ClientState.CONNECTED:
            self._wire.write(line)
        return self._sids

    def unsubscribe(self, sid: int) -> None:
        if self._subs.pop(sid, None) is not None and self._wire is not None:
            self._wire.write(wire.unsub(sid))

    def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        """Send now (NotConnected when no server is connected or too much waits)."""
        conn = self._wire
        if conn is None or self.state is not ClientState.CONNECTED:
            raise NotConnected("no NATS server is connected")
        if len(payload) > self.max_payload:
            raise NotConnected(f"a message of {len(payload)} bytes is over NATS's max_payload")
        transport = conn.transport
        assert transport is not None
        if transport.get_write_buffer_size() > MAX_PENDING:
            raise NotConnected("NATS is not taking what this node sends")
        transport.write(wire.pub(subject, payload, reply))
