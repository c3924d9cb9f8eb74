"""``RelayServiceHost``: host a Spyne service, a WSGI app or a handler behind the relay.

WCF's ``ServiceHost`` with a relay binding, in Python manners::

    host = RelayServiceHost(spyne_app, "sb://127.0.0.1:9350/payroll",
                            token_provider=TokenProvider.shared_access_key(name, key))
    with host:                      # open(): blocks until ONLINE, raises if it cannot be
        print(host.public_address)  # http://127.0.0.1:9350/payroll
        ...                         # close(): finishes in-flight calls

    await host.serve()              # the async face: runs in the current loop

There is one async core (:meth:`serve`, ``async with host``); the blocking
:meth:`open` runs that core in a background thread with its own event loop, so
status callbacks then run in that thread.

Host status aggregates its listeners' (:mod:`bindings.status`): ONLINE while
any listener is online, OFFLINE when all gave up (it stays so, with
``last_error``, until ``close``), CLOSED before ``open`` and after ``close``,
CONNECTING otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Self

from bindings.address import RelayAddress
from bindings.app_handler import make_handler
from bindings.binding import BasicHttpRelayBinding, RelayBinding
from bindings.exceptions import ConfigurationError, HostError, HostOpenTimeout
from bindings.listener import HybridConnectionListener
from bindings.settings import ENV_VAR, default_connection_string, parse_connection_string
from bindings.status import HostStatus, StatusCallback
from bindings.tokens import TokenProvider
from hc.asyncio.proxy import proxy_setting
from hc.connection_string import ConnectionString
from hc.entities import Discovery
from hc.proxy import Proxy

if TYPE_CHECKING:
    from bindings.nettcp.host import SessionHost
    from bindings.wssecurity import MessageSecurity

__all__ = ["RelayServiceHost", "make_handler"]

log = logging.getLogger("bindings.host")


def _token_provider(connection_string: ConnectionString) -> TokenProvider:
    if connection_string.signature is not None:
        return TokenProvider.shared_access_signature(connection_string.signature)
    assert connection_string.key_name is not None and connection_string.key is not None
    return TokenProvider.shared_access_key(connection_string.key_name, connection_string.key)


def _where_and_who(
    address: str | RelayAddress | None,
    connection_string: ConnectionString | str | None,
    token_provider: TokenProvider | None,
) -> tuple[RelayAddress, TokenProvider | None]:
    """The host's address and token provider, ``SOAPRELAY_CONNECTION_STRING`` filling gaps.

    The variable supplies the address (its endpoint and EntityPath) when neither an
    address nor a connection string is given, and the token provider when neither
    a provider nor a connection string is given and it names the address's relay.
    """
    if isinstance(connection_string, str):
        connection_string = parse_connection_string(connection_string)
    if isinstance(address, str):
        address = RelayAddress.parse(address)
    if connection_string is None and (address is None or token_provider is None):
        connection_string = default_connection_string(
            None if address is None else address.http_base
        )
    if address is None:
        if connection_string is None:
            raise ConfigurationError(
                f"give an address or a connection string (or set {ENV_VAR})"
            )
        address = RelayAddress.from_connection_string(connection_string)
    if token_provider is None and connection_string is not None:
        token_provider = _token_provider(connection_string)
    return address, token_provider


def _proxy(proxy: str | bool | None) -> Proxy | bool:
    try:
        return proxy_setting(proxy)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc


def session_host(
    app: object, binding: RelayBinding, address: RelayAddress,
    message_security: MessageSecurity | None,
) -> SessionHost | None:
    """The NetTcp sessions' host for a binding with session channels, else None."""
    if not getattr(binding, "session_channel", False):
        return None
    from spyne import Application

    from bindings.nettcp.binding import NetTcpRelayBinding
    from bindings.nettcp.host import SessionHost

    assert isinstance(binding, NetTcpRelayBinding)
    if not isinstance(app, Application):
        raise ConfigurationError(
            f"NetTcpRelayBinding hosts a Spyne Application (SOAP 1.2), not {type(app).__name__}")
    return SessionHost(app, binding, address, message_security)


