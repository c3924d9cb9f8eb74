"""The bindings' listener: a Handler, a binding and a status on the SDK's listener.

:class:`HybridConnectionListener` adapts :class:`hc.asyncio.HybridConnectionListener`
(the control channel, rendezvous, token renewal, keep-alive, reconnect; PROTOCOL.md
§3-§4) to the bindings' world: each relayed request is awaited by the
:class:`~bindings.handler.Handler` in a call slot (at most
``binding.max_concurrent_calls`` at once, :mod:`bindings.exchange`); the binding
sets the message size, keep-alive and the dynamic-entity options of the listen
URL (kind, discovery, client authorization); the SDK's ``connecting``/``online``/
``offline`` callbacks drive a :class:`~bindings.status.StatusTracker`, with the
SDK's errors translated into the bindings' :class:`~bindings.exceptions.HostError`
branch.  WebSocket senders go to ``on_accept`` as
:class:`~hc.asyncio.HybridConnectionStream` objects, or are refused with 501.

Graceful close: CLOSING while in-flight calls finish (requests arriving meanwhile
are answered 503 by the SDK), then the control channel closes with 1000: CLOSED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bindings import exchange
from bindings.address import RelayAddress
from bindings.binding import BasicHttpRelayBinding, RelayBinding
from bindings.exceptions import (
    HostError,
    ListenerDisconnected,
    ListenerQuotaExceeded,
    ListenerRejected,
    ProxyAuthenticationFailed,
    ProxyFailed,
    RelayUnreachable,
    RelayUnresponsive,
    TokenUnavailable,
)
from bindings.handler import Handler
from bindings.reconnect import ReconnectPolicy
from bindings.status import HostStatus, StatusCallback, StatusTracker
from bindings.tokens import TokenProvider
from hc import asyncio as sdk
from hc.asyncio.connection import Connector
from hc.asyncio.proxy import ProxySetting
from hc.entities import Discovery, EntityKind
from hc.messages import AcceptCommand

__all__ = ["AcceptCallback", "HybridConnectionListener", "host_error"]

log = logging.getLogger("bindings.listener")

#: ``on_accept(stream, command)``: a WebSocket sender, already joined through the relay.
AcceptCallback = Callable[[sdk.HybridConnectionStream, AcceptCommand], Awaitable[None]]


class _Tokens(sdk.TokenProvider):
    """The bindings' (synchronous) token provider, as the SDK asks for tokens."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    async def get_token(self, audience: str, ttl: float = 3600.0) -> sdk.SecurityToken:
        try:
            token = await asyncio.to_thread(self.provider.get_token, audience)
        except TokenUnavailable as exc:  # the SDK's reconnect policy reads .permanent
            raise sdk.TokenUnavailableError(str(exc), permanent=exc.permanent) from exc
        return sdk.SecurityToken(token.text, token.expires_at, audience)


def host_error(error: BaseException) -> HostError:
    """The bindings' error for one of the SDK's (the SDK's is its ``__cause__``)."""
    failure: HostError
    if isinstance(error, sdk.ProxyError):
        failure = proxy_failure(error)
    elif isinstance(error, sdk.KeepAliveTimeoutError):
        failure = RelayUnresponsive(error.timeout)
    elif isinstance(error, sdk.ConnectionLostError):
        failure = ListenerDisconnected(None if error.close_code == 1006 else error.close_code,
                                       error.reason)
    elif isinstance(error, sdk.QuotaExceededError):
        failure = ListenerQuotaExceeded(error.status, error.code, error.message)
    elif isinstance(error, sdk.RelayRejectedError):
        failure = ListenerRejected(error.status, error.code, error.message)
    elif isinstance(error, sdk.RelayUnreachableError):
        failure = RelayUnreachable(str(error))
    elif isinstance(error, HostError):
        return error
    else:
        failure = HostError(str(error))
    failure.__cause__ = error
    return failure


def proxy_failure(error: sdk.ProxyError) -> ProxyFailed:
    """The bindings' error for the SDK's proxy error."""
    status = getattr(error, "status", 0)
    kind = ProxyAuthenticationFailed if isinstance(error, sdk.ProxyAuthenticationRequiredError) else ProxyFailed
    return kind(str(error), proxy=error.proxy, status=status, permanent=error.permanent)


