"""Identity-provider tokens for hosts and zeep clients: the OAuth 2.0 client-credentials flow.

::

    provider = TokenProvider.client_credentials(
        issuer="https://login.microsoftonline.com/TENANT-ID/v2.0",
        client_id="...", client_secret="...", scope="https://relay.azure.net/.default")
    RelayServiceHost(app, "sb://relay.example.com/payroll", token_provider=provider)
    relay_client(wsdl, token_provider=provider)

One token serves every entity (its audience is the relay's); it is cached and
fetched again when less than a fifth of its life (at most five minutes) is left.
Requests go through the HTTP proxy the environment names, or ``proxy=``. The wire
format is :mod:`hc.oauth`'s; requests does the HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from bindings.exceptions import TokenUnavailable
from bindings.tokens import SecurityToken, TokenProvider
from hc.oauth import (
    ClientCredentials,
    HttpAnswer,
    OAuthError,
    discovery_url,
    read_discovery,
    read_token,
)

__all__ = ["ClientCredentialsTokenProvider"]

#: Seconds one request to the identity provider may take.
TIMEOUT = 30.0
RENEW_FRACTION, RENEW_AT_MOST = 0.2, 300.0


class ClientCredentialsTokenProvider(TokenProvider):
    """Gets JWTs from an identity provider with a client id and secret (RFC 6749 §4.4).

    Args:
        token_endpoint: the token URL; or ``issuer``, for OpenID discovery of it.
        client_id, client_secret: the application's credentials; or instead of the secret
        private_key, key_id: its private key and the key id the provider knows (``private_key_jwt``).
        scope: e.g. ``https://relay.azure.net/.default`` (Microsoft Entra ID).
        resource: an RFC 8707 resource indicator, for providers that use one.
        proxy: an HTTP proxy URL; True (default): the environment's; None: none.
        clock: unix seconds (inject for tests).

    Raises:
        ValueError: neither or both of token_endpoint and issuer.
    """

    def __init__(self, token_endpoint: str | None = None, *, issuer: str | None = None,
                 client_id: str, client_secret: str | None = None, private_key: Any = None,
                 key_id: str | None = None, scope: str | None = None,
                 resource: str | None = None, proxy: str | bool | None = True,
                 clock: Callable[[], float] = time.time) -> None:
        if (token_endpoint is None) == (issuer is None):
            raise ValueError("give the token endpoint or the issuer (for OIDC discovery), one of them")
        self.token_endpoint, self.issuer = token_endpoint, issuer
        self.credentials = ClientCredentials(client_id, client_secret, scope, resource,
                                             private_key, key_id)
        self._session = requests.Session()
        if isinstance(proxy, str):
            self._session.proxies = {"http": proxy, "https": proxy}
        elif not proxy:
            self._session.trust_env = False
        self._clock = clock
        self._token: SecurityToken | None = None
        self._issued = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self.token_endpoint or self.issuer
        return f"ClientCredentialsTokenProvider({where!r}, client_id={self.credentials.client_id!r})"

    def get_token(self, audience: str) -> SecurityToken:
        """The cached token while it has life left, else a fresh one.

        Raises:
            TokenUnavailable: the provider refused (``permanent``) or was not reached.
        """
        with self._lock:
            token = self._token
            if token is None or token.expires_within(self._renew_margin(token), self._clock()):
                try:
                    token = self._token = self._fetch()
                except OAuthError as exc:
                    raise TokenUnavailable(f"no token from the identity provider: {exc}",
                                           permanent=exc.status in (400, 401, 403)) from exc
            return token

    def _renew_margin(self, token: SecurityToken) -> float:
        return min(RENEW_AT_MOST, (token.expires_at - self._issued) * RENEW_FRACTION)

    def _fetch(self) -> SecurityToken:
        endpoint = self.token_endpoint
        if endpoint is None:
            assert self.issuer is not None
            endpoint = self.token_endpoint = read_discovery(self._answer("GET", discovery_url(self.issuer)))
        now = self._clock()
        credentials = self.credentials
        text, lasts = read_token(self._answer(
            "POST", endpoint, data=credentials.form(endpoint, now), headers=dict(credentials.headers())))
        self._issued = now
        return SecurityToken(text, now + lasts)

    def _answer(self, method: str, url: str, **options: object) -> HttpAnswer:
        try:
            with self._session.request(method, url, timeout=TIMEOUT, stream=True, **options) as answer:  # type: ignore[arg-type]
                body = answer.raw.read(64 * 1024 + 1, decode_content=True)
                return HttpAnswer(answer.status_code, body)
        except requests.RequestException as exc:
            raise OAuthError(f"cannot reach {url[:200]}: {exc}") from exc
