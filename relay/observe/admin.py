"""The relay's own pages: ``/$metrics``, ``/$events``, ``/$console`` and its API.

Served on the relay's port, behind a Manage token (``relay.observe.guard``), and
on the separate admin address when ``[admin] port`` is set (:class:`AdminSite`,
default 127.0.0.1, no token there unless ``require_token``)::

    GET  /$metrics                 Prometheus text format (relay.observe.exposition)
    GET  /$events                  diagnostic events as Server-Sent Events
    GET  /$console/                the console's page, script and style (static/)
    *    /$console/api/...         the console's JSON API (relay.observe.api)

The console's static files need no token (they hold no data: the page asks for
one); everything else does.  Every answer carries a strict
Content-Security-Policy and ``X-Content-Type-Options: nosniff``; API answers are
never cached.  Paths under ``/$`` are never entities (``$`` is not allowed in an
entity path), so these never shadow a listener.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from importlib import resources

from aiohttp import web

from hc.headers import query_pairs
from relay.boundary import error_answer
from relay.exceptions import AccessDenied, EntityNotFound, RelayError, TooManyConnections
from relay.observe import api
from relay.observe.guard import check_manage
from relay.request_head import host_name
from relay.state import RelayState

__all__ = ["CSP", "AdminSite", "is_admin_path", "serve"]

log = logging.getLogger("relay")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_STATIC = {
    "": ("console.html", "text/html"),
    "console.js": ("console.js", "text/javascript"),
    "console.css": ("console.css", "text/css"),
}
#: Seconds between comment lines on an idle event stream (keeps proxies from closing it).
HEARTBEAT = 15.0


def is_admin_path(path: str) -> bool:
    return path == "/$metrics" or path == "/$events" or path.startswith("/$console")


async def serve(state: RelayState, request: web.Request, *, token: bool = True) -> web.StreamResponse:
    """Answer one request for the relay's own pages (``token``: ask for a Manage token)."""
    path = request.path
    if path.startswith("/$console"):
        rest = path[len("/$console"):]
        if rest == "":
            raise web.HTTPFound("/$console/")
        name = rest[1:]
        if name in _STATIC and request.method in ("GET", "HEAD"):
            return _static(*_STATIC[name])
        if not name.startswith("api/"):
            raise EntityNotFound(f"no console page {path!r}")
    if token:
        check_manage(query_pairs(request.rel_url.raw_query_string), request.headers.items(),
                     request.host, state.config, state.verifier)
    if path == "/$metrics":
        # On the first scrape: a relay nobody scrapes never imports prometheus_client.
        from relay.observe.exposition import CONTENT_TYPE, metrics_registry, render

        metrics = state.observer.metrics
        if metrics is None:
            metrics = state.observer.metrics = metrics_registry(state.observer, _online(state))
        return _secured(web.Response(body=render(metrics), headers={"Content-Type": CONTENT_TYPE}))
    if path == "/$events":
        return await _event_stream(state, request)
    return _secured(await api.handle(state, request, path[len("/$console/api/"):]))


def _online(state: RelayState) -> Callable[[], dict[str, int]]:
    def online() -> dict[str, int]:
        return {s.path: len(s.listeners) for s in state.registry}
    return online


def _static(name: str, content_type: str) -> web.StreamResponse:
    body = resources.files("relay.observe").joinpath("static", name).read_bytes()
    return _secured(web.Response(body=body, content_type=content_type, charset="utf-8"))


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _event_stream(state: RelayState, request: web.Request) -> web.StreamResponse:
    """The diagnostic events as Server-Sent Events until the client goes."""
    subscription = state.observer.events.subscribe()
    if subscription is None:
        raise TooManyConnections("too many event stream subscribers; try again later")
    response = _secured(web.StreamResponse(headers={"Content-Type": "text/event-stream"}))
    try:
        await response.prepare(request)
        await response.write(b": soap-relay diagnostic events\n\n")
        while True:
            try:
                line = await asyncio.wait_for(subscription.queue.get(), HEARTBEAT)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if line is None:
                break
            await response.write(b"data: " + line.encode() + b"\n\n")
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        state.observer.events.unsubscribe(subscription)
    return response


_LOCAL_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def _check_local_host(host: str, bound: str) -> None:
    """Without a token, only a Host naming the address itself: a web page whose name
    was rebound to 127.0.0.1 (DNS rebinding) must not read the console."""
    if host_name(host) not in _LOCAL_NAMES | {bound.strip("[]").lower()}:
        raise AccessDenied(f"the admin address answers only Host {bound} or localhost")


class AdminSite:
    """The separate admin address (``[admin] host``/``port``), an aiohttp site of its own."""

    def __init__(self, state: RelayState) -> None:
        self.state = state
        self.settings = state.observer.settings.admin
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self.port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        handler = self._runner.server
        assert handler is not None
        self._server = await asyncio.get_running_loop().create_server(
            handler, self.settings.host, self.settings.port or 0)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("admin pages on http://%s:%d/$console/", self.settings.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if not self.settings.require_token:
                _check_local_host(request.host, self.settings.host)
            if not is_admin_path(request.path):
                raise EntityNotFound("the admin address serves /$metrics, /$events and /$console/")
            return await serve(self.state, request, token=self.settings.require_token)
        except web.HTTPException:
            raise
        except RelayError as exc:
            answer = error_answer(exc, request, self.state)
            return _secured(web.Response(status=answer.status, reason=answer.reason,
                                         body=answer.body, headers=dict(answer.headers)))