class HybridConnectionListener:
    """One listener connection for one entity, reconnecting until closed.

    Args:
        address: the relay and entity to listen on.
        handler: awaited for each relayed HTTP request.
        binding: keep-alive, concurrency, message size and entity kind.
        token_provider: gives the Listen token; None sends none (the relay will refuse).
        discovery: ``"public"`` asks the relay to list a dynamic entity in its feed.
        on_accept: takes WebSocket senders; without it they are refused with 501.
        on_status: called with each new :class:`HostStatus`.
        policy: reconnect decisions (inject a seeded Backoff in tests).
        clock: wall clock for token lifetimes (unix seconds).
        sleep: the coroutine used to wait between retries and renewals.
        connector: how the SDK opens sockets (TCP/TLS by default; tests inject one).
        proxy: an HTTP CONNECT proxy URL, True (default) for the environment's
            (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``), None for none.
    """

    def __init__(
        self,
        address: RelayAddress,
        handler: Handler,
        *,
        binding: RelayBinding | None = None,
        token_provider: TokenProvider | None = None,
        discovery: Discovery | str = Discovery.PRIVATE,
        on_accept: AcceptCallback | None = None,
        on_status: StatusCallback | None = None,
        policy: ReconnectPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        connector: Connector | None = None,
        proxy: ProxySetting = True,
    ) -> None:
        self.address, self.handler = address, handler
        self.binding = binding or BasicHttpRelayBinding()
        self.token_provider, self.on_accept = token_provider, on_accept
        self.discovery = Discovery(discovery)
        self.policy = policy or ReconnectPolicy()
        self.tracker = StatusTracker([on_status] if on_status else None)
        self._limiter = asyncio.Semaphore(self.binding.max_concurrent_calls)
        self._prepare = getattr(handler, "prepare", None)
        self._accepts: set[asyncio.Task[None]] = set()
        self._accept_loop: asyncio.Task[None] | None = None
        self.sdk = sdk.HybridConnectionListener(
            address.public_address,
            _Tokens(token_provider) if token_provider is not None else None,
            connector=connector, proxy=proxy,
            max_message_size=max(self.binding.max_message_size, exchange.INLINE_LIMIT),
            keep_alive_interval=self.binding.keepalive_interval,
            keep_alive_timeout=self.binding.keepalive_timeout,
            options=self._options(), policy=self.policy, clock=clock, sleep=sleep,
        )
        self.sdk.request_handler = self._serve
        self.sdk.accept_handler = self._decide
        self.sdk.connecting = lambda error: self._set(HostStatus.CONNECTING, error)
        self.sdk.online = lambda: self._set(HostStatus.ONLINE)
        self.sdk.offline = lambda error: self._set(HostStatus.OFFLINE, error)

    def __repr__(self) -> str:
        return f"<HybridConnectionListener {self.address.public_address} {self.status.name}>"

    @property
    def id(self) -> str:
        """The listener's tracking id (``sb-hc-id``)."""
        return self.sdk.tracking_id

    @property
    def status(self) -> HostStatus:
        return self.tracker.status

    @property
    def last_error(self) -> BaseException | None:
        return self.tracker.last_error

    def _options(self) -> tuple[tuple[str, str], ...]:
        """PROTOCOL.md §6: the dynamic-entity options of the listen URL."""
        options = [("sb-relay-max-message-size", str(self.binding.max_message_size))]
        if self.binding.entity_kind is not EntityKind.REQUEST_RESPONSE:
            options.append(("sb-relay-kind", self.binding.entity_kind.value))
        if self.discovery is Discovery.PUBLIC:
            options.append(("sb-relay-discovery", "public"))
        if not self.binding.requires_client_authorization:
            options.append(("sb-relay-client-auth", "none"))  # senders need no token
        return tuple(options)

    def listen_url(self) -> str:
        """The control-channel URL (PROTOCOL.md §1, plus the §6 dynamic-entity options)."""
        return self.sdk.listen_url()

    def _set(self, status: HostStatus, error: BaseException | None = None) -> None:
        if self.status not in (HostStatus.CLOSING, HostStatus.CLOSED):
            self.tracker.set(status, host_error(error) if error is not None else None)

    # -- life ------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Connect and serve in a task of the running loop (idempotent); the task ends
        once closed or permanently OFFLINE."""
        if self.on_accept is not None and self._accept_loop is None:
            self._accept_loop = asyncio.get_running_loop().create_task(self._take_senders())
        return self.sdk.start()

    async def run(self) -> None:
        """Connect, serve, reconnect; returns once closed or permanently OFFLINE."""
        await self.start()

    async def wait_for(self, *statuses: HostStatus) -> HostStatus:
        """Wait until the status is one of ``statuses``."""
        return await self.tracker.wait_for(*statuses)

    async def close(self, timeout: float = 30.0) -> None:
        """Finish in-flight calls (at most ``timeout`` s), then close the control channel."""
        if self.status in (HostStatus.CLOSING, HostStatus.CLOSED):
            await self.tracker.wait_for(HostStatus.CLOSED)
            return
        self.tracker.set(HostStatus.CLOSING)
        await self.sdk.close(timeout)
        if self._accepts:
            _, late = await asyncio.wait(set(self._accepts), timeout=timeout)
            for task in late:
                task.cancel()
        if self._accept_loop is not None:
            self._accept_loop.cancel()
        self.tracker.set(HostStatus.CLOSED)

    # -- requests --------------------------------------------------------------------

    async def _serve(self, context: sdk.RelayedHttpListenerContext) -> None:
        request = exchange.relayed_request(context.request, self.address)
        response = await exchange.call_in_slot(self.handler, request, self._limiter, self._prepare)
        await exchange.respond(context.response, response)

    # -- WebSocket senders (PROTOCOL.md §4) ------------------------------------------

    async def _decide(self, context: sdk.RelayedHttpListenerContext) -> bool:
        if self.on_accept is None:
            context.response.status_code = 501
            context.response.status_description = (
                "This listener does not accept WebSocket connections")
            return False
        return True

    async def _take_senders(self) -> None:
        while (stream := await self.sdk.accept_connection()) is not None:
            task = asyncio.get_running_loop().create_task(self._serve_sender(stream))
            self._accepts.add(task)
            task.add_done_callback(self._accepts.discard)

    async def _serve_sender(self, stream: sdk.HybridConnectionStream) -> None:
        assert self.on_accept is not None and stream.accept is not None
        try:
            async with stream:
                await self.on_accept(stream, stream.accept)
        except Exception:
            log.exception("listener %s: on_accept failed", self.id)

