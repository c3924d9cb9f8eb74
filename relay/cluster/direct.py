"""Direct links: asks go straight to a node holding listeners, not through NATS.

A cross-node call over NATS crosses nats-server twice (ask, answer): two more
processes to wake and about 200 us of their CPU per call (bench S7,
``bench/results/issue12-speed.md``).  The asking node may instead send the same
:class:`~relay.cluster.messages.Ask` over a persistent TCP connection to a node
its peer table says holds listeners for the entity, and hear the
:class:`~relay.cluster.messages.Answer` on it.  NATS stays the routing authority
and the fallback: a node that no longer holds a listener answers "no listener" and
the ask goes over NATS as before; no open link to the chosen node, and the ask
goes over NATS while one is made.

The handshake, on the node's own HTTP port (``node_url``)::

    GET /$cluster/link HTTP/1.1          Upgrade: tcp, Connection: Upgrade
    Soaprelay-Link: 1                    the link's version
    Soaprelay-Ticket: <the asked node's ticket>
    Soaprelay-Node: <the asking node's name>
    --> 101 (then frames), 401 (no ticket), 403 (a wrong one), 503 (too many links)

A ticket is a per-boot random secret that a node tells only in its heartbeats on
NATS: whoever presents it reads the namespace's NATS subjects, the trust a
cluster already rests on.  It is never logged, nor shown in health, the console
or the discovery feed.  Then each frame is ``length:u32 number:u32 payload``: an
ask (asking to asked node) or an answer to ask ``number`` (asked to asking node;
several for one ask: "posted", then the reply), at most :data:`MAX_FRAME` bytes.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import random
import secrets
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

from aiohttp import web

from hc.messages import MAX_COMMAND_LENGTH
from relay.cluster.peers import MAX_PEERS, PeerTable
from relay.cluster.seam import LINK_PATH
from relay.exceptions import AccessDenied, AuthError, BadRequest, ShuttingDown, TooManyConnections
from relay.listeners import INLINE_LIMIT

__all__ = ["LINK_PATH", "MAX_FRAME", "DirectLinks", "FrameError", "Frames", "InboundLink", "PeerLink",
           "frame"]

log = logging.getLogger("relay.cluster")
_VERSION = "1"
_VERSION_HEADER = "Soaprelay-Link"
_TICKET_HEADER = "Soaprelay-Ticket"
_NODE_HEADER = "Soaprelay-Node"
_FRAME = struct.Struct("!II")
#: Most bytes of one frame's payload: an inline body, its command, and the texts around.
MAX_FRAME = INLINE_LIMIT + MAX_COMMAND_LENGTH + 8 * 1024
#: Bytes a link may hold unsent before it counts as stuck: an outbound one is passed
#: over (asks go over NATS), an inbound one is closed (its peer stopped reading).
MAX_UNSENT = 16 * 1024 * 1024
#: Most links other nodes may hold open to this one (one per node, give or take restarts).
MAX_INBOUND = MAX_PEERS
#: Seconds a link may take to connect and be answered ``101``.
CONNECT_TIMEOUT = 2.0
#: Seconds after a failed or lost link before that node is tried again.
RETRY_AFTER = 1.0
#: Seconds between log lines about links that failed.
_LOG_EVERY = 10.0
_MAX_HEAD = 4096
_HEAD_END = b"\r\n\r\n"
#: Told each answer of an ask (its payload), or None once the link is lost.
Heard = Callable[[bytes | None], None]


class FrameError(ValueError):
    """A frame over :data:`MAX_FRAME`: the link goes."""


def frame(number: int, payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), number) + payload


class Frames:
    """Split a byte stream into ``(number, payload)`` frames (sans-I/O), holding at
    most one incomplete frame."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if not self._buffer and len(data) >= _FRAME.size:  # the common case: whole frames
            size, number = _FRAME.unpack_from(data)
            if len(data) == _FRAME.size + size and size <= MAX_FRAME:
                return [(number, data[_FRAME.size:])]
        buffer = self._buffer
        buffer += data
        frames: list[tuple[int, bytes]] = []
        start = 0
        while len(buffer) - start >= _FRAME.size:
            size, number = _FRAME.unpack_from(buffer, start)
            if size > MAX_FRAME:
                raise FrameError(f"a frame of {size} bytes (at most {MAX_FRAME})")
            end = start + _FRAME.size + size
            if end > len(buffer):
                break
            frames.append((number, bytes(buffer[start + _FRAME.size:end])))
            start = end
        del buffer[:start]
        return frames


