"""JWTs from identity providers, wherever a SAS token is accepted. No I/O.

A token is told apart by its form: ``SharedAccessSignature sr=...`` is SAS
(:mod:`hc.sas`); three base64url parts starting ``eyJ`` (optionally after
``Bearer ``) is a JWT. :class:`TokenVerifier` is the relay's one verifier: SAS as
before, JWTs by :class:`JwtVerifier`, which checks, in this order:

1. the header: ``alg`` must be an asymmetric algorithm (``none`` and ``HS*`` are refused
   before any key is looked at);
2. ``iss`` names a configured :class:`~relay.identity.IdentityProvider`;
3. ``kid`` names one of its keys, of the ``alg``'s key type. An unknown ``kid`` asks
   the key source for a fetch (:mod:`relay.jwks` does it, at most once per
   ``refresh_floor``): while one is under way the answer is 503 (retry), after it 401;
4. the signature, ``aud`` (one of the provider's audiences), ``exp`` and ``nbf`` (with
   the provider's clock skew, against the relay's clock);
5. the rights the token's roles give on the target (:func:`relay.identity.rights_for`).

Verified tokens are cached by their text until they expire, so a sender repeating
its token costs a dict look-up, as with SAS.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import jwt

from hc.entities import Rights
from hc.exceptions import AccessDenied, MalformedToken, TokenRejected
from hc.sas import Grant, KeyRule, Resource, SasVerifier
from relay.exceptions import KeysUnavailable
from relay.identity import ASYMMETRIC_ALGORITHMS, IdentityProvider, rights_for

__all__ = ["JwtVerifier", "KeySource", "TokenVerifier", "looks_like_jwt"]

_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_BEARER = "Bearer "
#: The longest JWT looked at (Entra tokens with many groups run to a few KiB).
MAX_JWT_LENGTH = 16 * 1024


def looks_like_jwt(text: str) -> bool:
    """True for ``[Bearer ]eyJ...x.y.z`` (a JWS in compact form), without decoding it."""
    text = text.removeprefix(_BEARER)
    return text.startswith("eyJ") and text.count(".") == 2


class KeySource(Protocol):
    """Where verification keys come from (:class:`relay.jwks.JwksCache`)."""

    def key(self, issuer: str, kid: str) -> jwt.PyJWK | None:
        """The issuer's key ``kid``, if known now."""

    def wanted(self, issuer: str) -> bool:
        """A key of ``issuer`` is unknown: start a fetch if the floor allows one.
        True while a fetch is started or under way (the caller should retry)."""


