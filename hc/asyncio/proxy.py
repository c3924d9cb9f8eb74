"""A tunnel through an HTTP proxy (CONNECT), driving :mod:`hc.proxy` over a socket.

:func:`open_tunnel` connects to the proxy, writes the CONNECT request, reads the
answer, then hands the same transport to the WebSocket's protocol: as it is for
ws, after a TLS handshake with the relay (inside the tunnel) for wss.
:func:`choose_proxy` turns the SDK's ``proxy=`` argument into a proxy or none:

- ``True`` (the default): the environment (``https_proxy``/``http_proxy``/
  ``all_proxy``, ``no_proxy``), read at each connection;
- a URL ``http://[user:password@]host:port`` or a :class:`hc.proxy.Proxy`: that proxy;
- ``None`` (or ``False``): straight to the relay.

Failures are :class:`~hc.asyncio.errors.ProxyError` subclasses, never the relay's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from typing import cast

from hc.asyncio.errors import ProxyError, ProxyUnreachableError, proxy_refused
from hc.exceptions import RemoteProtocolError
from hc.handshake import Target
from hc.proxy import (
    ConnectAnswer,
    ConnectAnswerParser,
    Proxy,
    connect_request,
    proxy_from_environment,
)

__all__ = ["ProxySetting", "choose_proxy", "open_tunnel", "proxy_setting"]

log = logging.getLogger("hc.asyncio.proxy")

#: The SDK's ``proxy=`` argument (see the module docstring).
ProxySetting = Proxy | str | bool | None


def proxy_setting(proxy: ProxySetting) -> Proxy | bool:
    """Check ``proxy`` once, where it is given: a Proxy, True (environment) or False (none).

    Raises:
        ValueError: a URL that is not an http:// proxy (the message holds no password).
    """
    if isinstance(proxy, str):
        return Proxy.parse(proxy)
    if proxy is None:
        return False
    return proxy


def choose_proxy(setting: Proxy | bool, target: Target) -> Proxy | None:
    """The proxy for a connection to ``target``, or None for a direct one.

    Raises:
        ProxyError: the environment names something that is not a proxy URL (permanent).
    """
    if isinstance(setting, Proxy):
        return setting
    if not setting:
        return None
    try:
        return proxy_from_environment(target.host, target.port, target.tls, os.environ)
    except ValueError as exc:
        raise ProxyError("from the environment", str(exc), permanent=True) from exc


class _Connect(asyncio.Protocol):
    """Writes the CONNECT request and waits for the answer head; then pauses reading."""

    def __init__(self, request: bytes) -> None:
        self._request = request
        self._parser = ConnectAnswerParser()
        self.answer: asyncio.Future[ConnectAnswer] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        try:
            done = self._parser.feed(data)
        except RemoteProtocolError as exc:
            self.answer.set_exception(exc)
            return
        if done:
            assert self._parser.answer is not None and self.transport is not None
            self.transport.pause_reading()
            if self._parser.leftover and self._parser.answer.established:
                # Neither TLS nor a WebSocket server speaks first: bytes here are the proxy's.
                self.answer.set_exception(RemoteProtocolError("the proxy sent bytes after its 2xx answer"))
                return
            self.answer.set_result(self._parser.answer)

    def eof_received(self) -> bool:
        self.connection_lost(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            try:
                self._parser.feed_eof()
            except RemoteProtocolError as error:
                self.answer.set_exception(error)


async def open_tunnel(
    proxy: Proxy,
    target: Target,
    factory: Callable[[], asyncio.Protocol],
    ssl_context: ssl.SSLContext | None = None,
) -> asyncio.BaseTransport:
    """A transport to ``target`` through ``proxy``, connected to ``factory()``'s protocol.

    Raises:
        ProxyUnreachableError: no connection to the proxy, or no valid answer from it.
        ProxyRefusedError: the proxy answered the CONNECT with an error (407: credentials).
        OSError: the TLS handshake with the relay failed (inside an open tunnel).
    """
    loop = asyncio.get_running_loop()
    where = f"{target.host}:{target.port}"
    request = connect_request(target.host, target.port, proxy)
    try:
        transport, connect = await loop.create_connection(lambda: _Connect(request), proxy.host, proxy.port)
    except OSError as exc:
        raise ProxyUnreachableError(proxy.url, f"cannot connect: {exc}") from exc
    try:
        answer = await connect.answer
    except RemoteProtocolError as exc:
        transport.close()
        raise ProxyUnreachableError(proxy.url, f"no valid answer to CONNECT {where}: {exc}") from exc
    except BaseException:
        transport.close()
        raise
    if not answer.established:
        transport.close()
        raise proxy_refused(proxy.url, where, answer.status, answer.reason)
    log.debug("tunnel to %s through %s open", where, proxy.url)
    protocol = factory()
    if target.tls:
        context = ssl_context or ssl.create_default_context()
        secured = await loop.start_tls(transport, protocol, context, server_hostname=target.host)
        assert secured is not None
        protocol.connection_made(secured)
        return secured
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    transport.resume_reading()  # type: ignore[attr-defined]
    return transport
