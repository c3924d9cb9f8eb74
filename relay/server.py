"""The relay's aiohttp shell: one port for listeners, senders and the discovery feed.

Routing (PROTOCOL.md §1)::

    /$hc/P?sb-hc-action=listen        listener control channel      -> relay.listen
    /$hc/P?sb-hc-action=connect       WebSocket sender              -> relay.ws_senders
    /$hc/P?sb-hc-action=accept|request one-time rendezvous          -> relay.rendezvous
    GET /                             Atom discovery feed           -> _feed
    anything else                     HTTP sender                   -> relay.http_senders

Decisions live in the pure modules (``hc``, ``relay.access``, ``relay.routing``,
``relay.boundary``); the handlers share one ``relay.state.RelayState``, never the
server.  This module owns the life cycle (sockets, sweeps, start and stop) and
only moves bytes between the pure parts and the sockets.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import signal
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

from relay import access, http_senders, listen, rendezvous, ws_senders
from relay.boundary import ErrorAnswer, error_answer
from relay.client_errors import AiohttpLogger, GuardedHandler
from relay.cluster.config import ClusterConfig
from relay.cluster.seam import LINK_PATH
from relay.compiled import describe_build
from relay.discovery import FeedEntry, render_feed
from relay.drain import GateState
from relay.error_body import new_tracking_id
from relay.exceptions import BadRequest, VersionNotSupported
from relay.front import Front
from relay.jwks import close_keys, prime_keys
from relay.namespace import NamespaceConfig
from relay.observe import admin
from relay.request_head import check_absolute_target, host_name, refusal
from relay.sender_io import AiohttpReply, AiohttpSender
from relay.state import SOAP_TOKEN_SCAN_LIMIT, RelayState

if TYPE_CHECKING:
    from relay.cluster.node import ClusterNode

__all__ = ["HEALTH_PATH", "RelayServer", "run"]


log = logging.getLogger("relay")
_HC_PREFIX = "/$hc/"
#: The health endpoint ("$" is never in an entity path).
HEALTH_PATH = "/$health"
_VERSIONS = frozenset({HttpVersion10, HttpVersion11})


class RelayServer:
    """A running relay for one namespace.

    Args:
        config: the namespace (rules, entities, listen address; port 0 picks a free port).
        clock: wall clock for token expiry (injectable for tests).
        rng: randomness for choosing among listeners.
    """

    def __init__(
        self,
        config: NamespaceConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.config = config
        self._reuse_port = reuse_port  # --workers: several processes on one port
        #: What the handlers read and share (``relay.state``); they never see the server.
        self.state = RelayState.of(config, clock=clock, rng=rng)
        self._runner: web.AppRunner | None = None
        self._front: Front | None = None
        self._listening: asyncio.AbstractServer | None = None
        self._node: ClusterNode | None = None
        self._own_port: asyncio.AbstractServer | None = None  # --workers: this node's rendezvous
        self._liveness: asyncio.TimerHandle | None = None
        self._port: int | None = None
        self._scheme = "https" if config.tls_cert else "http"
        #: The separate admin address (``[admin] port``), while serving.
        self.admin: admin.AdminSite | None = None

    # -- life cycle ----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the relay is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"{self._scheme}://{self.config.host}:{self.port}"

    @property
    def front(self) -> Front | None:
        """The protocol factory of the listening socket and its connections, while serving."""
        return self._front

    @property
    def web_server(self) -> web.Server | None:
        """aiohttp's server, which takes the connections the front hands over, while serving."""
        return self._runner.server if self._runner is not None else None

    async def start(self) -> None:
        """Bind and start serving.

        The listening socket's protocol is ``relay.front``: it serves small HTTP
        sender requests itself and hands every other connection to aiohttp.
        """
        state = self.state
        state.loop = asyncio.get_running_loop()
        prime_keys(state.verifier)  # identity providers' keys: fetched in the background
        app = web.Application(client_max_size=SOAP_TOKEN_SCAN_LIMIT)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_response_prepare.append(_without_default_server)
        # The same limits as the front's: a connection keeps them when it is handed over.
        options: dict[str, Any] = {
            "max_line_size": self.config.max_header_size,
            "max_field_size": self.config.max_header_size,
            "max_headers": self.config.max_headers,
            "keepalive_timeout": self.config.idle_timeout,
            "lingering_time": self.config.body_timeout,
            "logger": AiohttpLogger(logging.getLogger("aiohttp.server"), state.client_errors),
        }
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=5.0, **options
        )
        await self._runner.setup()
        server, loop = self._runner.server, asyncio.get_running_loop()
        assert server is not None
        self._front = Front(
            state, lambda: GuardedHandler(server, loop=loop, access_log=None, **options)
        )
        self._listening = await asyncio.get_running_loop().create_server(
            self._front, self.config.host, self.config.port,
            ssl=self._ssl_context(), backlog=1024, reuse_port=self._reuse_port or None,
        )
        self._port = self._listening.sockets[0].getsockname()[1]
        if self.config.cluster is not None:
            await self._join(self.config.cluster)
        self._schedule_liveness()
        state.observer.start()
        if self.config.observe.admin.port is not None:
            self.admin = admin.AdminSite(state)
            await self.admin.start()
        log.info("relay listening on %s (%s)", self.base_url, describe_build())

    async def _join(self, cluster: ClusterConfig) -> None:
        """Become a node of the cluster (``relay.cluster``); a ``node_url`` with port 0
        gets a port of this process's own (``--workers`` share the public one)."""
        from relay.cluster.node import ClusterNode  # nats-py only when clustered

        if urlsplit(cluster.node_url).port == 0:
            assert self._front is not None
            self._own_port = await asyncio.get_running_loop().create_server(
                self._front, self.config.host, 0, ssl=self._ssl_context(), backlog=1024,
            )
            cluster = cluster.with_port(self._own_port.sockets[0].getsockname()[1])
        self.state.rendezvous_origin = "ws" + cluster.node_url.removeprefix("http")
        self._node = self.state.cluster = ClusterNode(self.state, cluster)
        await self._node.start()

    @property
    def node(self) -> ClusterNode | None:
        """This relay's cluster node, when it is one."""
        return self._node

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: refuse new calls and listeners (503) while the calls in flight
        finish, for at most ``grace`` seconds (default: the config's ``shutdown_grace``),
        then close every joined WebSocket stream (both sides) and every listener with
        1001, and every connection.
        """
        if self.state.calls.state is GateState.OPEN:
            await self._drain(self.config.shutdown_grace if grace is None else grace)
        await self.state.streams.close_all(1001, ws_senders.STOPPING)
        if self._node is not None:
            self._node.drained()
        if self._liveness is not None:
            self._liveness.cancel()
            self._liveness = None
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        await self.state.observer.stop()  # event streams end, webhooks stop
        if self.admin is not None:
            await self.admin.stop()
            self.admin = None
        if self._front is not None:
            self._front.close()  # before aiohttp's shutdown: nothing more is handed to it
        await self._close_listeners()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._front is not None:
            await self._front.finish()
            self._front = None
        await close_keys(self.state.verifier)
        if self._own_port is not None:
            self._own_port.close()
            self._own_port = None
        if self._node is not None:
            await self._node.stop()
            self._node = None

    def _schedule_liveness(self) -> None:
        config = self.config
        every = min(0.5, config.ping_interval / 2, config.pong_timeout / 2)
        self._liveness = asyncio.get_running_loop().call_later(every, self._check_liveness)

    def _check_liveness(self) -> None:
        """Ping quiet listeners and drop the ones that stopped answering (``relay.listeners``)."""
        now = asyncio.get_running_loop().time()
        config = self.config
        for state in self.state.registry:
            for listener in list(state.listeners):
                listener.tick(now, config.ping_interval, config.pong_timeout)
        self._schedule_liveness()

    async def _drain(self, grace: float) -> None:
        # The port stays open meanwhile: a listener may still open the rendezvous of a call
        # in flight.  New calls there are answered 503; idle keep-alive connections close.
        if self._front is not None:
            self._front.stop()
        if self._node is not None:  # other nodes send their new calls elsewhere meanwhile
            self._node.draining()
        calls = self.state.calls
        if calls.in_flight:
            log.info("relay stopping: %d calls in flight, waiting up to %g s",
                     calls.in_flight, grace)
        left = await calls.drain(grace)
        if left:
            log.warning("relay stopping: %d calls cut off after the grace period", left)

    def hurry(self) -> None:
        """Cut a graceful stop short (a second SIGTERM)."""
        self.state.calls.cut_short()

    async def _close_listeners(self) -> None:
        """Close every listener with 1001 and wait for its Close (at most 5 s).  Before
        aiohttp's shutdown: from its start it drops whatever its connections send, the
        listeners' Close too, and each would be waited for until the timeout."""
        closing = [c.close(1001, ws_senders.STOPPING) for s in self.state.registry for c in s.listeners]
        await asyncio.gather(*closing, return_exceptions=True)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    # -- dispatch ------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """aiohttp's handler: whatever ``relay.front`` handed over, and every later
        request on those connections (whose heads the front never saw)."""
        tracking = new_tracking_id()
        if request.version not in _VERSIONS:
            return self._refuse_version(request, tracking)
        reply = AiohttpReply(request)
        try:
            host = _checked_host(request)
            path = request.path
            if path.startswith(_HC_PREFIX):
                return await self._hybrid_connection(request, path[len(_HC_PREFIX) :], tracking)
            if path == "/" and request.method in ("GET", "HEAD"):
                return self._feed(request, host)
            if path.startswith("/$") and admin.is_admin_path(path):
                return await admin.serve(self.state, request)
            if path == HEALTH_PATH and request.method in ("GET", "HEAD"):
                return web.json_response(self.health())
            if path == LINK_PATH and self.state.cluster is not None:
                return await self.state.cluster.serve_link(request)
            sender = AiohttpSender(request, host, self.state.limits)
            await http_senders.relay_http(self.state, sender, reply)
            assert reply.response is not None
            return reply.response
        except web.HTTPException:
            raise  # aiohttp's own answer (a WebSocket handshake it refused)
        except Exception as exc:  # noqa: BLE001 - the one boundary (relay.boundary)
            answer = error_answer(exc, request, self.state, tracking)
            started = reply.response is not None and reply.response.prepared
            if started or request.writer.output_size:  # a streamed head, a 101: out already
                reply.abort()  # the connection ends: what is out must not look complete
            return _error_response(answer)

    def _refuse_version(self, request: web.Request, tracking: str) -> web.Response:
        """505 for HTTP/0.9 or 2.0 on a connection aiohttp parses, written as HTTP/1.1
        (aiohttp would echo the request's version in the status line)."""
        error = VersionNotSupported(f"HTTP/{request.version.major}.{request.version.minor}"
                                    " is not supported (use HTTP/1.1)")
        self.state.client_errors.warning("refused a request from %s: %d %s [tracking %s]",
                                         request.remote, error.status, error, tracking)
        if request.transport is not None:
            request.transport.write(refusal(error, tracking))
            request.transport.close()
        return web.Response(status=error.status)  # not written: the connection is closed

    async def _hybrid_connection(
        self, request: web.Request, raw_path: str, tracking: str
    ) -> web.StreamResponse:
        action = request.query.get("sb-hc-action")
        state = self.state
        if action == "listen":
            state.calls.check()  # a stopping relay takes no new listener...
            return await listen.serve(state, request, raw_path)
        if action == "connect":
            state.calls.check()  # ...nor WebSocket sender (rendezvous: yes, for calls in flight)
            return await ws_senders.connect(state, request, raw_path, tracking)
        if action in ("accept", "request"):
            return await rendezvous.handle(state, request, action)
        raise BadRequest(f"unknown sb-hc-action {action!r}")

    # -- discovery -----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /$health``: ``status`` "ok", or "degraded" while a node lost its cluster."""
        node = self.state.cluster
        if node is None:
            return {"status": "ok"}
        view = node.health()
        return {"status": "ok" if view.get("cluster") == "connected" else "degraded", **view}

    def _feed(self, request: web.Request, host: str) -> web.Response:
        configs = access.feed(self.state.registry)
        if self.state.cluster is not None:  # the other nodes' public entities too
            here = {c.path for c in configs}
            configs += [c for c in self.state.cluster.feed() if c.path not in here]
        entries = [FeedEntry(c.path, c.kind) for c in configs]
        base = f"{request.scheme}://{host or self.config.host}"  # "": HTTP/1.0 without Host
        body = render_feed(
            entries, namespace=self.config.name, base_url=base, updated=datetime.now(UTC)
        )
        return web.Response(body=body, content_type="application/atom+xml", charset="utf-8")


async def _without_default_server(request: web.Request, response: web.StreamResponse) -> None:
    """Drop the ``Server`` header aiohttp adds by default: the front's answers carry none,
    and the same answer must not differ by which shell wrote it (nor name our versions).
    A listener's own ``Server`` header passes (unless it is that very default)."""
    if response.headers.get("Server") == SERVER_SOFTWARE:
        del response.headers["Server"]


def _error_response(answer: ErrorAnswer) -> web.Response:
    """The boundary's answer as an aiohttp response."""
    response = web.Response(
        status=answer.status, reason=answer.reason, body=answer.body,
        headers=CIMultiDict(answer.headers),
    )
    if answer.close:
        response.force_close()
    return response


def _checked_host(request: web.BaseRequest) -> str:
    """The request's ``Host`` header, refused with 400 unless it is one valid ``host[:port]``
    (``relay.request_head``), and the target's authority if it is in absolute form."""
    hosts = request.headers.getall("Host", ())
    if len(hosts) > 1:
        raise BadRequest("malformed Host header: more than one Host header")
    if not hosts:
        if request.version >= (1, 1):
            raise BadRequest("malformed Host header: HTTP/1.1 requires a Host header")
        return ""
    host_name(hosts[0])
    if not request.raw_path.startswith("/"):
        check_absolute_target(request.raw_path, hosts[0])
    return hosts[0]


def run(
    config: NamespaceConfig, *, ready: Callable[[str], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve ``config`` until SIGINT or SIGTERM; ``ready(base_url)`` once listening.

    Runs on uvloop when it is installed (the ``fast`` extra): about a third less
    CPU per relayed request than asyncio's own loop (``make bench``, S1).
    """

    async def main() -> None:
        server = RelayServer(config, reuse_port=reuse_port)
        await server.start()
        # Every relayed call allocates a few dozen objects that live until the listener
        # answers; with the default threshold (700) the cyclic collector runs hundreds of
        # times a second under load, promotes them, and every few seconds makes a full
        # pass over every listener's objects: measured during S5 (1,000 subscribers),
        # 607 young, 55 middle and 5 full collections, the longest 79 ms, all of it a
        # stalled event loop.  At 50,000 the same run made 2 young collections (the
        # longest 11 ms) and no others; cyclic garbage waits for at most 50,000
        # allocations before it is collected.
        gc.set_threshold(50_000, 10, 10)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                log.info("relay stopping now (second signal)")
                server.hurry()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        if ready is not None:
            ready(server.base_url)
        await stop.wait()
        await server.stop()

    try:
        import uvloop
    except ImportError:
        uvloop = None  # the loop starts outside this block: no ImportError context on tracebacks
    if uvloop is None:
        asyncio.run(main())
    else:
        uvloop.run(main())
