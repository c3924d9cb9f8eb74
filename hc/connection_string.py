"""Relay connection strings in Azure's format. No I/O.

::

    Endpoint=sb://HOST[:PORT]/;SharedAccessKeyName=NAME;SharedAccessKey=KEY[;EntityPath=PATH][;UseTls=true|false]

Key names are case-insensitive and may come in any order; values may contain
``=`` (base64 keys end with it) but not ``;``.  ``SharedAccessSignature=TOKEN``
replaces the name/key pair when an administrator hands out a ready-made token.

TLS: an explicit ``UseTls`` wins.  Otherwise ``https://`` means TLS, ``http://``
means none, and ``sb://`` (Azure's scheme) means TLS except on a loopback host
(``127.0.0.0/8``, ``localhost``, ``::1``), so that the connection string a local
development relay prints works as is::

    >>> cs = ConnectionString.parse(
    ...     "Endpoint=sb://127.0.0.1:9350/;SharedAccessKeyName=Root;SharedAccessKey=abc")
    >>> cs.http_base, cs.with_entity("payroll").entity_path
    ('http://127.0.0.1:9350', 'payroll')

``str()`` gives the connection string back, key included; ``repr()`` never shows
the key or the signature.  Reading one from the environment is the bindings'
business (``bindings.environment``): this module never looks at ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import SplitResult, urlsplit

from hc.address import is_loopback, netloc
from hc.exceptions import InvalidConnectionString, MalformedToken
from hc.sas import SasToken

__all__ = ["ConnectionString"]

_ENDPOINT = "Endpoint"
_KEY_NAME = "SharedAccessKeyName"
_KEY = "SharedAccessKey"
_SIGNATURE = "SharedAccessSignature"
_ENTITY_PATH = "EntityPath"
_USE_TLS = "UseTls"
_NAMES = {n.lower(): n for n in (_ENDPOINT, _KEY_NAME, _KEY, _SIGNATURE, _ENTITY_PATH, _USE_TLS)}
_SCHEMES = ("sb", "http", "https")
_BAD_VALUE_CHARS = re.compile(r"[;\x00-\x1f\x7f]")
_BAD_PATH_CHARS = re.compile(r"[;?#\s\x00-\x1f\x7f]")


class _Endpoint(NamedTuple):
    scheme: str
    host: str
    port: int | None


@dataclass(frozen=True)
class ConnectionString:
    """A parsed connection string; construct with :meth:`parse` or directly.

    Attributes:
        endpoint: the namespace address as written, e.g. ``sb://relay.example.com/``.
        key_name: ``SharedAccessKeyName``.
        key: ``SharedAccessKey`` (never shown by ``repr``).
        signature: ``SharedAccessSignature``, a ready-made token (never shown by ``repr``).
        entity_path: ``EntityPath`` without leading or trailing ``/``, or None.
        explicit_use_tls: the ``UseTls`` value, or None when absent.

    Raises:
        InvalidConnectionString: on any invalid part; the message never contains secrets.
    """

    endpoint: str
    key_name: str | None = None
    key: str | None = field(default=None, repr=False)
    signature: str | None = field(default=None, repr=False)
    entity_path: str | None = None
    explicit_use_tls: bool | None = None

    def __post_init__(self) -> None:
        self._split_endpoint()
        for label, value in self._text_fields():
            if value is not None and (not value or _BAD_VALUE_CHARS.search(value)):
                raise InvalidConnectionString(
                    f"{label} must be non-empty, without ';' or control characters"
                )
        self._check_credentials()
        if self.entity_path is not None:
            path = self.entity_path.strip("/")
            if not path or _BAD_PATH_CHARS.search(path) or "//" in path:
                raise InvalidConnectionString(
                    f"{_ENTITY_PATH} {self.entity_path!r} is not a valid entity path"
                )
            object.__setattr__(self, "entity_path", path)

    @classmethod
    def parse(cls, text: str) -> ConnectionString:
        """Parse ``Name=Value;...`` text.

        Args:
            text: the connection string.

        Returns:
            The parsed connection string.

        Raises:
            InvalidConnectionString: unknown, duplicate, empty or missing parts, a bad
                endpoint, or an incomplete credential.
        """
        values: dict[str, str] = {}
        for position, part in enumerate(text.split(";"), start=1):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            if not sep:  # do not echo the part: it may be a piece of a key
                raise InvalidConnectionString(f"connection string part {position} is not Name=Value")
            canonical = _NAMES.get(name.strip().lower())
            if canonical is None:
                raise InvalidConnectionString(f"unknown connection string key {name.strip()[:40]!r}")
            if canonical in values:
                raise InvalidConnectionString(f"connection string has {canonical} twice")
            if not value.strip():
                raise InvalidConnectionString(f"connection string {canonical} is empty")
            values[canonical] = value.strip()
        if _ENDPOINT not in values:
            raise InvalidConnectionString("connection string lacks Endpoint=sb://HOST[:PORT]/")
        return cls(
            endpoint=values[_ENDPOINT],
            key_name=values.get(_KEY_NAME),
            key=values.get(_KEY),
            signature=values.get(_SIGNATURE),
            entity_path=values.get(_ENTITY_PATH),
            explicit_use_tls=_parse_bool(values[_USE_TLS]) if _USE_TLS in values else None,
        )

    def __str__(self) -> str:
        parts = [(_ENDPOINT, self.endpoint), (_KEY_NAME, self.key_name), (_KEY, self.key)]
        parts += [(_SIGNATURE, self.signature), (_ENTITY_PATH, self.entity_path)]
        if self.explicit_use_tls is not None:
            parts.append((_USE_TLS, "true" if self.explicit_use_tls else "false"))
        return ";".join(f"{name}={value}" for name, value in parts if value is not None)

    @property
    def host(self) -> str:
        """The relay host name or IP address (lower-cased, IPv6 without brackets)."""
        return self._split_endpoint().host

    @property
    def use_tls(self) -> bool:
        """Whether to use https/wss (see the module docstring for the rule)."""
        if self.explicit_use_tls is not None:
            return self.explicit_use_tls
        scheme = self._split_endpoint().scheme
        if scheme == "sb":
            return not is_loopback(self.host)
        return scheme == "https"

    @property
    def port(self) -> int:
        """The endpoint's port, else 443 with TLS and 80 without."""
        port = self._split_endpoint().port
        if port is not None:
            return port
        return 443 if self.use_tls else 80

    @property
    def http_base(self) -> str:
        """``http[s]://host:port`` with no trailing slash."""
        return f"{'https' if self.use_tls else 'http'}://{self._netloc}"

    @property
    def ws_base(self) -> str:
        """``ws[s]://host:port`` with no trailing slash."""
        return f"{'wss' if self.use_tls else 'ws'}://{self._netloc}"

    def audience(self, entity: str | None = None) -> str:
        """The URI a SAS token for ``entity`` is signed for: ``http://host[:port]/ENTITY``.

        The scheme is always ``http`` and the port is left out when it is the
        default one (443 with TLS, 80 without), as the .NET SDK does for Azure; the
        relay ignores both when matching (PROTOCOL.md §2).

        Args:
            entity: entity path; defaults to ``entity_path``, else the namespace root.
        """
        path = (entity if entity is not None else self.entity_path or "").strip("/")
        netloc = self._netloc
        if self.port == (443 if self.use_tls else 80):
            netloc = netloc.rpartition(":")[0]
        return f"http://{netloc}/{path}"

    def with_entity(self, path: str | None) -> ConnectionString:
        """A copy with ``EntityPath`` replaced (None removes it)."""
        return dataclasses.replace(self, entity_path=path)

    @property
    def _netloc(self) -> str:
        return netloc(self.host, self.port)

    def _text_fields(self) -> list[tuple[str, str | None]]:
        return [
            (_ENDPOINT, self.endpoint),
            (_KEY_NAME, self.key_name),
            (_KEY, self.key),
            (_SIGNATURE, self.signature),
        ]

    def _split_endpoint(self) -> _Endpoint:
        parts = _urlsplit(self.endpoint)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise InvalidConnectionString(
                f"{_ENDPOINT} {self.endpoint!r} must start with sb://, http:// or https://"
            )
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise InvalidConnectionString(f"{_ENDPOINT} {self.endpoint!r} has an invalid port") from None
        if not host or port == 0 or parts.username is not None:
            raise InvalidConnectionString(f"{_ENDPOINT} {self.endpoint!r} must be scheme://HOST[:PORT]/")
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise InvalidConnectionString(
                f"{_ENDPOINT} {self.endpoint!r} must be the namespace root;"
                f" put the entity in {_ENTITY_PATH}"
            )
        return _Endpoint(scheme, host, port)

    def _check_credentials(self) -> None:
        if self.signature is not None:
            if self.key_name is not None or self.key is not None:
                raise InvalidConnectionString(
                    f"use either {_SIGNATURE} or {_KEY_NAME} and {_KEY}, not both"
                )
            try:
                SasToken.parse(self.signature)
            except MalformedToken as exc:
                raise InvalidConnectionString(f"{_SIGNATURE} is not a valid SAS token: {exc}") from None
        elif self.key_name is None or self.key is None:
            raise InvalidConnectionString(
                f"connection string needs {_KEY_NAME} and {_KEY} (or {_SIGNATURE})"
            )


def _urlsplit(url: str) -> SplitResult:
    try:
        return urlsplit(url.strip())
    except ValueError:  # e.g. an unclosed '[' of an IPv6 address
        raise InvalidConnectionString(f"{_ENDPOINT} {url!r} is not a URL") from None


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise InvalidConnectionString(f"{_USE_TLS} must be true or false, not {text[:20]!r}")
    return lowered == "true"


