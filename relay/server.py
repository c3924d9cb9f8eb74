"""The relay's aiohttp shell: one port for listeners, senders and the discovery feed.

Routing (PROTOCOL.md §1)::

    /$hc/P?sb-hc-action=listen        listener control channel      -> relay.listen
    /$hc/P?sb-hc-action=connect       WebSocket sender              -> relay.ws_senders
    /$hc/P?sb-hc-action=accept|request one-time rendezvous          -> relay.rendezvous
    GET /                             Atom discovery feed           -> _feed
    anything else                     HTTP sender                   -> relay.http_senders

Decisions live in the pure modules (sas, routing, headers, messages,
error_body); this module only moves bytes between them and the sockets.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import re
import signal
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import HttpVersion10, HttpVersion11, web
from multidict import CIMultiDict

from hc.entities import Discovery, Rights
from hc.exceptions import HcError
from hc.headers import reason_phrase
from hc.sas import Grant, Resource, SasVerifier
from relay import cors, http_senders, listen, rendezvous, ws_senders
from relay.budget import ByteBudget
from relay.client_errors import AiohttpLogger, ClientErrorLog, GuardedHandler
from relay.discovery import FeedEntry, render_feed
from relay.drain import CallGate, GateState
from relay.error_body import new_tracking_id, render_error
from relay.exceptions import (
    AuthError,
    BadRequest,
    RelayError,
    RequestTimeout,
    Throttled,
    VersionNotSupported,
    from_hc,
)
from relay.front import Front
from relay.front_wire import FrontLimits
from relay.http_senders import SOAP_TOKEN_SCAN_BUDGET, SOAP_TOKEN_SCAN_LIMIT
from relay.listeners import ListenerConnection, PendingRequest
from relay.namespace import NamespaceConfig, SasRule
from relay.request_head import check_absolute_target, host_name, refusal
from relay.routing import (
    EntityRegistry,
    EntityState,
    FailureLimiter,
    RendezvousTable,
)
from relay.sender_io import AiohttpReply, AiohttpSender, SenderRequest
from relay.ws_senders import PendingAccept

__all__ = ["RelayServer", "run"]


log = logging.getLogger("relay")
_HC_PREFIX = "/$hc/"
_REALM = re.compile(r"[A-Za-z0-9.:-]+")
_VERSIONS = frozenset({HttpVersion10, HttpVersion11})


class RelayServer:
    """A running relay for one namespace.

    Args:
        config: the namespace (rules, entities, listen address; port 0 picks a free port).
        clock: wall clock for token expiry (injectable for tests).
        rng: randomness for choosing among listeners.
    """

    #: The event loop it serves on (set by :meth:`start`).
    loop: asyncio.AbstractEventLoop

    def __init__(
        self,
        config: NamespaceConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.registry: EntityRegistry[ListenerConnection] = EntityRegistry(config)
        self.verifier = SasVerifier(clock)
        self.rendezvous: RendezvousTable[PendingRequest | PendingAccept] = RendezvousTable(
            config.rendezvous_timeout
        )
        #: Failed listener handshakes per (address, path, token), and per address alone,
        #: so that a client that changes its token on every attempt is held back too.
        self.limiter = FailureLimiter()
        self.address_limiter = FailureLimiter(burst=100, per_second=20)
        #: Calls in flight, and whether new ones are taken (graceful shutdown).
        self.calls = CallGate()
        #: Bytes of SOAP bodies read to look for a RelayAccessToken, across all senders.
        self.scan_budget = ByteBudget(SOAP_TOKEN_SCAN_BUDGET)
        self._runner: web.AppRunner | None = None
        self._front: Front | None = None
        self._listening: asyncio.AbstractServer | None = None
        self._liveness: asyncio.TimerHandle | None = None
        self._port: int | None = None
        self._scheme = "https" if config.tls_cert else "http"
        self.limits = FrontLimits.of(config)
        self.client_errors = ClientErrorLog(log)

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
        """The listening socket's protocol factory and its open connections (while started)."""
        return self._front

    async def start(self) -> None:
        """Bind and start serving.

        The listening socket's protocol is ``relay.front``: it serves small HTTP
        sender requests itself and hands every other connection to aiohttp.
        """
        self.loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=SOAP_TOKEN_SCAN_LIMIT)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_shutdown.append(self._on_shutdown)
        # The same limits as the front's: a connection keeps them when it is handed over.
        options: dict[str, Any] = {
            "max_line_size": self.config.max_header_size,
            "max_field_size": self.config.max_header_size,
            "max_headers": self.config.max_headers,
            "keepalive_timeout": self.config.idle_timeout,
            "lingering_time": self.config.body_timeout,
            "logger": AiohttpLogger(logging.getLogger("aiohttp.server"), self.client_errors),
        }
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=5.0, **options
        )
        await self._runner.setup()
        server, loop = self._runner.server, asyncio.get_running_loop()
        assert server is not None
        self._front = Front(
            self,
            lambda: GuardedHandler(server, loop=loop, access_log=None, **options),
            self.limits,
            self.client_errors,
        )
        self._listening = await asyncio.get_running_loop().create_server(
            self._front, self.config.host, self.config.port,
            ssl=self._ssl_context(), backlog=1024,
        )
        self._port = self._listening.sockets[0].getsockname()[1]
        self._schedule_liveness()
        log.info("relay listening on %s", self.base_url)

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: refuse new calls and listeners (503) while the calls in flight
        finish, for at most ``grace`` seconds (default: the config's ``shutdown_grace``),
        then close every listener with 1001 and every connection.
        """
        if self.calls.state is GateState.OPEN:
            await self._drain(self.config.shutdown_grace if grace is None else grace)
        if self._liveness is not None:
            self._liveness.cancel()
            self._liveness = None
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._front is not None:
            self._front.close()
            self._front = None

    def _schedule_liveness(self) -> None:
        config = self.config
        every = min(0.5, config.ping_interval / 2, config.pong_timeout / 2)
        self._liveness = asyncio.get_running_loop().call_later(every, self._check_liveness)

    def _check_liveness(self) -> None:
        """Ping quiet listeners and drop the ones that stopped answering (``relay.listeners``)."""
        now = asyncio.get_running_loop().time()
        config = self.config
        for state in self.registry:
            for listener in list(state.listeners):
                listener.tick(now, config.ping_interval, config.pong_timeout)
        self._schedule_liveness()

    async def _drain(self, grace: float) -> None:
        # The port stays open meanwhile: a listener may still open the rendezvous of a call
        # in flight.  New calls there are answered 503; idle keep-alive connections close.
        if self._front is not None:
            self._front.close()
        if self.calls.in_flight:
            log.info("relay stopping: %d calls in flight, waiting up to %g s",
                     self.calls.in_flight, grace)
        left = await self.calls.drain(grace)
        if left:
            log.warning("relay stopping: %d calls cut off after the grace period", left)

    def hurry(self) -> None:
        """Cut a graceful stop short (a second SIGTERM)."""
        self.calls.cut_short()

    async def _on_shutdown(self, app: web.Application) -> None:
        closing = [c.close(1001, "relay shutting down") for s in self.registry for c in s.listeners]
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
        try:
            host = _checked_host(request)
            path = request.path
            if path.startswith(_HC_PREFIX):
                return await self._hybrid_connection(request, path[len(_HC_PREFIX) :], tracking)
            if path == "/" and request.method in ("GET", "HEAD"):
                return self._feed(request, host)
            reply = AiohttpReply(request)
            sender = AiohttpSender(request, host, self.limits)
            await http_senders.relay_http(self, sender, reply)
            assert reply.response is not None
            return reply.response
        except RelayError as exc:
            response = self.error_response(request, exc, tracking)
            if isinstance(exc, RequestTimeout):
                response.force_close()  # the rest of a slow body is not waited for
            return response

    def _refuse_version(self, request: web.Request, tracking: str) -> web.Response:
        """505 for HTTP/0.9 or 2.0 on a connection aiohttp parses, written as HTTP/1.1
        (aiohttp would echo the request's version in the status line)."""
        error = VersionNotSupported(f"HTTP/{request.version.major}.{request.version.minor}"
                                    " is not supported (use HTTP/1.1)")
        self.client_errors.warning("refused a request from %s: %d %s [tracking %s]",
                                   request.remote, error.status, error, tracking)
        if request.transport is not None:
            request.transport.write(refusal(error, tracking))
            request.transport.close()
        return web.Response(status=error.status)  # not written: the connection is closed

    def error_parts(
        self, request: web.BaseRequest | SenderRequest, error: RelayError, tracking: str = ""
    ) -> tuple[int, str | None, tuple[tuple[str, str], ...], bytes]:
        """The relay's own error (PROTOCOL.md §5): status, reason, headers and a SOAP
        fault or JSON body, with a tracking id that is also logged.

        A 401 carries its ``WWW-Authenticate`` challenge; a request from one of the
        entity's ``cors_origins`` gets the CORS headers that let its page read the
        error, and a preflight from one is answered here (``relay.cors``).
        """
        if isinstance(error, cors.CorsPreflight):
            return 204, None, cors.preflight_headers(error.origin, request.headers), b""
        tracking = tracking or new_tracking_id()
        # A throttled client is retrying in a tight loop: one line per refusal would
        # flood the log (hyco-ws makes ~1000 attempts a second), so those are DEBUG.
        log.log(
            logging.DEBUG if isinstance(error, Throttled) else logging.INFO,
            "%s %s -> %d %s: %s [tracking %s]",
            request.method, request.path, error.status, error.code, error, tracking,
        )
        rendered = render_error(error, request.headers.get("Content-Type"), tracking)
        reason = reason_phrase(str(error).replace("\r", " ").replace("\n", " "))
        headers = [("Content-Type", rendered.content_type), ("X-Relay-Tracking-Id", tracking)]
        if isinstance(error, Throttled):
            headers.append(("Retry-After", "1"))
        if rendered.status == 401:  # RFC 9110 §11.6.1: a 401 MUST carry a challenge
            headers.append(("WWW-Authenticate", f'SharedAccessSignature realm="{self._realm(request)}"'))
        origins = self._cors_origins(request.path)
        if origins:
            headers.append(("Vary", "Origin"))
            origin = cors.allowed_origin(origins, request.headers.get("Origin"))
            if origin is not None:
                headers.extend(cors.error_headers(origin))
        return rendered.status, reason, tuple(headers), rendered.body

    def _realm(self, request: web.BaseRequest | SenderRequest) -> str:
        """The host name SAS tokens for this request are scoped to (the challenge's realm)."""
        try:
            host = _hostname(request.host)
        except ValueError:  # a Host the relay refuses anyway
            host = ""
        return host if _REALM.fullmatch(host) else self.config.host

    def _cors_origins(self, path: str) -> tuple[str, ...]:
        """The ``cors_origins`` of the entity ``path`` names; none when there is no entity."""
        resolved = self.registry.resolve(path.removeprefix(_HC_PREFIX))
        return resolved[0].config.cors_origins if resolved is not None else ()

    def error_response(
        self, request: web.BaseRequest, error: RelayError, tracking: str
    ) -> web.Response:
        """:meth:`error_parts` as an aiohttp response."""
        status, reason, headers, body = self.error_parts(request, error, tracking)
        return web.Response(status=status, reason=reason, body=body, headers=CIMultiDict(headers))

    async def _hybrid_connection(
        self, request: web.Request, raw_path: str, tracking: str
    ) -> web.StreamResponse:
        action = request.query.get("sb-hc-action")
        if action == "listen":
            self.calls.check()  # a stopping relay takes no new listener...
            return await listen.serve(self, request, raw_path)
        if action == "connect":
            self.calls.check()  # ...nor WebSocket sender (rendezvous: yes, for calls in flight)
            return await ws_senders.connect(self, request, raw_path, tracking)
        if action in ("accept", "request"):
            return await rendezvous.handle(self, request, action)
        raise BadRequest(f"unknown sb-hc-action {action!r}")

    # -- authorization -------------------------------------------------------------

    def resource(self, request: web.BaseRequest | SenderRequest, path: str) -> Resource:
        return Resource(_hostname(request.host), "/" + path)

    def authorize(
        self, request: web.BaseRequest | SenderRequest, state: EntityState[ListenerConnection],
        needed: Rights, token: str | None,
    ) -> Grant | None:
        """Verify ``token`` for ``needed`` on the entity; ``None`` when no token is required.

        A CORS preflight from one of the entity's ``cors_origins`` is answered by the
        relay (it raises :class:`relay.cors.CorsPreflight`) and never reaches a listener.
        """
        if needed is Rights.SEND and cors.is_preflight(request.method, request.headers):
            origin = cors.allowed_origin(state.config.cors_origins, request.headers.get("Origin"))
            if origin is not None:
                raise cors.CorsPreflight(origin)
        if token is None:
            if needed is Rights.SEND and not state.config.requires_client_authorization:
                return None
            raise AuthError("a SAS token is required (ServiceBusAuthorization header or sb-hc-token)")
        rules = (*state.config.rules, *self.config.rules)
        return self.verify(token, self.resource(request, state.path), needed, rules)

    def verify(
        self, token: str, target: Resource, needed: Rights, rules: tuple[SasRule, ...]
    ) -> Grant:
        """``hc.sas`` verification, its errors as the relay's (401 or 403, with their codes)."""
        try:
            return self.verifier.verify(token, target, needed, rules)
        except HcError as exc:
            raise from_hc(exc) from exc

    # -- discovery -----------------------------------------------------------------

    def _feed(self, request: web.Request, host: str) -> web.Response:
        entries = [
            FeedEntry(state.path, state.config.kind)
            for state in self.registry
            if state.config.discovery is Discovery.PUBLIC and state.listeners
        ]
        base = f"{request.scheme}://{host or self.config.host}"  # "": HTTP/1.0 without Host
        body = render_feed(
            entries, namespace=self.config.name, base_url=base, updated=datetime.now(UTC)
        )
        return web.Response(body=body, content_type="application/atom+xml", charset="utf-8")


def _hostname(host: str) -> str:
    """The lower-cased host name of a ``Host`` header (validated where the request entered)."""
    return host_name(host)


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


def run(config: NamespaceConfig, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve ``config`` until SIGINT or SIGTERM; ``ready(base_url)`` once listening.

    Runs on uvloop when it is installed (the ``fast`` extra): about a third less
    CPU per relayed request than asyncio's own loop (``make bench``, S1).
    """

    async def main() -> None:
        server = RelayServer(config)
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
