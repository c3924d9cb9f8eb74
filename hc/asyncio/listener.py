"""``HybridConnectionListener``: one control channel to the relay, reconnecting until closed.

As ``Microsoft.Azure.Relay.HybridConnectionListener``::

    listener = HybridConnectionListener("http://127.0.0.1:9350/echo", provider)
    listener.request_handler = handle            # async (RelayedHttpListenerContext) -> None
    await listener.open()                        # online, or raises why not
    stream = await listener.accept_connection()  # the next WebSocket sender (None once closed)
    await listener.close()

It opens ``ws[s]://HOST/$hc/ENTITY?sb-hc-action=listen&sb-hc-id=ID`` with its
token in ``ServiceBusAuthorization`` and drives an
:class:`hc.protocol.ControlChannel` (Role.LISTENER) on it: each ``request`` is
handed to ``request_handler`` in a task of its own (:mod:`hc.asyncio.exchange`),
each ``accept`` is queued for :meth:`~HybridConnectionListener.accept_connection`.
It sends ``renewToken`` before the token expires, pings every
``keep_alive_interval`` seconds (leaving a relay that does not answer in
``keep_alive_timeout``), and reconnects after a loss with capped, jittered
backoff (:mod:`hc.asyncio.reconnect`), calling ``connecting``, ``online`` and
``offline`` as it goes.

Closing deviates from "close the control channel first": the relay fails every
request pending on a listener whose channel closes, so the channel stays open
while in-flight calls finish (requests arriving meanwhile are answered 503).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self

from hc.address import EntityAddress
from hc.asyncio import exchange
from hc.asyncio.connection import (
    Connector,
    WebSocketProtocol,
    mask_keys,
    open_on_relay,
    tcp_connector,
    xor_mask,
)
from hc.asyncio.errors import (
    BodyBrokenError,
    ConnectionLostError,
    KeepAliveTimeoutError,
    RelayError,
)
from hc.asyncio.exchange import AcceptHandler, RequestHandler
from hc.asyncio.http import RelayedHttpListenerContext, RelayedHttpListenerResponse
from hc.asyncio.proxy import ProxySetting, proxy_setting
from hc.asyncio.reconnect import ReconnectPolicy
from hc.asyncio.stream import HybridConnectionStream
from hc.asyncio.tokens import DEFAULT_TTL, SecurityToken, TokenProvider
from hc.asyncio.upkeep import KeepAlive, renew_tokens
from hc.events import AcceptReceived, PongReceived, RequestReceived
from hc.exceptions import ProtocolError
from hc.protocol import ControlChannel, Role

__all__ = ["HybridConnectionListener"]

log = logging.getLogger("hc.asyncio.listener")

#: Accepted WebSocket senders waiting for accept_connection(); more are refused 503.
ACCEPT_BACKLOG = 32
#: The largest request body taken by default (a larger one closes its socket with 1009).
MAX_MESSAGE_SIZE = 16 * 1024 * 1024


class HybridConnectionListener:
    """Listens on one entity: HTTP requests to ``request_handler``, WebSockets to
    :meth:`accept_connection`.

    Args:
        address: the entity, ``sb://``, ``https://`` or (a local relay) ``http://HOST[:PORT]/ENTITY``.
        token_provider: gives the Listen token; None sends none.
        connector: how sockets are opened (:func:`hc.asyncio.connection.tcp_connector`).
        ssl_context: for TLS (https/sb addresses): the system's trust store when None.
        proxy: an HTTP CONNECT proxy URL (``http://[user:password@]host:port``), True
            (the default) for the environment's (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``),
            None for none; ignored when ``connector`` is given (:mod:`hc.asyncio.proxy`).
        max_message_size: the largest request body accepted.
        keep_alive_interval: seconds between pings (0: none).
        keep_alive_timeout: seconds a ping may wait for its pong.
        options: extra query parameters of the listen URL (e.g. ``sb-relay-kind``).
        accept_backlog: WebSocket senders joined but not yet taken by
            :meth:`accept_connection`; past it, senders are refused with 503.
        policy: reconnect decisions.
        clock, sleep: wall clock and sleep for token renewal and reconnect delays.

    Attributes:
        request_handler: awaited with each :class:`~hc.asyncio.http.RelayedHttpListenerContext`;
            without one, requests are answered 501.
        accept_handler: decides on each WebSocket sender (accept all when None).
        connecting: called with the error when the listener (re)connects after one.
        online: called once the control channel is open.
        offline: called with the error when it gives up (a permanent refusal).
    """

    def __init__(
        self,
        address: str,
        token_provider: TokenProvider | None = None,
        *,
        connector: Connector | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy: ProxySetting = True,
        max_message_size: int = MAX_MESSAGE_SIZE,
        keep_alive_interval: float = 30.0,
        keep_alive_timeout: float = 20.0,
        options: tuple[tuple[str, str], ...] = (),
        accept_backlog: int = ACCEPT_BACKLOG,
        policy: ReconnectPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.address = EntityAddress.parse(address)
        self.token_provider = token_provider
        self.connector: Connector = connector or functools.partial(
            tcp_connector, ssl_context=ssl_context, proxy=proxy_setting(proxy))
        self.max_message_size = max_message_size
        self.keep_alive_interval, self.keep_alive_timeout = keep_alive_interval, keep_alive_timeout
        self.options, self.policy = options, policy or ReconnectPolicy()
        self.tracking_id = str(uuid.uuid4())
        self.request_handler: RequestHandler | None = None
        self.accept_handler: AcceptHandler | None = None
        self.connecting: Callable[[BaseException | None], None] | None = None
        self.online: Callable[[], None] | None = None
        self.offline: Callable[[BaseException | None], None] | None = None
        self.last_error: BaseException | None = None
        self._clock, self._sleep = clock, sleep
        self._rendezvous = exchange.Rendezvous(self.connector, max_message_size, self.address.http_base)
        self._control: WebSocketProtocol | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted: asyncio.Queue[HybridConnectionStream | None] = asyncio.Queue(accept_backlog)
        self._joining = 0  # accepted senders whose socket is being opened
        self._keep_alive: KeepAlive | None = None
        self._closing = False
        self._online_once: asyncio.Future[BaseException | None] | None = None

    def __repr__(self) -> str:
        return f"<HybridConnectionListener {self.address.audience} online={self.is_online}>"

    @property
    def is_online(self) -> bool:
        return self._control is not None and not self._control.closed.done()

    def listen_url(self) -> str:
        """The control-channel URL (PROTOCOL.md §1), with ``options`` appended."""
        url = self.address.url("listen", self.tracking_id)
        return url + "".join(f"&{name}={value}" for name, value in self.options)

    # -- life ------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Connect and serve in a task of the running loop, without waiting (idempotent)."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())
        return self._runner

    async def open(self) -> None:
        """Connect; return once online.

        Raises:
            RelayError: the first attempt failed (the listener is closed again).
        """
        self._online_once = asyncio.get_running_loop().create_future()
        self.start()
        error = await self._online_once
        if error is not None:
            await self.close()
            raise error

    async def _run(self) -> None:
        while not self._closing:
            try:
                control, token = await self._connect()
            except RelayError as failure:
                self.last_error = failure
                self._first(failure)
                delay = self.policy.connect_failed(failure)
                if delay is None:
                    log.error("listener %s gives up: %s", self.address.audience, failure)
                    _call(self.offline, failure)
                    return
                log.warning("listener %s: %s; retrying in %.1f s", self.address.audience, failure, delay)
                _call(self.connecting, failure)
                await self._sleep(delay)
                continue
            started = self._clock()
            self._first(None)
            _call(self.online)
            lost = await self._serve(control, token)
            if self._closing:
                return
            self.last_error = lost
            delay = self.policy.disconnected(lost.close_code, self._clock() - started)
            log.warning("listener %s: %s; reconnecting in %.1f s", self.address.audience, lost, delay)
            _call(self.connecting, lost)
            await self._sleep(delay)

    def _first(self, error: BaseException | None) -> None:
        if self._online_once is not None and not self._online_once.done():
            self._online_once.set_result(error)

    async def _token(self) -> SecurityToken | None:
        if self.token_provider is None:
            return None
        return await self.token_provider.get_token(self.address.audience, DEFAULT_TTL)

    async def _connect(self) -> tuple[WebSocketProtocol, SecurityToken | None]:
        token = await self._token()
        channel = ControlChannel(Role.LISTENER, max_message_size=self.max_message_size + exchange.COMMAND_LIMIT,
                                 mask_key=mask_keys, mask=xor_mask)
        control = await open_on_relay(
            self.listen_url(), channel, self.address.http_base,
            token=token.token if token else None, connector=self.connector,
        )
        self._control = control
        control.deliver_to(self._on_event)  # commands that came with the 101 first
        return control, token

    async def _serve(self, control: WebSocketProtocol, token: SecurityToken | None) -> ConnectionLostError:
        """Until the channel closes; returns why it closed."""
        loop = asyncio.get_running_loop()
        helpers = [loop.create_task(renew_tokens(
            control, token, self._token, self._clock, self._sleep, self.tracking_id))]
        keep_alive = self._keep_alive = None
        if self.keep_alive_interval:
            keep_alive = self._keep_alive = KeepAlive(
                control, self.keep_alive_interval, self.keep_alive_timeout)
            helpers.append(loop.create_task(keep_alive.run()))
        try:
            closed = await control.closed
        finally:
            for helper in helpers:
                helper.cancel()
            control.abort()
        if keep_alive is not None and keep_alive.unresponsive:
            return KeepAliveTimeoutError(self.keep_alive_timeout)
        return ConnectionLostError(closed.code, closed.reason)

    # -- control-channel events --------------------------------------------------------

    def _on_event(self, event: object) -> None:
        if isinstance(event, RequestReceived):
            if event.command.is_address_only:
                self._spawn(self._guarded(self._serve_rendezvous(event)))
            else:
                control = self._control
                assert control is not None
                context = self._rendezvous.inline_context(event, control)
                assert self._runner is not None
                # Its answer is written as soon as it is ready (WebSocketProtocol.send_now),
                # not batched with the other answers of the same read: the relay starts on
                # it while the listener makes the next (a batch would keep one idle).
                self._tasks.add(self._runner.get_loop().create_task(self._serve_inline(context)))
        elif isinstance(event, AcceptReceived):
            self._spawn(self._guarded(self._serve_accept(event)))
        elif isinstance(event, PongReceived) and self._keep_alive is not None:
            self._keep_alive.pong(event.data)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._runner is not None
        task = self._runner.get_loop().create_task(work)  # (not get_running_loop(): a getpid() each)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except (ConnectionError, OSError, TimeoutError, ProtocolError) as exc:
            log.warning("listener %s: could not answer a relayed call: %s", self.tracking_id,
                        exc or type(exc).__name__)
        except Exception:
            log.exception("listener %s: relayed call failed", self.tracking_id)

    async def _serve_inline(self, context: RelayedHttpListenerContext) -> None:
        """An inline request's task: one loop step when the handler does not wait (its
        answer queued without waiting for the write, the task out of ``_tasks`` by itself
        rather than by a done callback, which would cost one more loop step)."""
        assert self._runner is not None
        task = asyncio.current_task(self._runner.get_loop())  # (the loop given: no getpid())
        try:
            await self._handle(context, wait=False)
        except asyncio.CancelledError:  # cut off (close() past its timeout)
            if context.response.started:
                context.response.abort()  # a body streaming by rendezvous: its socket is dropped
            raise
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _serve_rendezvous(self, event: RequestReceived) -> None:
        opened = await self._rendezvous.rendezvous_context(event.command)
        if opened is None:
            return
        context, socket = opened
        try:
            await self._handle(context)
        finally:
            socket.abort()

    async def _handle(self, context: RelayedHttpListenerContext, wait: bool = True) -> None:
        """Await the request handler and send its response; never raises (but cancellation).

        ``wait=False``: a response the handler left open is closed without waiting for
        its write (:meth:`RelayedHttpListenerResponse.close`).
        """
        response = context.response
        if self._closing:
            _plain(response, 503, "Service Unavailable", b"The service is shutting down; try again.")
        elif self.request_handler is None:
            _plain(response, 501, "Not Implemented", b"This listener does not take HTTP requests.")
        else:
            try:
                await self.request_handler(context)
            except BodyBrokenError as exc:
                log.info("request %s: %s; the call is dropped", context.request.tracking_id, exc)
                return
            except (ConnectionError, ProtocolError) as exc:  # the response could not be written
                log.warning("listener %s: could not answer a relayed call: %s",
                            self.tracking_id, exc or type(exc).__name__)
                return
            except Exception:
                log.exception("request handler failed on %s %s", context.request.method,
                              context.request.target)
                if response.started:
                    response.abort()
                if response.closed:
                    return
                _plain(response, 500, "Internal Server Error",
                       b"The service failed to process the request.")
        try:
            await response.close(wait=wait)
        except (ConnectionError, OSError, ProtocolError) as exc:
            log.warning("listener %s: could not answer a relayed call: %s", self.tracking_id,
                        exc or type(exc).__name__)

    async def _serve_accept(self, event: AcceptReceived) -> None:
        command = event.command
        if self._closing:
            await self._rendezvous.reject(command, 503, "The listener is closing")
            return
        if self.accept_handler is not None:
            context = exchange.accept_context(command)
            if not await self.accept_handler(context):
                response = context.response
                status = response.status_code if response.status_code >= 400 else 403
                await self._rendezvous.reject(command, status, response.status_description or "Rejected")
                return
        if self._accepted.qsize() + self._joining >= self._accepted.maxsize:
            await self._rendezvous.reject(command, 503, "Too many connections waiting to be accepted")
            return
        self._joining += 1  # its place in the backlog is taken while it joins
        try:
            stream = await self._rendezvous.accept(command)
        finally:
            self._joining -= 1
        self._accepted.put_nowait(stream)

    async def accept_connection(self) -> HybridConnectionStream | None:
        """The next WebSocket sender, already joined through the relay; None once closed."""
        if self._closing and self._accepted.empty():
            return None
        stream = await self._accepted.get()
        if stream is None:
            self._accepted.put_nowait(None)  # wake the next waiter too
        return stream

    # -- close -----------------------------------------------------------------------

    async def close(self, timeout: float = 30.0) -> None:
        """Finish in-flight calls (at most ``timeout`` s), then close the control channel."""
        if self._closing:
            if self._runner is not None:
                await asyncio.gather(self._runner, return_exceptions=True)
            return
        self._closing = True
        if self._runner is not None and not self.is_online:
            self._runner.cancel()  # connecting or sleeping: nothing in flight on a channel
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:  # calls arriving meanwhile get a quick 503 and are waited for too
            left = deadline - loop.time()
            _, late = await asyncio.wait(set(self._tasks), timeout=max(0.0, left))
            if late and left <= 0:
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
                log.warning("listener %s: %d calls cut off by close()", self.tracking_id, len(late))
                break
        if self._control is not None:
            await self._control.close(1000, "listener closing")
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)
        self._first(RelayError("the listener was closed before it came online"))
        while not self._accepted.empty():  # joined senders nobody took: they are closed too
            stream = self._accepted.get_nowait()
            if stream is not None:
                await stream.close(1001, "listener closing")
        self._accepted.put_nowait(None)  # accept_connection() returns None from now on

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _plain(response: RelayedHttpListenerResponse, status: int, description: str, text: bytes) -> None:
    response.reset(status, description, [("Content-Type", "text/plain; charset=utf-8")], text)


def _call(callback: Callable[..., None] | None, *args: object) -> None:
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:  # a user's callback must not break the listener
        log.exception("listener callback failed")
