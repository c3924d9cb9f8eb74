"""OAuth 2.0 client credentials (RFC 6749 §4.4): the request, the answer, small HTTP. No I/O.

A listener or sender whose company uses an identity provider (Microsoft Entra ID,
Keycloak, any OpenID provider) gets its relay token from the provider's token
endpoint instead of signing a SAS token::

    POST /oauth2/v2.0/token HTTP/1.1
    Authorization: Basic base64(client_id:client_secret)      (client_secret_basic)
    Content-Type: application/x-www-form-urlencoded

    grant_type=client_credentials&scope=https%3A%2F%2Frelay.azure.net%2F.default

    -> {"access_token": "eyJ...", "token_type": "Bearer", "expires_in": 3599}

:mod:`hc.asyncio.oauth` sends these over a socket (through a proxy too) and caches
the token. This module builds the requests and reads the answers: HTTP/1.1 with
``Connection: close``, a body of at most :data:`MAX_ANSWER` bytes.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from hc.exceptions import HcError

__all__ = [
    "JWT_BEARER",
    "MAX_ANSWER",
    "ClientCredentials",
    "HttpAnswer",
    "OAuthError",
    "discovery_url",
    "http_request",
    "parse_answer",
    "read_discovery",
    "read_token",
]

#: The client assertion type of ``private_key_jwt`` (RFC 7523 §2.2).
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The largest answer read from a token or discovery endpoint.
MAX_ANSWER = 64 * 1024


class OAuthError(HcError):
    """The identity provider refused (its ``error`` and description; ``status`` is its
    HTTP status) or answered nonsense (``status`` 502)."""

    status = 502


@dataclass(frozen=True)
class ClientCredentials:
    """Who asks for a token, and for what.

    The client proves who it is with a secret (``client_secret_basic``) or with a
    private key (``private_key_jwt``, RFC 7523: a short-lived JWT it signs, whose
    audience is the token endpoint; the provider holds the public key or certificate).

    Attributes:
        client_id: the application's registration.
        client_secret: its secret (stays out of repr); or
        private_key: its RSA or EC private key (a ``cryptography`` key), with
        key_id: the ``kid`` the provider knows the public key by.
        scope: e.g. ``https://relay.azure.net/.default`` (Entra ID); None: none sent.
        resource: an RFC 8707 resource indicator (the token's audience); None: none sent.
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None
    resource: str | None = None
    private_key: Any = field(default=None, repr=False)
    key_id: str | None = None

    def __post_init__(self) -> None:
        if (self.client_secret is None) == (self.private_key is None):
            raise ValueError("give the client a secret or a private key, one of them")

    def form(self, endpoint: str = "", now: float = 0.0) -> bytes:
        """The token request's body (with the signed assertion for a private key)."""
        fields = [("grant_type", "client_credentials")]
        if self.scope:
            fields.append(("scope", self.scope))
        if self.resource:
            fields.append(("resource", self.resource))
        if self.private_key is not None:
            fields += [("client_id", self.client_id), ("client_assertion_type", JWT_BEARER),
                       ("client_assertion", self.assertion(endpoint, now))]
        return urlencode(fields).encode("ascii")

    def headers(self) -> list[tuple[str, str]]:
        """The token request's headers (``Authorization: Basic`` for a secret)."""
        headers = [("Content-Type", "application/x-www-form-urlencoded")]
        if self.client_secret is not None:
            headers.insert(0, ("Authorization", self.authorization()))
        return headers

    def authorization(self) -> str:
        """``client_secret_basic``: both parts form-encoded first (RFC 6749 §2.3.1)."""
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret or '', safe='')}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    def assertion(self, endpoint: str, now: float) -> str:
        """The ``private_key_jwt`` client assertion for ``endpoint``, valid five minutes."""
        algorithm = "RS256" if isinstance(self.private_key, rsa.RSAPrivateKey) else "ES256"
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": endpoint,
                  "jti": secrets.token_urlsafe(16), "iat": int(now), "exp": int(now) + 300}
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self.private_key, algorithm=algorithm, headers=headers)


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def http_request(method: str, url: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """One HTTP/1.1 request with ``Connection: close`` (the answer ends at end of file)."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}",
             "Connection: close", "Accept: application/json", f"Content-Length: {len(body)}"]
    for name, value in headers:
        if any(c in f"{name}{value}" for c in "\r\n"):
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes


def parse_answer(data: bytes) -> HttpAnswer:
    """An HTTP/1.x answer read to end of file (Content-Length or chunked body).

    Raises:
        OAuthError: not an HTTP answer, or over :data:`MAX_ANSWER`.
    """
    if len(data) > MAX_ANSWER:
        raise OAuthError(f"the answer is over {MAX_ANSWER} bytes")
    head, separator, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    words = status_line.split(b" ", 2)
    if not separator or len(words) < 2 or not words[0].startswith(b"HTTP/1.") or not words[1].isdigit():
        raise OAuthError("the answer is not HTTP/1")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get(b"transfer-encoding") == b"chunked":
        body = _dechunk(body)
    elif (length := headers.get(b"content-length", b"")).isdigit():
        body = body[: int(length)]
    return HttpAnswer(int(words[1]), body)


def _dechunk(body: bytes) -> bytes:
    out, rest = bytearray(), body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError as exc:
            raise OAuthError("a broken chunked body") from exc
        if size == 0:
            return bytes(out)
        out += rest[:size]
        rest = rest[size + 2:]


def _json(answer: HttpAnswer, what: str) -> dict[str, object]:
    try:
        document = json.loads(answer.body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise OAuthError(f"the {what} answered HTTP {answer.status} without JSON") from exc
    if not isinstance(document, dict):
        raise OAuthError(f"the {what} answered JSON that is not an object")
    return document


def read_discovery(answer: HttpAnswer) -> str:
    """The token endpoint of an OpenID discovery document."""
    if answer.status != 200:
        raise OAuthError(f"the discovery document answered HTTP {answer.status}")
    endpoint = _json(answer, "discovery document").get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        raise OAuthError("the discovery document has no token_endpoint")
    return endpoint


def read_token(answer: HttpAnswer) -> tuple[str, float]:
    """(access token, seconds it lasts) from a token endpoint's answer.

    Raises:
        OAuthError: the provider's error (``invalid_client``...) or a malformed answer.
    """
    document = _json(answer, "token endpoint")
    if answer.status != 200:
        error = str(document.get("error", ""))[:100]
        detail = str(document.get("error_description", ""))[:300]
        raise OAuthError(f"the token endpoint refused: HTTP {answer.status} {error}: {detail}".rstrip(": "),
                         status=answer.status)
    token, lasts = document.get("access_token"), document.get("expires_in", 3600)
    if not isinstance(token, str) or not token or any(c.isspace() for c in token):
        raise OAuthError("the token endpoint answered no access_token")
    if isinstance(lasts, str) and lasts.isdigit():
        lasts = int(lasts)  # Entra's v1 endpoint sends a string
    if not isinstance(lasts, int | float) or isinstance(lasts, bool) or lasts <= 0:
        raise OAuthError("the token endpoint answered no valid expires_in")
    return token, float(lasts)