class PeerLink(asyncio.Protocol):
    """This node's link to another node (it asks, the other answers)."""

    def __init__(self, links: DirectLinks, node: str, url: str, ticket: str) -> None:
        self.links, self.node, self.url, self.ticket = links, node, url, ticket
        self.open = False
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._frames = Frames()
        self._waiting: dict[int, Heard] = {}
        self._numbers = itertools.count(1)
        #: Ends a handshake that takes too long.
        self.timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<PeerLink to {self.node}{' open' if self.open else ''}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        parts = urlsplit(self.url)
        head = (f"GET {LINK_PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: Upgrade\r\n"
                f"Upgrade: tcp\r\n{_VERSION_HEADER}: {_VERSION}\r\n{_TICKET_HEADER}: {self.ticket}\r\n"
                f"{_NODE_HEADER}: {self.links.name}\r\n\r\n")
        self._transport.write(head.encode())

    def data_received(self, data: bytes) -> None:
        if not self.open:
            rest = self._handshake(data)
            if not rest:
                return
            data = rest
        try:
            frames = self._frames.feed(data)
        except FrameError as exc:
            self.links.failed(self.node, f"it broke the link's protocol: {exc}")
            self.close()
            return
        waiting = self._waiting
        for number, payload in frames:
            heard = waiting.get(number)
            if heard is not None:
                heard(payload)

    def _handshake(self, data: bytes) -> bytes:
        """The bytes after the ``101`` (once it is in), else b""."""
        self._head += data
        end = self._head.find(_HEAD_END)
        if end < 0:
            if len(self._head) > _MAX_HEAD:
                self.links.failed(self.node, "its answer's head is too long")
                self.close()
            return b""
        status = bytes(self._head[:end]).split(b"\r\n", 1)[0].decode("latin-1")
        rest = bytes(self._head[end + 4:])
        self._head = bytearray()
        if not status.startswith("HTTP/1.1 101 "):
            self.links.failed(self.node, f"it refused the link: {status[9:60]!r}")
            self.close()
            return b""
        self.open = True
        self.links.opened(self)
        return rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        waiting, self._waiting = self._waiting, {}
        self.links.lost(self)
        for heard in waiting.values():  # each ends its ask: the node went away
            heard(None)

    def ask(self, payload: bytes, heard: Heard) -> int:
        """Send an ask; ``heard`` hears its answers until :meth:`hang_up` (the number)."""
        number = next(self._numbers) % 0xFFFFFFFF + 1  # never 0: "none" to an ask
        self._waiting[number] = heard
        self.links.sent += 1
        assert self._transport is not None
        self._transport.write(frame(number, payload))
        return number

    def hang_up(self, number: int) -> None:
        self._waiting.pop(number, None)

    @property
    def usable(self) -> bool:
        """Open, and the other node reads what is sent (under MAX_UNSENT waits)."""
        transport = self._transport
        return self.open and transport is not None and transport.get_write_buffer_size() <= MAX_UNSENT

    def fell_back(self) -> None:
        """An ask on this link was answered "no listener" and goes over NATS."""
        self.links.fell_back += 1

    def close(self) -> None:
        """Drop the link now (unsent asks too: they fail with it, ``connection_lost``)."""
        if self._transport is not None:
            self._transport.abort()


class InboundLink:
    """Another node's link to this one, after the ``101``: aiohttp's connection hands
    every chunk to :meth:`feed_data` (its ``set_parser`` hook, as ``relay.wire``)."""

    __slots__ = ("_frames", "_serve", "_transport", "ended", "node")

    def __init__(self, transport: asyncio.BaseTransport, node: str,
                 serve: Callable[[InboundLink, int, bytes], None]) -> None:
        self._transport: Any = transport  # a WriteTransport
        self.node, self._serve = node, serve
        self._frames = Frames()
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        try:
            frames = self._frames.feed(data)
        except FrameError as exc:
            log.warning("cluster: the link from %s broke the protocol: %s", self.node, exc)
            self.close()
            return False, b""
        for number, payload in frames:
            self._serve(self, number, payload)
        return False, b""

    def feed_eof(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)

    def answer(self, number: int, payload: bytes) -> None:
        """Answer ask ``number`` (dropped quietly if the link went meanwhile); a link
        whose other node stopped reading is closed once MAX_UNSENT bytes wait."""
        transport = self._transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_UNSENT:
            log.warning("cluster: the link from %s reads no answers; dropped", self.node)
            transport.abort()  # close() would wait to write what it does not read
            self.feed_eof()
            return
        transport.write(frame(number, payload))

    def close(self) -> None:
        self._transport.close()
        self.feed_eof()


