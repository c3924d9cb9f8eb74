"""A token provider for identity-provider tokens: the OAuth 2.0 client-credentials flow.

::

    provider = ClientCredentialsTokenProvider(
        issuer="https://login.microsoftonline.com/TENANT-ID/v2.0",      # or token_endpoint=
        client_id="...", client_secret="...", scope="https://relay.azure.net/.default")
    listener = HybridConnectionListener("sb://relay.example.com/payroll", provider)

The token is fetched once and handed out until less than a fifth of its life (at
most five minutes) is left; then the next ``get_token`` fetches a fresh one, and
concurrent callers share that one fetch. Requests go through the same connector as
the relay's sockets, so through the same HTTP proxy (:mod:`hc.asyncio.proxy`).
The wire format is :mod:`hc.oauth`'s.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable
from typing import Any

from hc.asyncio.connection import Connector, tcp_connector
from hc.asyncio.errors import ProxyError, TokenUnavailableError
from hc.asyncio.proxy import ProxySetting, proxy_setting
from hc.asyncio.tokens import DEFAULT_TTL, SecurityToken, TokenProvider
from hc.handshake import Target
from hc.oauth import (
    MAX_ANSWER,
    ClientCredentials,
    HttpAnswer,
    OAuthError,
    discovery_url,
    http_request,
    parse_answer,
    read_discovery,
    read_token,
)

__all__ = ["ClientCredentialsTokenProvider"]

#: Seconds one request to the identity provider may take.
REQUEST_TIMEOUT = 30.0
#: A token is renewed when this much of its life is left, at most RENEW_AT_MOST seconds.
RENEW_FRACTION, RENEW_AT_MOST = 0.2, 300.0


class ClientCredentialsTokenProvider(TokenProvider):
    """Gets JWTs from an identity provider with a client id and secret (RFC 6749 §4.4).

    Args:
        token_endpoint: the provider's token URL; or
        issuer: its issuer URL, whose OpenID discovery document names the token URL.
        client_id, client_secret: the application's credentials; or instead of the secret
        private_key, key_id: its private key and the key id the provider knows (``private_key_jwt``).
        scope: e.g. ``https://relay.azure.net/.default`` for Microsoft Entra ID.
        resource: an RFC 8707 resource indicator (the audience), for providers that use one.
        proxy, ssl_context: as for the listener and client (:mod:`hc.asyncio.proxy`).
        connector: how sockets are opened (overrides ``proxy``/``ssl_context``).
        clock: unix seconds (inject for tests).

    Raises:
        ValueError: neither or both of token_endpoint and issuer; no client id; neither or
            both of a secret and a private key.
    """

    def __init__(
        self,
        token_endpoint: str | None = None,
        *,
        issuer: str | None = None,
        client_id: str,
        client_secret: str | None = None,
        private_key: Any = None,
        key_id: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
        proxy: ProxySetting = True,
        ssl_context: ssl.SSLContext | None = None,
        connector: Connector | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (token_endpoint is None) == (issuer is None):
            raise ValueError("give the token endpoint or the issuer (for OIDC discovery), one of them")
        if not client_id:
            raise ValueError("a client id is required")
        self.token_endpoint, self.issuer = token_endpoint, issuer
        self.credentials = ClientCredentials(client_id, client_secret, scope, resource,
                                             private_key, key_id)
        self.connector: Connector = connector or functools.partial(
            tcp_connector, ssl_context=ssl_context, proxy=proxy_setting(proxy))
        self._clock = clock
        self._token: SecurityToken | None = None
        self._issued = 0.0  # when the cached token was fetched
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        where = self.token_endpoint or self.issuer
        return f"ClientCredentialsTokenProvider({where!r}, client_id={self.credentials.client_id!r})"

    async def get_token(self, audience: str, ttl: float = DEFAULT_TTL) -> SecurityToken:
        """The cached token while it has life left, else a fresh one (``ttl`` is the
        provider's to decide; ``audience`` is the entity, the token's is the relay's).

        Raises:
            TokenUnavailableError: the provider refused (its error; permanent) or could
                not be reached.
            ProxyError: the HTTP proxy on the way failed.
        """
        async with self._lock:
            token = self._token
            if token is None or self._due(token):
                try:
                    token = self._token = await self._fetch(audience)
                except OAuthError as exc:
                    refused = exc.status in (400, 401, 403)
                    raise TokenUnavailableError(f"no token from the identity provider: {exc}",
                                                permanent=refused) from exc
            return token

    def _due(self, token: SecurityToken) -> bool:
        left = token.expires_at - self._clock()
        return left <= min(RENEW_AT_MOST, (token.expires_at - self._issued) * RENEW_FRACTION)

    async def _fetch(self, audience: str) -> SecurityToken:
        endpoint = self.token_endpoint
        if endpoint is None:
            assert self.issuer is not None
            endpoint = self.token_endpoint = read_discovery(
                await self._exchange("GET", discovery_url(self.issuer), []))
        credentials = self.credentials
        now = self._clock()
        text, lasts = read_token(await self._exchange(
            "POST", endpoint, credentials.headers(), credentials.form(endpoint, now)))
        self._issued = now
        return SecurityToken(text, now + lasts, audience)

    async def _exchange(self, method: str, url: str, headers: list[tuple[str, str]],
                        body: bytes = b"") -> HttpAnswer:
        try:
            target = Target.parse(url)
        except Exception as exc:
            raise OAuthError(f"not an http(s) URL: {url[:200]!r}") from exc
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_ANSWER, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                transport = await self.connector(lambda: protocol, target)
                writer = asyncio.StreamWriter(transport, protocol, reader, loop)  # type: ignore[arg-type]
                try:
                    writer.write(http_request(method, url, headers, body))
                    data = await reader.read(MAX_ANSWER + 1)
                    while data and len(data) <= MAX_ANSWER and not reader.at_eof():
                        data += await reader.read(MAX_ANSWER + 1 - len(data))
                finally:
                    await _closed(writer)
        except ProxyError:
            raise
        except (OSError, TimeoutError) as exc:
            raise OAuthError(f"cannot reach {target.host}:{target.port}: {exc or type(exc).__name__}") from exc
        return parse_answer(data)


async def _closed(writer: asyncio.StreamWriter) -> None:
    """Close the connection and return once its socket is: over TLS that waits for the
    server's close_notify, so a server slow to send it has the socket dropped after a
    second (as when cancelled), rather than left open past the caller's loop."""
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()
    except BaseException:
        writer.transport.abort()
        raise
