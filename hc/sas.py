"""Shared Access Signature tokens: create, parse and verify (PROTOCOL.md §2). No I/O.

A token looks like::

    SharedAccessSignature sr=http%3A%2F%2Fhost%2Fpayroll&sig=<url-encoded base64>&se=1700000000&skn=Root

The signed string is the ``sr`` value *exactly as it appears in the token*
(still URL-encoded) + ``"\\n"`` + ``se``; the HMAC-SHA256 key is the UTF-8 bytes
of the key text (it looks like base64 but is not decoded).  Encoders differ in
hex case, so verification never re-encodes ``sr``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from hc.entities import Rights
from hc.exceptions import AccessDenied, MalformedToken, TokenRejected

__all__ = [
    "Grant",
    "KeyRule",
    "Resource",
    "SasToken",
    "SasVerifier",
    "create_token",
    "sign",
]

_PREFIX = "SharedAccessSignature "
_FIELDS = ("sr", "sig", "se", "skn")
_MAX_TOKEN_LENGTH = 4096


def sign(raw_resource: str, expiry: int, key: str) -> str:
    """Base64 HMAC-SHA256 of ``raw_resource + "\\n" + expiry`` keyed by the key's UTF-8 bytes."""
    message = f"{raw_resource}\n{expiry}".encode()
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def create_token(
    resource: str, key_name: str, key: str, *, ttl: float = 3600, now: float | None = None
) -> str:
    """A token for ``resource`` (e.g. ``http://host:9350/payroll``) valid for ``ttl`` seconds."""
    expiry = int((time.time() if now is None else now) + ttl)
    raw = quote(resource, safe="")
    sig = quote(sign(raw, expiry, key), safe="")
    return f"{_PREFIX}sr={raw}&sig={sig}&se={expiry}&skn={quote(key_name, safe='')}"