class DirectLinks:
    """This node's links: to the nodes it asks (made on first need) and from those
    that ask it (accepted on :data:`LINK_PATH`)."""

    def __init__(self, name: str, peers: PeerTable, rng: random.Random) -> None:
        self.name, self._peers, self._rng = name, peers, rng
        #: This node's ticket: told only in its heartbeats (repr'd nowhere).
        self.ticket = secrets.token_urlsafe(24)
        self.loop = asyncio.get_running_loop()
        self._out: dict[str, PeerLink] = {}
        self._retry: dict[str, float] = {}
        self._opening: set[asyncio.Future[None]] = set()
        self.inbound: set[InboundLink] = set()
        #: Asks sent over links, and those answered "no listener" there (sent on over NATS).
        self.sent, self.fell_back = 0, 0
        self._failures, self._logged = 0, -_LOG_EVERY
        self._closed = False

    # -- asking ------------------------------------------------------------------------

    def choose(self, path: str) -> PeerLink | None:
        """An open link to a node holding listeners on ``path`` (at random, weighted by
        their counts), or None: ask over NATS (a link to the node chosen is made)."""
        peer = self._peers.pick(path, self._rng)
        if peer is None or not peer.ticket:
            return None
        link = self._out.get(peer.name)
        if link is not None and (link.url != peer.url or link.ticket != peer.ticket):
            link.close()  # restarted or moved: a new link
            link = None
        if link is None:
            self._connect(peer.name, peer.url, peer.ticket)
            return None
        return link if link.usable else None

    def _connect(self, node: str, url: str, ticket: str) -> None:
        if self._closed or self.loop.time() < self._retry.get(node, 0.0):
            return
        link = self._out[node] = PeerLink(self, node, url, ticket)
        task = asyncio.ensure_future(self._open(link))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _open(self, link: PeerLink) -> None:
        """Connect ``link`` to its node's URL (as its heartbeat told it: checked here)."""
        try:
            parts = urlsplit(link.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{link.url[:128]!r} is not an http(s) URL")
            context = ssl.create_default_context() if parts.scheme == "https" else None
            port = parts.port or (443 if context else 80)
            await asyncio.wait_for(
                self.loop.create_connection(lambda: link, parts.hostname, port, ssl=context),
                CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:  # ssl.SSLError is an OSError
            self.failed(link.node, f"cannot connect: {exc or 'timeout'}")
            self.lost(link)
            return
        link.timer = self.loop.call_later(CONNECT_TIMEOUT, self._too_slow, link)

    def _too_slow(self, link: PeerLink) -> None:
        if not link.open:
            self.failed(link.node, f"no answer to the handshake within {CONNECT_TIMEOUT:g} s")
            link.close()

    def opened(self, link: PeerLink) -> None:
        if link.timer is not None:
            link.timer.cancel()
        log.info("cluster: direct link to %s open", link.node)

    def lost(self, link: PeerLink) -> None:
        if link.timer is not None:
            link.timer.cancel()
        if self._out.get(link.node) is link:
            del self._out[link.node]
            self._retry[link.node] = self.loop.time() + RETRY_AFTER

    def failed(self, node: str, why: str) -> None:
        """A link that could not be made or broke: one INFO line per _LOG_EVERY s."""
        self._failures += 1
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY:
            log.info("cluster: no direct link to %s: %s (%d failures so far); asking over NATS",
                     node, why, self._failures)
            self._logged = now

    def prune(self) -> None:
        """Close the links to nodes the table no longer names (dead, gone, or past
        MAX_PEERS): their asks in flight fail at once."""
        known = {peer.name for peer in self._peers}
        for node in [n for n in self._out if n not in known]:
            self._out[node].close()
        for node in [n for n in self._retry if n not in known]:
            del self._retry[node]

    def open_links(self) -> list[str]:
        return sorted(name for name, link in self._out.items() if link.open)

    # -- being asked -------------------------------------------------------------------

    async def accept(self, request: web.BaseRequest,
                     serve: Callable[[InboundLink, int, bytes], None]) -> web.StreamResponse:
        """Serve another node's link on ``request`` until it ends; refuse a wrong ticket."""
        headers = request.headers
        if headers.get(_VERSION_HEADER) != _VERSION or headers.get("Upgrade", "").lower() != "tcp":
            raise BadRequest(f"not a cluster link handshake (version {_VERSION}, Upgrade: tcp)")
        ticket = headers.get(_TICKET_HEADER)
        if not ticket:
            raise AuthError("a cluster link needs this node's ticket")
        if not hmac.compare_digest(ticket.encode(), self.ticket.encode()):
            raise AccessDenied("this node's ticket was not presented")
        if self._closed:
            raise ShuttingDown("this node is stopping")
        if len(self.inbound) >= MAX_INBOUND:
            raise TooManyConnections(f"this node holds {len(self.inbound)} cluster links already")
        transport = request.transport
        assert transport is not None
        response = web.StreamResponse(status=101, headers={
            "Upgrade": "tcp", "Connection": "Upgrade", _VERSION_HEADER: _VERSION})
        await response.prepare(request)
        node = headers.get(_NODE_HEADER, "?")[:64]
        inbound = InboundLink(transport, node, serve)
        http = request.protocol
        http.set_parser(inbound)  # type: ignore[arg-type]
        http.keep_alive(False)
        if transport.is_closing():
            inbound.feed_eof()
        self.inbound.add(inbound)
        try:
            await asyncio.shield(inbound.ended)
        finally:
            self.inbound.discard(inbound)
            transport.close()
        return response

    def close(self) -> None:
        self._closed = True
        for link in list(self._out.values()):
            link.close()
        for inbound in list(self.inbound):
            inbound.close()