class JwtVerifier:
    """Verifies JWTs of the configured providers against keys from ``keys``.

    Args:
        providers: the accepted issuers.
        keys: their verification keys.
        clock: the relay's wall clock (unix seconds) for ``exp`` and ``nbf``.
        cache_size: verified tokens remembered.
    """

    def __init__(self, providers: Iterable[IdentityProvider], keys: KeySource,
                 clock: Callable[[], float] = time.time, cache_size: int = 1024) -> None:
        self.providers = {provider.issuer: provider for provider in providers}
        self.keys, self._clock, self._cache_size = keys, clock, cache_size
        self._verified: OrderedDict[str, tuple[IdentityProvider, dict[str, Any], int]] = OrderedDict()

    def verify(self, text: str, target: Resource, needed: Rights) -> Grant:
        """Check ``text`` grants ``needed`` on ``target``.

        Raises:
            MalformedToken: not a decodable JWT.
            TokenRejected: wrong algorithm, issuer, key, signature, audience, expired
                or not yet valid.
            AccessDenied: its roles do not give ``needed`` on the target.
            KeysUnavailable: its key is unknown and being fetched (retry).
        """
        token = text.removeprefix(_BEARER)
        known = self._verified.get(token)
        if known is not None:
            provider, claims, expiry = known
            self._check_times(claims, provider)
        else:
            provider, claims = self._authenticate(token)
            expiry = int(claims["exp"])
            self._remember(token, provider, claims, expiry)
        path = target.path.strip("/")
        rights = rights_for(claims, provider, path)
        if not rights.grants(needed):
            who = claims.get("sub", "?")
            raise AccessDenied(f"the roles of {str(who)[:80]!r} do not give "
                               f"{(needed.name or '').capitalize()} on /{path}")
        return Grant(f"{provider.issuer} {str(claims.get('sub', ''))[:80]}", rights, target, expiry)

    def _authenticate(self, token: str) -> tuple[IdentityProvider, dict[str, Any]]:
        if len(token) > MAX_JWT_LENGTH:
            raise MalformedToken(f"token is longer than {MAX_JWT_LENGTH} characters")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise MalformedToken(f"not a valid JWT: {exc}") from exc
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise TokenRejected(f"JWT algorithm {str(alg)[:20]!r} is not accepted (asymmetric signatures only)")
        issuer = unverified.get("iss")
        provider = self.providers.get(issuer) if isinstance(issuer, str) else None
        if provider is None:
            raise TokenRejected(f"JWT issuer {str(issuer)[:120]!r} is not one this relay trusts")
        key = self._key(provider, header.get("kid"), alg)
        claims = self._decode(token, key, alg, provider)
        self._check_times(claims, provider)
        return provider, claims

    def _key(self, provider: IdentityProvider, kid: object, alg: str) -> jwt.PyJWK:
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("JWT has no key id (kid)")
        key = self.keys.key(provider.issuer, kid)
        if key is None:
            if self.keys.wanted(provider.issuer):
                raise KeysUnavailable(f"fetching the signing keys of {provider.issuer}; retry shortly")
            raise TokenRejected(f"JWT is signed by a key {provider.issuer} does not publish ({kid[:60]!r})")
        if key.key_type != _KEY_TYPES.get(alg[:2]):
            raise TokenRejected(f"JWT algorithm {alg} does not fit key {kid[:60]!r} ({key.key_type})")
        return key

    def _decode(self, token: str, key: jwt.PyJWK, alg: str, provider: IdentityProvider) -> dict[str, Any]:
        try:
            return jwt.decode(
                token, key.key, algorithms=[alg], audience=list(provider.audiences),
                issuer=provider.issuer,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected(f"JWT audience is not this relay's ({exc})") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("JWT signature does not verify") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"JWT lacks a claim: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"JWT does not verify: {exc}") from exc

    def _check_times(self, claims: Mapping[str, Any], provider: IdentityProvider) -> None:
        now, skew = self._clock(), provider.clock_skew
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise TokenRejected("JWT exp is not a number")
        if exp + skew <= now:
            raise TokenRejected("JWT has expired")
        if nbf is not None:
            if not isinstance(nbf, int | float) or isinstance(nbf, bool):
                raise TokenRejected("JWT nbf is not a number")
            if nbf - skew > now:
                raise TokenRejected("JWT is not valid yet (nbf)")

    def _remember(self, token: str, provider: IdentityProvider, claims: dict[str, Any], expiry: int) -> None:
        self._verified[token] = (provider, claims, expiry)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)


class TokenVerifier(SasVerifier):
    """The relay's verifier: SAS tokens as :class:`hc.sas.SasVerifier` does, JWTs by
    ``jwt`` (when identity providers are configured; else a JWT is refused as SAS)."""

    def __init__(self, clock: Callable[[], float] = time.time, jwt_verifier: JwtVerifier | None = None,
                 cache_size: int = 4096) -> None:
        super().__init__(clock, cache_size)
        self.jwt = jwt_verifier

    def verify(self, text: str, target: Resource, needed: Rights, rules: Iterable[KeyRule]) -> Grant:
        if self.jwt is not None and not text.startswith("SharedAccessSignature") and looks_like_jwt(text):
            return self.jwt.verify(text, target, needed)
        return super().verify(text, target, needed, rules)