@dataclass(frozen=True)
class SasToken:
    """A parsed token; ``raw_resource`` is ``sr`` as sent, used for the signature."""

    raw_resource: str
    signature: str
    expiry: int
    key_name: str

    @classmethod
    def parse(cls, text: str) -> SasToken:
        """Parse the token text; fields may come in any order. Raises ``MalformedToken``."""
        if len(text) > _MAX_TOKEN_LENGTH:
            raise MalformedToken("SAS token is too long")
        if not text.startswith(_PREFIX):
            raise MalformedToken("token does not start with 'SharedAccessSignature '")
        fields: dict[str, str] = {}
        for part in text[len(_PREFIX) :].strip().split("&"):
            name, sep, value = part.partition("=")
            if not sep or name not in _FIELDS or name in fields or not value:
                raise MalformedToken(f"malformed SAS token field {name!r}")
            fields[name] = value
        missing = [f for f in _FIELDS if f not in fields]
        if missing:
            raise MalformedToken(f"SAS token lacks {', '.join(missing)}")
        if not (fields["se"].isascii() and fields["se"].isdigit()):  # not "²", "١"
            raise MalformedToken("SAS token expiry 'se' is not a number")
        return cls(fields["sr"], unquote(fields["sig"]), int(fields["se"]), unquote(fields["skn"]))

    @property
    def resource(self) -> Resource:
        return Resource.from_uri(unquote(self.raw_resource))

    def signature_matches(self, key: str) -> bool:
        expected = sign(self.raw_resource, self.expiry, key)
        return hmac.compare_digest(expected.encode(), self.signature.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Resource:
    """A token scope normalised for matching: scheme and port ignored, host lower-cased."""

    host: str
    path: str

    @classmethod
    def from_uri(cls, uri: str) -> Resource:
        """``sb://Host:9350/a/b/`` -> ``Resource("host", "/a/b")``; a bare host is accepted."""
        if "://" not in uri:
            uri = "//" + uri
        try:
            parts = urlsplit(uri)
            host = (parts.hostname or "").lower()
        except ValueError as exc:
            raise MalformedToken(f"malformed resource URI {uri!r}") from exc
        return cls(host, "/" + unquote(parts.path).strip("/"))

    def covers(self, other: Resource) -> bool:
        """True when this scope includes ``other`` (path prefix on ``/`` boundaries)."""
        if self.host != other.host:
            return False
        if self.path == "/" or self.path == other.path:
            return True
        return other.path.startswith(self.path + "/")


class KeyRule(Protocol):
    """What the verifier needs of a rule: a named key and the rights it grants.

    The relay's configured rules (``relay.namespace.SasRule``) are one such type;
    rules compare by value: a changed rule invalidates the caches.
    """

    @property
    def name(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def rights(self) -> Rights: ...


@dataclass(frozen=True)
class Grant:
    """What a verified token allows."""

    key_name: str
    rights: Rights
    resource: Resource
    expiry: int


class SasVerifier:
    """Verifies tokens against rules, with small caches of what was verified already.

    The first cache maps the token text to the rule it verified under, so a sender
    that repeats its token skips the HMAC until the token expires.  The second maps
    (token, target, right) to the grant, so a sender repeating a call skips the
    parsing and matching too: the per-request cost is two dict look-ups.  A rule
    change (a new key, other rights) invalidates entries of both because the rule is
    part of the cached value and must still be among the rules offered.
    """

    def __init__(self, clock: Callable[[], float] = time.time, cache_size: int = 4096) -> None:
        self._clock = clock
        self._cache: OrderedDict[str, tuple[SasToken, KeyRule]] = OrderedDict()
        self._grants: dict[tuple[str, str, str, int], tuple[Grant, KeyRule]] = {}
        self._cache_size = cache_size

    def verify(
        self, text: str, target: Resource, needed: Rights, rules: Iterable[KeyRule]
    ) -> Grant:
        """Check ``text`` grants ``needed`` on ``target``; raise ``TokenRejected``/``AccessDenied``

        A token that cannot be parsed raises ``MalformedToken``.."""
        rules = tuple(rules)
        # Plain strings and an int: hashing the Resource and the Rights would be three
        # Python calls (a dataclass's __hash__ and __eq__, an enum's __hash__) per request.
        key = (text, target.host, target.path, needed._value_)
        known = self._grants.get(key)
        if known is not None and known[1] in rules and known[0].expiry > self._clock():
            return known[0]
        token, rule = self._authenticate(text, rules)
        if token.expiry <= self._clock():
            raise TokenRejected("SAS token has expired")
        resource = token.resource
        if not resource.covers(target):
            raise AccessDenied(f"token is not valid for {target.path}")
        if not rule.rights.grants(needed):
            raise AccessDenied(f"rule {rule.name!r} lacks the {_right_name(needed)} right")
        grant = Grant(rule.name, rule.rights, resource, token.expiry)
        if len(self._grants) >= self._cache_size:
            del self._grants[next(iter(self._grants))]  # the oldest entry
        self._grants[key] = (grant, rule)
        return grant

    def verify_at(
        self, text: str, host: str, path: str, needed: Rights, rules: tuple[KeyRule, ...]
    ) -> Grant:
        """:meth:`verify` on ``Resource(host, path)`` (already normalised), which is made
        only when the grant is not cached: the relay asks this once per relayed request,
        and a Resource is a Python ``__init__`` each time.

        A cache hit answers as :meth:`verify` would; a miss is :meth:`verify` itself, so
        a subclass's ``verify`` (the relay's JWTs) still decides every token it has not
        seen: only SAS tokens that :meth:`verify` granted are in the cache.
        """
        known = self._grants.get((text, host, path, needed._value_))
        if known is not None and known[1] in rules and known[0].expiry > self._clock():
            return known[0]
        return self.verify(text, Resource(host, path), needed, rules)

    def _authenticate(self, text: str, rules: tuple[KeyRule, ...]) -> tuple[SasToken, KeyRule]:
        cached = self._cache.get(text)
        if cached is not None and cached[1] in rules:
            self._cache.move_to_end(text)
            return cached
        token = SasToken.parse(text)
        for rule in rules:
            if rule.name == token.key_name and token.signature_matches(rule.key):
                self._remember(text, token, rule)
                return token, rule
        if not any(rule.name == token.key_name for rule in rules):
            raise TokenRejected(f"unknown key name {token.key_name!r}")
        raise TokenRejected("SAS token signature does not match")

    def _remember(self, text: str, token: SasToken, rule: KeyRule) -> None:
        self._cache[text] = (token, rule)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _right_name(right: Rights) -> str:
    return (right.name or "required").capitalize()
