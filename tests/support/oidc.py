"""A real OpenID provider for tests: Panva's certified ``oidc-provider`` (npm), run by Node.

:class:`OidcProvider` starts ``interop_tests/oidc/provider.js`` on 127.0.0.1:0 with keys
and clients the test chooses, waits for its ``READY <issuer>`` line, and stops it by
PID. Clients use the client-credentials grant; their access tokens are JWTs for the
audience asked for (``resource``), with a ``roles`` claim when the client has roles::

    with OidcProvider(folder, clients={"sender-app": ["Sender"]}) as idp:
        token = idp.token("sender-app")                    # a JWT signed by idp.keys[0]
        idp.restart(keys=[new_key(), *idp.keys])           # key rotation, same issuer

:func:`mint` signs tokens of our own with any key (expired, not yet valid, unknown
key...), to try the relay's checks the provider would never break.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.procs import Child

__all__ = ["AUDIENCE", "OidcProvider", "SigningKey", "mint", "new_key", "oidc_unavailable"]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "interop_tests" / "oidc" / "provider.js"
AUDIENCE = "https://relay.test/"


def oidc_unavailable() -> str | None:
    """Why the provider cannot run here, or None."""
    if shutil.which("node") is None:
        return "needs Node.js (Debian package nodejs, in apt-packages.txt)"
    if not (SCRIPT.parent / "node_modules" / "oidc-provider").is_dir():
        return "needs the npm packages of interop_tests/oidc (make test runs npm ci there)"
    return None


@dataclass(frozen=True)
class SigningKey:
    """An RSA key with its ``kid``."""

    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private))
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}


def public_jwk(key: SigningKey) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.private.public_key()))
    return {**data, "kid": key.kid, "use": "sig", "alg": "RS256"}


def new_key(kid: str | None = None) -> SigningKey:
    return SigningKey(kid or f"k-{secrets.token_hex(4)}", rsa.generate_private_key(65537, 2048))


def mint(key: SigningKey, claims: dict[str, Any], *, alg: str = "RS256", kid: str | None = None) -> str:
    """A JWT signed by ``key`` (``kid`` overrides the header's key id)."""
    return jwt.encode(claims, key.private, algorithm=alg, headers={"kid": kid or key.kid})


def unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    """A JWT with ``header`` and no signature (``alg: none``)."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(claims)}."


class OidcProvider:
    """oidc-provider on 127.0.0.1 (see the module docstring).

    Args:
        folder: where its settings file and stderr go.
        clients: client id -> its roles; each gets the secret :meth:`secret` gives.
        keys: signing keys, the first one signs (default: one new key).
        ttl: seconds access tokens last.
        key_clients: client id -> (its roles, its key): clients that authenticate
            with a signed assertion (``private_key_jwt``) instead of a secret.
    """

    def __init__(self, folder: Path, clients: dict[str, list[str]], *,
                 keys: Sequence[SigningKey] = (), ttl: int = 600,
                 key_clients: dict[str, tuple[list[str], SigningKey]] | None = None) -> None:
        self.folder, self.clients, self.ttl = folder, clients, ttl
        self.key_clients = key_clients or {}
        self.keys = list(keys) or [new_key()]
        self.port = 0
        self.issuer = ""
        self._child: Child | None = None

    @staticmethod
    def secret(client_id: str) -> str:
        return f"{client_id}-secret-0123456789abcdef"

    def __enter__(self) -> Self:
        self._start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _start(self) -> None:
        settings = {
            "jwks": {"keys": [key.jwk() for key in self.keys]},
            "audience": AUDIENCE, "ttl": self.ttl,
            "clients": [{"client_id": cid, "client_secret": self.secret(cid), "roles": roles}
                        for cid, roles in self.clients.items()] + [
                {"client_id": cid, "roles": roles, "jwks": {"keys": [public_jwk(key)]}}
                for cid, (roles, key) in self.key_clients.items()],
        }
        path = self.folder / f"oidc-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(settings), "utf-8")
        argv = ["node", str(SCRIPT), str(path), *([str(self.port)] if self.port else [])]
        self._child = Child("oidc-provider", argv, self.folder, cwd=SCRIPT.parent)
        self.issuer = self._child.wait_for("READY ", 30).split()[-1]
        self.port = int(self.issuer.rsplit(":", 1)[-1])

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop(grace=5.0)
            self._child = None

    def restart(self, keys: Sequence[SigningKey]) -> None:
        """Stop and start again on the same port (the same issuer) with ``keys``."""
        self.stop()
        self.keys = list(keys)
        self._start()

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def token(self, client_id: str, *, resource: str | None = None) -> str:
        """An access token for ``client_id`` (client_credentials, client_secret_basic)."""
        form = "grant_type=client_credentials" + (
            f"&resource={urllib.request.quote(resource, safe='')}" if resource else "")
        pair = f"{client_id}:{self.secret(client_id)}".encode()
        request = urllib.request.Request(self.token_endpoint, data=form.encode(), headers={
            "Authorization": "Basic " + base64.b64encode(pair).decode(),
            "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(json.load(answer)["access_token"])

    def claims(self, **extra: Any) -> dict[str, Any]:
        """Claims like the provider's own, valid for ten minutes, plus ``extra``."""
        now = int(time.time())
        return {"iss": self.issuer, "aud": AUDIENCE, "sub": "minted", "iat": now, "exp": now + 600,
                **extra}
