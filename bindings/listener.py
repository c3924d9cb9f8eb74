"""The Hybrid Connections listener client: one outbound control channel to the relay.

A :class:`HybridConnectionListener` opens
``ws[s]://HOST:PORT/$hc/ENTITY?sb-hc-action=listen&sb-hc-id=UUID`` with its token
in the ``ServiceBusAuthorization`` header, then reads commands (PROTOCOL.md §3):
each ``request`` becomes a task that awaits the :class:`~bindings.handler.Handler`
(at most ``binding.max_concurrent_calls`` at once) and answers through
:mod:`bindings.exchange`; each ``accept`` goes to ``on_accept`` or is refused
with 501.  It renews its token with ``renewToken`` before expiry, pings every
``binding.keepalive_interval`` seconds and reconnects after a loss with capped,
jittered backoff (:mod:`bindings.reconnect`).  Status: :mod:`bindings.status`.

Graceful close deviates from "close the control channel first": the relay fails
every request still pending on a listener whose control channel closes
(``relay.listeners``), so the channel stays open while in-flight calls finish
(requests arriving meanwhile are answered 503), then closes with 1000.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bindings import exchange
from bindings.address import RelayAddress
from bindings.binding import BasicHttpRelayBinding, RelayBinding
from bindings.exceptions import (
    HostError,
    ListenerDisconnected,
    RelayUnreachable,
    RelayUnresponsive,
)
from bindings.handler import Handler, RelayedResponse, iter_bytes
from bindings.reconnect import ReconnectPolicy, rejection
from bindings.status import HostStatus, StatusCallback, StatusTracker
from bindings.tokens import SecurityToken, TokenProvider
from hc.entities import Discovery, EntityKind
from hc.exceptions import MalformedMessage
from hc.messages import (
    AcceptCommand,
    RenewTokenCommand,
    RequestCommand,
    parse_relay_command,
)

__all__ = ["AcceptCallback", "HybridConnectionListener"]

log = logging.getLogger("bindings.listener")

#: ``on_accept(connection, command)``: a WebSocket sender, already joined through the relay.
AcceptCallback = Callable[[ClientConnection, AcceptCommand], Awaitable[None]]
#: Renew the token when this fraction of its remaining life has passed.
RENEW_AT = 0.8
#: Slack over ``max_message_size`` for the JSON command on the same socket.
_SLACK = 256 * 1024
#: Seconds a closing handshake may take before the socket is dropped: on a cut link
#: the close frame never leaves, and the default 10 s would delay the reconnect.
_CLOSE_TIMEOUT = 1.0
#: Wait before asking the provider again when it handed back the same token.
_MIN_RENEW_WAIT = 1.0
_CLOSING_RESPONSE = RelayedResponse(
    503, "Service Unavailable", (("Content-Type", "text/plain; charset=utf-8"),),
    b"The service is shutting down; try again.",
)


def _keepalive_failed(ws: ClientConnection) -> bool:
    """Whether websockets failed the connection because a keep-alive ping went unanswered
    (it then sends 1011 itself and never receives the relay's close frame)."""
    sent = ws.protocol.close_sent
    return ws.protocol.close_rcvd is None and sent is not None and sent.code == 1011


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
    ) -> None:
        self.address, self.handler = address, handler
        self.binding = binding or BasicHttpRelayBinding()
        self.token_provider, self.on_accept = token_provider, on_accept
        self.discovery = Discovery(discovery)
        self.policy = policy or ReconnectPolicy()
        self.tracker = StatusTracker([on_status] if on_status else None)
        self.id = str(uuid.uuid4())
        self._clock, self._sleep = clock, sleep
        self._limiter = asyncio.Semaphore(self.binding.max_concurrent_calls)
        self._tasks: set[asyncio.Task[None]] = set()
        self._control: exchange.ControlChannel | None = None
        self._runner: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<HybridConnectionListener {self.address.public_address} {self.status.name}>"

    @property
    def status(self) -> HostStatus:
        return self.tracker.status

    @property
    def last_error(self) -> BaseException | None:
        return self.tracker.last_error

    # -- URLs and tokens -------------------------------------------------------------

    def listen_url(self) -> str:
        """The control-channel URL (PROTOCOL.md §1, plus the §6 dynamic-entity options)."""
        url = f"{self.address.control_url}?sb-hc-action=listen&sb-hc-id={self.id}"
        url += f"&sb-relay-max-message-size={self.binding.max_message_size}"
        if self.binding.entity_kind is not EntityKind.REQUEST_RESPONSE:
            url += f"&sb-relay-kind={self.binding.entity_kind.value}"
        if self.discovery is Discovery.PUBLIC:
            url += "&sb-relay-discovery=public"
        if not self.binding.requires_client_authorization:
            url += "&sb-relay-client-auth=none"  # senders need no token (dynamic entities)
        return url

    async def _token(self) -> SecurityToken | None:
        if self.token_provider is None:
            return None
        return await asyncio.to_thread(self.token_provider.get_token, self.address.audience)

    def _open(self, url: str, **options: Any) -> connect:
        """Any WebSocket this listener opens (control, rendezvous, accept): await or ``async with``.

        No compression (the relay pumps frames untouched); proxies from the environment apply.
        """
        options.setdefault("ping_interval", None)
        options.setdefault("create_connection", exchange.RelayClientConnection)
        max_size = max(self.binding.max_message_size, exchange.INLINE_LIMIT) + _SLACK
        return connect(url, compression=None, max_size=max_size, **options)

    # -- life ------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start :meth:`run` as a task of the running loop (idempotent)."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self.run())
        return self._runner

    async def wait_for(self, *statuses: HostStatus) -> HostStatus:
        """Wait until the status is one of ``statuses``."""
        return await self.tracker.wait_for(*statuses)

    async def run(self) -> None:
        """Connect, serve, reconnect; returns once closed or permanently OFFLINE."""
        while self.status in (HostStatus.CONNECTING, HostStatus.ONLINE):
            try:
                connected = await self._connect()
            except HostError as failure:
                delay = self.policy.connect_failed(failure)
                if delay is None:
                    log.error("listener %s gives up: %s", self.address.public_address, failure)
                    self._set(HostStatus.OFFLINE, failure)
                    return
                log.warning("listener %s: %s; retrying in %.1f s", self.address.public_address,
                            failure, delay)
                self._set(HostStatus.CONNECTING, failure)
                await self._sleep(delay)
                continue
            ws, token = connected
            started = self._clock()
            lost = await self._serve(ws, token)
            if self.status is not HostStatus.ONLINE:
                return  # closing: close() owns the rest
            delay = self.policy.disconnected(lost.close_code, self._clock() - started)
            log.warning("listener %s: %s; reconnecting in %.1f s", self.address.public_address,
                        lost, delay)
            self._set(HostStatus.CONNECTING, lost)
            await self._sleep(delay)

    def _set(self, status: HostStatus, error: BaseException | None = None) -> None:
        if self.status not in (HostStatus.CLOSING, HostStatus.CLOSED):
            self.tracker.set(status, error)

    async def _connect(self) -> tuple[ClientConnection, SecurityToken | None]:
        token = await self._token()
        headers = {"ServiceBusAuthorization": token.text} if token else {}
        interval = self.binding.keepalive_interval or None
        try:
            ws = await self._open(
                self.listen_url(), additional_headers=headers,
                ping_interval=interval, ping_timeout=self.binding.keepalive_timeout,
                close_timeout=_CLOSE_TIMEOUT,
            )
        except InvalidStatus as exc:
            response = exc.response
            raise rejection(response.status_code, response.reason_phrase, bytes(response.body or b"")) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise RelayUnreachable(f"cannot reach the relay at {self.address.ws_base}: {exc}") from exc
        self._set(HostStatus.ONLINE)
        return ws, token

    async def _serve(self, ws: ClientConnection, token: SecurityToken | None) -> ListenerDisconnected:
        """Read commands until the channel closes; returns why it closed."""
        self._control = exchange.ControlChannel(ws)
        renewer = asyncio.get_running_loop().create_task(self._renew_tokens(self._control, token))
        try:
            await self._read_commands(ws)
        except ConnectionClosed:
            pass
        finally:
            renewer.cancel()
            self._control = None
            await ws.close()
        if _keepalive_failed(ws):
            return RelayUnresponsive(self.binding.keepalive_timeout)
        return ListenerDisconnected(ws.close_code, ws.close_reason or "")

    async def _read_commands(self, ws: ClientConnection) -> None:
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                log.warning("listener %s: binary frame where a command was expected", self.id)
                continue
            try:
                command = parse_relay_command(message)
            except MalformedMessage as exc:
                log.warning("listener %s: ignoring malformed command: %s", self.id, exc)
                continue
            if isinstance(command, AcceptCommand):
                self._spawn(self._accept(command))
            elif command.is_address_only:
                self._spawn(self._rendezvous(command))
            else:
                # PROTOCOL.md §3: with "body": true, "exactly one binary WebSocket
                # message (any number of frames) follows the JSON immediately".
                body = await ws.recv(decode=False) if command.body else b""
                self._spawn(self._inline(command, body))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                log.warning("listener %s: could not answer a relayed call: %r", self.id, exc)
            except Exception:
                log.exception("listener %s: relayed call failed", self.id)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- requests --------------------------------------------------------------------

    async def _inline(self, command: RequestCommand, body: bytes) -> None:
        control = self._control
        if self.status is HostStatus.CLOSING:
            response = _CLOSING_RESPONSE
        else:
            request = exchange.relayed_request(command, iter_bytes(body), self.address)
            response = await exchange.call_in_slot(
                self.handler, request, self._limiter, getattr(self.handler, "prepare", None)
            )
        await exchange.send_response(
            command.id, response, control=control, rendezvous=command.address,
            open_socket=self._open,
        )

    async def _rendezvous(self, command: RequestCommand) -> None:
        await exchange.serve_rendezvous(
            command, handler=self._handler_or_closing, address=self.address,
            open_socket=self._open, limiter=self._limiter,
            prepare=getattr(self.handler, "prepare", None),
        )

    async def _handler_or_closing(self, request: Any) -> RelayedResponse:
        if self.status is HostStatus.CLOSING:
            return _CLOSING_RESPONSE
        return await self.handler(request)

    # -- WebSocket senders (PROTOCOL.md §4) ------------------------------------------

    async def _accept(self, command: AcceptCommand) -> None:
        if self.on_accept is None or self.status is HostStatus.CLOSING:
            await self._reject(command, 501, "This listener does not accept WebSocket connections")
            return
        offered = next((v for k, v in command.connect_headers
                        if k.lower() == "sec-websocket-protocol"), "")
        protocols: Any = [p.strip() for p in offered.split(",") if p.strip()] or None
        async with self._open(command.address, subprotocols=protocols) as ws:
            await self.on_accept(ws, command)

    async def _reject(self, command: AcceptCommand, status: int, description: str) -> None:
        url = (f"{command.address}&sb-hc-statusCode={status}"
               f"&sb-hc-statusDescription={quote(description)}")
        try:
            async with self._open(url):
                pass
        except InvalidStatus:
            pass  # the relay answers a rejection with 410, as expected
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            log.info("listener %s: rejecting a WebSocket sender failed: %s", self.id, exc)

    # -- token renewal ---------------------------------------------------------------

    async def _renew_tokens(
        self, control: exchange.ControlChannel, current: SecurityToken | None
    ) -> None:
        """Send ``renewToken`` when RENEW_AT of the current token's remaining life has passed."""
        while current is not None:
            await self._sleep(max(0.0, (current.expires_at - self._clock()) * RENEW_AT))
            fresh = await self._token()
            if fresh is None:
                return
            if fresh.text == current.text:
                if fresh.expires_at <= self._clock():
                    return  # a fixed token: nothing to renew; the relay will close with 1008
                await self._sleep(_MIN_RENEW_WAIT)
                continue
            await control.send(RenewTokenCommand(fresh.text).serialize())
            log.info("listener %s renewed its token", self.id)
            current = fresh

    # -- graceful close --------------------------------------------------------------

    async def close(self, timeout: float = 30.0) -> None:
        """Finish in-flight calls (at most ``timeout`` s), then close the control channel."""
        if self.status in (HostStatus.CLOSING, HostStatus.CLOSED):
            await self.tracker.wait_for(HostStatus.CLOSED)
            return
        self.tracker.set(HostStatus.CLOSING)
        if self._runner is not None and self._control is None:
            self._runner.cancel()  # connecting or sleeping: nothing in flight on a channel
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:  # calls arriving meanwhile get a quick 503 and are waited for too
            left = deadline - asyncio.get_running_loop().time()
            _, late = await asyncio.wait(set(self._tasks), timeout=max(0.0, left))
            if late and left <= 0:
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
                log.warning("listener %s: %d calls cut off by close()", self.id, len(late))
                break
        control = self._control
        if control is not None:
            await control.ws.close(1000, "listener closing")
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)
        self.tracker.set(HostStatus.CLOSED)
