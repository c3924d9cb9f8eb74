"""The identity providers' signing keys: fetched, cached, refreshed on an unknown ``kid``.

:class:`JwksCache` is the :class:`relay.jwt_tokens.KeySource` of a relay with
``[[identity]]`` providers. It holds each issuer's keys (``kid`` -> key); the
verifier only reads them. When a token names a ``kid`` the cache lacks, the verifier
calls :meth:`JwksCache.wanted`, which starts one fetch in the relay's loop, unless
one is under way or the last one ended less than ``refresh_floor`` seconds ago (so a
flood of tokens with made-up ``kid`` values costs the provider one request per floor).
No request waits for a fetch: the one that asked is answered 503 (retry), and the
fetch replaces the key set when it ends. A failed fetch keeps the keys there were.

A fetch (through HTTPS_PROXY when the environment names one) reads the provider's OIDC discovery document for its ``jwks_uri`` (unless
configured), then the JWKS; each answer is bounded (64 KiB) and timed (10 s). Keys
that are not public signing keys of an asymmetric type (RSA, EC, OKP) are skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt

from hc.sas import SasVerifier
from relay.identity import IdentityProvider
from relay.jwt_tokens import JwtVerifier, TokenVerifier
from relay.namespace import NamespaceConfig

__all__ = ["JwksCache", "close_keys", "parse_jwks", "prime_keys", "verifier_for"]

log = logging.getLogger("relay.jwks")

#: The largest discovery document or JWKS read.
MAX_DOCUMENT = 64 * 1024
#: Seconds one fetch (both requests) may take.
FETCH_TIMEOUT = 10.0
_ASYMMETRIC = frozenset({"RSA", "EC", "OKP"})


def parse_jwks(document: object) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document, by ``kid`` (bad keys are skipped)."""
    keys: dict[str, jwt.PyJWK] = {}
    items = document.get("keys") if isinstance(document, dict) else None
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or item.get("kty") not in _ASYMMETRIC:
            continue
        if item.get("use", "sig") != "sig" or "d" in item or not isinstance(item.get("kid"), str):
            continue  # an encryption key, a private key (never publish those), no kid
        try:
            keys[item["kid"]] = jwt.PyJWK(item)
        except jwt.PyJWTError:
            continue
    return keys


@dataclass
class _Issuer:
    provider: IdentityProvider
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    fetch: asyncio.Task[None] | None = None


class JwksCache:
    """Each configured issuer's keys, fetched on demand (see the module docstring).

    Args:
        providers: the issuers.
        monotonic: the clock the refresh floor is measured with.
    """

    def __init__(self, providers: Iterable[IdentityProvider],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._issuers = {provider.issuer: _Issuer(provider) for provider in providers}
        self._monotonic = monotonic

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(self._issuers)

    def key(self, issuer: str, kid: str) -> jwt.PyJWK | None:
        entry = self._issuers.get(issuer)
        return entry.keys.get(kid) if entry is not None else None

    def wanted(self, issuer: str) -> bool:
        entry = self._issuers.get(issuer)
        if entry is None:
            return False
        if entry.fetch is not None and not entry.fetch.done():
            return True
        if self._monotonic() - entry.fetched_at < entry.provider.refresh_floor:
            return False
        entry.fetch = asyncio.get_running_loop().create_task(self._fetch(entry))
        return True

    async def refresh(self, issuer: str) -> None:
        """Fetch ``issuer``'s keys now (or wait for the fetch under way)."""
        entry = self._issuers[issuer]
        if entry.fetch is None or entry.fetch.done():
            entry.fetch = asyncio.get_running_loop().create_task(self._fetch(entry))
        await asyncio.shield(entry.fetch)

    async def close(self) -> None:
        """Cancel fetches under way (the relay is stopping)."""
        tasks = [entry.fetch for entry in self._issuers.values() if entry.fetch and not entry.fetch.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _fetch(self, entry: _Issuer) -> None:
        provider = entry.provider
        try:
            async with asyncio.timeout(FETCH_TIMEOUT), aiohttp.ClientSession(trust_env=True) as http:
                uri = provider.jwks_uri or _jwks_uri(await _json(http, provider.discovery_url))
                keys = parse_jwks(await _json(http, uri))
        except (OSError, TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("identity provider %s: cannot fetch its signing keys: %s",
                        provider.issuer, exc or type(exc).__name__)
        else:
            added = sorted(set(keys) - set(entry.keys))
            entry.keys = keys
            log.info("identity provider %s: %d signing keys%s", provider.issuer, len(keys),
                     f" (new: {', '.join(added)[:200]})" if added and entry.fetched_at > float("-inf") else "")
        finally:
            entry.fetched_at = self._monotonic()


def verifier_for(config: NamespaceConfig, clock: Callable[[], float]) -> SasVerifier:
    """The relay's token verifier: SAS only, or SAS and the config's identity providers."""
    if not config.identities:
        return SasVerifier(clock)
    keys = JwksCache(config.identities)
    return TokenVerifier(clock, JwtVerifier(config.identities, keys, clock))


def prime_keys(verifier: SasVerifier) -> None:
    """Start fetching every provider's keys (at the relay's start; nobody waits for it)."""
    keys = _cache_of(verifier)
    if keys is not None:
        for issuer in keys.issuers:
            keys.wanted(issuer)


async def close_keys(verifier: SasVerifier) -> None:
    """Cancel the key fetches under way (at the relay's stop)."""
    keys = _cache_of(verifier)
    if keys is not None:
        await keys.close()


def _cache_of(verifier: SasVerifier) -> JwksCache | None:
    if isinstance(verifier, TokenVerifier) and verifier.jwt is not None:
        keys = verifier.jwt.keys
        return keys if isinstance(keys, JwksCache) else None
    return None


async def _json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, allow_redirects=False) as answer:
        if answer.status != 200:
            raise ValueError(f"{url} answered HTTP {answer.status}")
        body = await answer.content.read(MAX_DOCUMENT + 1)
        if len(body) > MAX_DOCUMENT:
            raise ValueError(f"{url} answered more than {MAX_DOCUMENT} bytes")
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{url} did not answer JSON") from exc


def _jwks_uri(discovery: object) -> str:
    uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
    if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
        raise ValueError("the discovery document has no jwks_uri")
    return uri
