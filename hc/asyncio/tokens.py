"""Token providers, as ``Microsoft.Azure.Relay.TokenProvider``: where a listener or a
client gets the SAS token it presents (PROTOCOL.md §2).

    provider = TokenProvider.create_shared_access_signature_token_provider("RootManageSharedAccessKey", key)
    token = await provider.get_token("http://127.0.0.1:9350/payroll", ttl=3600)
    token.token, token.expires_at

Tokens from a key are cached per audience and made afresh when less than a fifth
of their life is left; a pre-made signature is handed out as it is (never renewed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hc.sas import SasToken, create_token

__all__ = [
    "SecurityToken",
    "SharedAccessSignatureTokenProvider",
    "TokenProvider",
]

#: The token lifetime asked for when the caller does not say (.NET's default is one hour).
DEFAULT_TTL = 3600.0


@dataclass(frozen=True)
class SecurityToken:
    """A token's text (``SharedAccessSignature sr=...``) and its expiry in unix seconds."""

    token: str = field(repr=False)
    expires_at: float
    audience: str = ""


class TokenProvider:
    """Base class and factory; subclasses implement :meth:`get_token`."""

    async def get_token(self, audience: str, ttl: float = DEFAULT_TTL) -> SecurityToken:
        """A token valid for ``audience`` (the entity's http(s) URI) for about ``ttl`` seconds."""
        raise NotImplementedError

    @staticmethod
    def create_shared_access_signature_token_provider(
        key_name_or_signature: str, key: str | None = None
    ) -> SharedAccessSignatureTokenProvider:
        """``(key_name, key)`` signs fresh tokens; ``(signature)`` always hands out that token."""
        if key is None:
            return SharedAccessSignatureTokenProvider(signature=key_name_or_signature)
        return SharedAccessSignatureTokenProvider(key_name_or_signature, key)


class SharedAccessSignatureTokenProvider(TokenProvider):
    """Signs tokens with a shared access key, or hands out one pre-made token.

    Args:
        key_name: the SAS rule's name (e.g. ``RootManageSharedAccessKey``).
        key: the rule's key.
        signature: a pre-made token instead of a key (never renewed).
        clock: unix seconds (inject for tests).

    Raises:
        ValueError: neither a key nor a signature, or a signature that does not parse.
    """

    def __init__(
        self,
        key_name: str | None = None,
        key: str | None = None,
        *,
        signature: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if signature is None and (not key_name or key is None):
            raise ValueError("a token provider needs a key name and key, or a signature")
        self._key_name, self._key, self._clock = key_name, key, clock
        self._fixed = _parse(signature) if signature is not None else None
        self._cache: dict[tuple[str, float], SecurityToken] = {}

    def __repr__(self) -> str:
        if self._fixed is not None:
            return "SharedAccessSignatureTokenProvider(signature=...)"
        return f"SharedAccessSignatureTokenProvider(key_name={self._key_name!r})"

    async def get_token(self, audience: str, ttl: float = DEFAULT_TTL) -> SecurityToken:
        if self._fixed is not None:
            return self._fixed
        assert self._key_name is not None and self._key is not None
        now = self._clock()
        cached = self._cache.get((audience, ttl))
        if cached is None or cached.expires_at - now <= ttl / 5:
            text = create_token(audience, self._key_name, self._key, ttl=ttl, now=now)
            cached = SecurityToken(text, float(SasToken.parse(text).expiry), audience)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[(audience, ttl)] = cached
        return cached


def _parse(signature: str) -> SecurityToken:
    try:
        return SecurityToken(signature, float(SasToken.parse(signature).expiry))
    except Exception as exc:
        raise ValueError(f"not a SharedAccessSignature token: {exc}") from exc
