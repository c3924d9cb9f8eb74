"""soap-relay's bindings: host SOAP services behind the relay and call them through it.

WCF relay binding names in Python manners (see DESIGN.md): ``RelayServiceHost``,
the ``*RelayBinding`` classes, ``TokenProvider``, ``relay_client``; connection
strings are the core's :class:`hc.connection_string.ConnectionString` (also exported
here), read from the environment by :mod:`bindings.settings`; errors in
:mod:`bindings.exceptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bindings.binding import (
    BasicHttpRelayBinding,
    EndToEndSecurityMode,
    NetEventRelayBinding,
    NetOnewayRelayBinding,
    ReaderQuotas,
    RelayBinding,
    WebHttpRelayBinding,
    WS2007HttpRelayBinding,
)
from bindings.nettcp.binding import ConcurrencyMode, ConnectionMode, NetTcpRelayBinding
from bindings.status import HostStatus
from bindings.tokens import TokenProvider
from hc.connection_string import ConnectionString

if TYPE_CHECKING:
    from bindings.host import RelayServiceHost
    from bindings.wssecurity import MessageSecurity
    from bindings.zeep_async import relay_async_client
    from bindings.zeep_transport import relay_client

__all__ = [
    "BasicHttpRelayBinding",
    "ConcurrencyMode",
    "ConnectionMode",
    "ConnectionString",
    "EndToEndSecurityMode",
    "HostStatus",
    "MessageSecurity",
    "NetEventRelayBinding",
    "NetOnewayRelayBinding",
    "NetTcpRelayBinding",
    "ReaderQuotas",
    "RelayBinding",
    "RelayServiceHost",
    "TokenProvider",
    "WS2007HttpRelayBinding",
    "WebHttpRelayBinding",
    "relay_async_client",
    "relay_client",
]

#: Imported on first use, so that ``import bindings`` (e.g. by the CLI) stays light:
#: the host pulls in Spyne and the WSGI machinery, the client zeep.
_LAZY = {
    "MessageSecurity": "bindings.wssecurity",
    "RelayServiceHost": "bindings.host",
    "relay_client": "bindings.zeep_transport",
    "relay_async_client": "bindings.zeep_async",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bindings' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
