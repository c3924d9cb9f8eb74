"""An entity's address: ``sb://``, ``http(s)://`` or ``ws(s)://`` ``HOST[:PORT]/ENTITY``.

``sb://`` means TLS (port 443) unless the host is loopback, as in connection strings.
No I/O: the SDK (``hc.asyncio``) and the bindings' ``RelayAddress`` build their URLs here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

__all__ = ["EntityAddress", "is_loopback", "netloc"]

_TLS = {"https": True, "wss": True, "http": False, "ws": False}


@dataclass(frozen=True)
class EntityAddress:
    """The relay's origin and one entity on it."""

    host: str
    port: int
    tls: bool
    entity: str

    @classmethod
    def parse(cls, address: str) -> EntityAddress:
        """Parse an entity URL.

        Raises:
            ValueError: not such a URL, or it names no entity.
        """
        try:
            parts = urlsplit(address.strip())
            scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
        except ValueError as exc:  # a bad port or IPv6 literal
            raise ValueError(f"{address!r} is not a valid URL ({exc})") from None
        if scheme not in (*_TLS, "sb") or not host:
            raise ValueError(f"{address!r} is not an entity address (sb://HOST[:PORT]/ENTITY)")
        entity = unquote(parts.path).strip("/")
        if not entity or parts.query or parts.fragment:
            raise ValueError(f"{address!r} must name an entity path and nothing else")
        tls = _TLS[scheme] if scheme in _TLS else not is_loopback(host)
        return cls(host, port or (443 if tls else 80), tls, entity)

    @property
    def _netloc(self) -> str:
        return netloc(self.host, self.port)

    @property
    def http_base(self) -> str:
        """``http[s]://host:port``: the relay's public origin."""
        return f"{'https' if self.tls else 'http'}://{self._netloc}"

    @property
    def ws_base(self) -> str:
        """``ws[s]://host:port``."""
        return f"{'wss' if self.tls else 'ws'}://{self._netloc}"

    @property
    def audience(self) -> str:
        """The URI tokens are signed for: ``http[s]://host:port/entity``."""
        return f"{self.http_base}/{quote(self.entity, safe='/')}"

    def url(self, action: str, tracking_id: str) -> str:
        """``ws[s]://host:port/$hc/entity?sb-hc-action=ACTION&sb-hc-id=ID``."""
        scheme = "wss" if self.tls else "ws"
        return (f"{scheme}://{self._netloc}/$hc/{quote(self.entity, safe='/')}"
                f"?sb-hc-action={action}&sb-hc-id={quote(tracking_id, safe='')}")


def netloc(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``: where ``sb://`` means no TLS."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