def _aggregate(statuses: list[HostStatus]) -> HostStatus:
    if not statuses or all(s is HostStatus.CLOSED for s in statuses):
        return HostStatus.CLOSED
    if HostStatus.ONLINE in statuses:
        return HostStatus.ONLINE
    if any(s in (HostStatus.CLOSING, HostStatus.CLOSED) for s in statuses):
        return HostStatus.CLOSING
    if all(s is HostStatus.OFFLINE for s in statuses):
        return HostStatus.OFFLINE
    return HostStatus.CONNECTING


class RelayServiceHost:
    """Hosts ``app`` at ``address`` through the relay, over outbound connections only.

    Args:
        app: a Spyne ``Application``, any WSGI callable, or an async Handler.
        address: ``sb://host:port/path``, ``http://...`` or ``https://...``; None takes
            the connection string's endpoint and EntityPath (``connection_string``,
            else the ``SOAPRELAY_CONNECTION_STRING`` environment variable).
        binding: the relay binding (default BasicHttpRelayBinding).
        token_provider: gives the Listen token; default from ``connection_string``,
            else from ``SOAPRELAY_CONNECTION_STRING`` when it names the same relay.
        discovery: ``"public"`` lists the entity in the relay's discovery feed.
        on_status: called with each new host :class:`HostStatus`.
        connection_string: text or parsed; supplies the token (and address if None).
        listeners: control channels to open (each serves requests; the relay spreads them).
        open_timeout: seconds :meth:`open` / ``async with`` wait for ONLINE.
        close_timeout: seconds :meth:`close` lets in-flight calls finish.
        proxy: an HTTP CONNECT proxy URL ``http://[user:password@]host:port`` for the
            connections to the relay; True (default): the environment's
            (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``); None: none.
        message_security: WS-Security settings for ``binding.security`` MESSAGE or
            TRANSPORT_WITH_MESSAGE_CREDENTIAL: requests are checked before the app
            runs, and in MESSAGE mode replies are signed when it has an identity.

    Raises:
        ConfigurationError: bad address, connection string or app, or message
            security settings that do not fit the binding's security mode.
    """

    def __init__(
        self,
        app: object,
        address: str | RelayAddress | None = None,
        *,
        binding: RelayBinding | None = None,
        token_provider: TokenProvider | None = None,
        discovery: Discovery | str = Discovery.PRIVATE,
        on_status: StatusCallback | None = None,
        connection_string: ConnectionString | str | None = None,
        listeners: int = 1,
        open_timeout: float = 60.0,
        close_timeout: float = 30.0,
        message_security: MessageSecurity | None = None,
        proxy: str | bool | None = True,
    ) -> None:
        address, token_provider = _where_and_who(address, connection_string, token_provider)
        if listeners < 1:
            raise ConfigurationError("listeners must be at least 1")
        self.address, self.binding = address, binding or BasicHttpRelayBinding()
        self.token_provider, self.discovery = token_provider, Discovery(discovery)
        self.handler = make_handler(app, self.binding, message_security, listeners=listeners)
        self.sessions = session_host(app, self.binding, address, message_security)
        self.listener_count, self.open_timeout = listeners, open_timeout
        self.close_timeout = close_timeout
        self.proxy = _proxy(proxy)
        self._callbacks: list[StatusCallback] = [on_status] if on_status else []
        self._listeners: list[HybridConnectionListener] = []
        self._reported = HostStatus.CLOSED
        self._changed: asyncio.Event | None = None
        self._closing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<RelayServiceHost {self.public_address} {self.status.name}>"

    # -- state -----------------------------------------------------------------------

    @property
    def public_address(self) -> str:
        """Where senders call the service, e.g. ``http://127.0.0.1:9350/payroll``."""
        return self.address.public_address

    @property
    def status(self) -> HostStatus:
        return _aggregate(list(self.listener_statuses))

    @property
    def listener_statuses(self) -> tuple[HostStatus, ...]:
        """Each control channel's own status, in the order they were opened (none before)."""
        return tuple(listener.status for listener in self._listeners)

    @property
    def last_error(self) -> BaseException | None:
        """The error that took a listener OFFLINE, else the latest connection error."""
        errors = [(lst.status is HostStatus.OFFLINE, lst.last_error) for lst in self._listeners]
        errors = [e for e in errors if e[1] is not None]
        return max(errors, key=lambda e: e[0])[1] if errors else None

    def add_status_callback(self, callback: StatusCallback) -> None:
        self._callbacks.append(callback)

    def _on_listener_status(self, _: HostStatus) -> None:
        if self._changed is not None:
            self._changed.set()
        status = self.status
        if status is not self._reported:
            self._reported = status
            for callback in list(self._callbacks):
                try:
                    callback(status)
                except Exception:
                    log.exception("on_status callback failed")

    # -- the async core --------------------------------------------------------------

    def _start(self) -> None:
        if self._listeners:
            return
        self._changed = asyncio.Event()
        self._listeners = [
            HybridConnectionListener(
                self.address, self.handler, binding=self.binding,
                token_provider=self.token_provider, discovery=self.discovery,
                on_status=self._on_listener_status, proxy=self.proxy,
                on_accept=self.sessions.serve if self.sessions is not None else None,
            )
            for _ in range(self.listener_count)
        ]
        for listener in self._listeners:
            listener.start()
        self._on_listener_status(HostStatus.CONNECTING)

    async def _wait_ready(self, timeout: float | None) -> None:
        """Until every listener is ONLINE; raise when one gives up, or on timeout."""
        assert self._changed is not None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._changed.clear()
            statuses = [listener.status for listener in self._listeners]
            if HostStatus.OFFLINE in statuses:
                error = self.last_error
                raise error if isinstance(error, HostError) else HostError(str(error))
            if any(s in (HostStatus.CLOSING, HostStatus.CLOSED) for s in statuses):
                raise HostError("the host was closed before it came online")
            if all(s is HostStatus.ONLINE for s in statuses):
                return
            left = None if deadline is None else deadline - loop.time()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                raise HostOpenTimeout(
                    f"{self.public_address} did not come online within {timeout:g} s"
                    f" (last error: {self.last_error or 'none'})"
                ) from self.last_error

    async def __aenter__(self) -> Self:
        self._start()
        try:
            await self._wait_ready(self.open_timeout)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def serve(self) -> None:
        """Run in the current loop until :meth:`aclose` (or cancellation: graceful close).

        Raises:
            HostError: every listener gave up (e.g. the relay refused the token).
        """
        self._start()
        # close() cancels a runner that is connecting or waiting to retry: not an error here
        runners = asyncio.gather(
            *(listener.start() for listener in self._listeners), return_exceptions=True
        )
        try:
            # shield: cancelling serve() must not cut the control channels before close drains
            await asyncio.shield(runners)
        except BaseException:
            await self.aclose()
            raise
        if self._closing is not None:  # aclose() ended the runners
            await self.aclose()
            return
        # Every listener gave up: they stay OFFLINE (with last_error) until aclose().
        await self._close_handler()
        error = self.last_error
        raise error if isinstance(error, HostError) else HostError(str(error))

    async def aclose(self) -> None:
        """Graceful close: in-flight calls finish (``close_timeout``), then disconnect."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close_all())
        await asyncio.shield(self._closing)

    async def _close_all(self) -> None:
        if self.sessions is not None:
            await self.sessions.aclose(self.close_timeout)
        await asyncio.gather(*(lst.close(self.close_timeout) for lst in self._listeners))
        await self._close_handler()

    async def _close_handler(self) -> None:
        closer = getattr(self.handler, "aclose", None)
        if closer is not None:
            await closer()

    # -- the blocking face -----------------------------------------------------------

    def open(self, timeout: float | None = None) -> None:
        """Connect in a background thread; return once ONLINE.

        Args:
            timeout: seconds to wait (default ``open_timeout``).

        Raises:
            HostError: a permanent refusal (401/403/404/quota), or HostOpenTimeout.
        """
        if self._thread is not None:
            raise HostError("this host was opened already")
        started = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._thread_main(started),),
            name=f"relay-host {self.address.entity_path}", daemon=True,
        )
        self._thread.start()
        started.wait()
        assert self._loop is not None
        wait = self.open_timeout if timeout is None else timeout
        future = asyncio.run_coroutine_threadsafe(self._wait_ready(wait), self._loop)
        try:
            future.result()
        except BaseException:
            self.close()
            raise

    async def _thread_main(self, started: threading.Event) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._start()
        started.set()
        await self._stop.wait()  # listeners run (or sit OFFLINE) until close()
        await self.aclose()

    def close(self) -> None:
        """Graceful close (blocking); safe to call twice or before :meth:`open`."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(stop.set)
        thread.join(self.close_timeout + 15)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
