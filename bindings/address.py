"""Where a relay host listens: the relay's origin and the entity path. No I/O.

A host is given its address the way WCF users write it::

    >>> a = RelayAddress.parse("sb://127.0.0.1:9350/payroll")
    >>> a.http_base, a.ws_base, a.entity_path, a.public_address
    ('http://127.0.0.1:9350', 'ws://127.0.0.1:9350', 'payroll', 'http://127.0.0.1:9350/payroll')

``http://`` means no TLS, ``https://`` TLS, and ``sb://`` TLS except on a loopback
host: the same rule as :attr:`hc.connection_string.ConnectionString.use_tls`,
so the address a development relay prints works as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from bindings.exceptions import ConfigurationError
from hc.address import EntityAddress
from hc.connection_string import ConnectionString

__all__ = ["RelayAddress"]

@dataclass(frozen=True)
class RelayAddress:
    """The relay's origin and one entity on it.

    Attributes:
        host: the relay host (IPv6 without brackets).
        port: the relay port.
        use_tls: https/wss rather than http/ws.
        entity_path: the entity, without leading or trailing ``/`` (may hold ``/``).
    """

    host: str
    port: int
    use_tls: bool
    entity_path: str

    @classmethod
    def parse(cls, address: str) -> RelayAddress:
        """Parse ``sb://``, ``http(s)://`` or ``ws(s)://`` ``HOST[:PORT]/ENTITY``.

        Raises:
            ConfigurationError: not such a URL, or no entity path.
        """
        try:
            parsed = EntityAddress.parse(address)
        except ValueError as exc:
            raise ConfigurationError(f"relay address: {exc}") from None
        return cls(parsed.host, parsed.port, parsed.tls, parsed.entity)

    @classmethod
    def from_connection_string(
        cls, connection_string: ConnectionString, entity: str | None = None
    ) -> RelayAddress:
        """The address of ``entity`` (default: the connection string's EntityPath).

        Raises:
            ConfigurationError: no entity given and the connection string has none.
        """
        path = (entity or connection_string.entity_path or "").strip("/")
        if not path:
            raise ConfigurationError("no entity path: give one or set EntityPath")
        return cls(connection_string.host, connection_string.port, connection_string.use_tls, path)

    @property
    def entity_address(self) -> EntityAddress:
        """The same address as the SDK (``hc.asyncio``) takes it."""
        return EntityAddress(self.host, self.port, self.use_tls, self.entity_path)

    @property
    def http_base(self) -> str:
        """``http[s]://host:port``: the relay's public origin."""
        return self.entity_address.http_base

    @property
    def ws_base(self) -> str:
        """``ws[s]://host:port``."""
        return self.entity_address.ws_base

    @property
    def quoted_path(self) -> str:
        """The entity path percent-encoded for a URL (``/`` kept)."""
        return quote(self.entity_path, safe="/")

    @property
    def public_address(self) -> str:
        """The address senders call, e.g. ``http://127.0.0.1:9350/payroll``."""
        return f"{self.http_base}/{self.quoted_path}"

    @property
    def audience(self) -> str:
        """The URI a listener token is signed for (PROTOCOL.md §2: scheme is ignored)."""
        return self.public_address

    @property
    def control_url(self) -> str:
        """``ws[s]://host:port/$hc/ENTITY`` without the query."""
        return f"{self.ws_base}/$hc/{self.quoted_path}"

