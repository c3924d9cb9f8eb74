"""Token providers: where a host or client gets the SAS token it presents.

WCF's ``TokenProvider.CreateSharedAccessSignatureTokenProvider(name, key)`` in
Python manners::

    provider = TokenProvider.shared_access_key("RootManageSharedAccessKey", key)
    token = provider.get_token("http://127.0.0.1:9350/payroll")
    token.text          # 'SharedAccessSignature sr=...'
    token.expires_at    # unix time

Tokens are cached per audience and renewed before they expire. Identity-provider
tokens (JWTs, Microsoft Entra ID or any OpenID provider) come from
``TokenProvider.client_credentials(...)`` (:mod:`bindings.oauth_tokens`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hc.sas import SasToken, create_token

__all__ = ["SecurityToken", "TokenProvider"]


@dataclass(frozen=True)
class SecurityToken:
    """A token and its expiry (unix seconds)."""

    text: str = field(repr=False)
    expires_at: float

    def expires_within(self, seconds: float, now: float) -> bool:
        return self.expires_at - now <= seconds


class TokenProvider:
    """Base class and factory; subclasses implement :meth:`get_token`."""

    def get_token(self, audience: str) -> SecurityToken:
        """A valid token for ``audience`` (an http(s)/sb URI of an entity or namespace)."""
        raise NotImplementedError

    @staticmethod
    def shared_access_key(
        key_name: str, key: str, *, ttl: float = 3600, clock: Callable[[], float] = time.time
    ) -> TokenProvider:
        """Signs fresh tokens with a shared access key, renewing them before expiry."""
        return SharedAccessKeyTokenProvider(key_name, key, ttl=ttl, clock=clock)

    @staticmethod
    def client_credentials(token_endpoint: str | None = None, **options: Any) -> TokenProvider:
        """JWTs from an identity provider by the OAuth 2.0 client-credentials flow
        (``issuer=`` or ``token_endpoint``, ``client_id``, ``client_secret``, ``scope`` or
        ``resource``, ``proxy``): see :mod:`bindings.oauth_tokens`."""
        from bindings.oauth_tokens import ClientCredentialsTokenProvider

        return ClientCredentialsTokenProvider(token_endpoint, **options)

    @staticmethod
    def shared_access_signature(token: str) -> TokenProvider:
        """Always presents this one pre-made token (it is never renewed)."""
        return FixedTokenProvider(token)


class SharedAccessKeyTokenProvider(TokenProvider):
    """Makes tokens from a key; renews when less than a fifth of the lifetime is left."""

    def __init__(
        self, key_name: str, key: str, *, ttl: float, clock: Callable[[], float]
    ) -> None:
        if ttl < 60:
            raise ValueError("token ttl must be at least 60 seconds")
        self._key_name, self._key, self._ttl, self._clock = key_name, key, ttl, clock
        self._cache: dict[str, SecurityToken] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SharedAccessKeyTokenProvider(key_name={self._key_name!r})"

    def get_token(self, audience: str) -> SecurityToken:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(audience)
            if cached is None or cached.expires_within(self._ttl / 5, now):
                text = create_token(audience, self._key_name, self._key, ttl=self._ttl, now=now)
                cached = SecurityToken(text, float(SasToken.parse(text).expiry))
                self._cache[audience] = cached
            return cached


class FixedTokenProvider(TokenProvider):
    """A single pre-made token, e.g. handed out by an administrator."""

    def __init__(self, token: str) -> None:
        self._token = SecurityToken(token, float(SasToken.parse(token).expiry))

    def __repr__(self) -> str:
        return "FixedTokenProvider()"

    def get_token(self, audience: str) -> SecurityToken:
        return self._token
