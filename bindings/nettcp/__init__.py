"""NetTcpRelayBinding: persistent duplex session channels with callbacks (docs/nettcp.md).

- :mod:`~bindings.nettcp.binding`: the binding and its modes;
- :mod:`~bindings.nettcp.framing` (pure): one SOAP 1.2 + WS-Addressing envelope per message;
- :mod:`~bindings.nettcp.calls` (pure): calls in flight by MessageID, flood control;
- :mod:`~bindings.nettcp.channel`: one session's message pump, on either end;
- :mod:`~bindings.nettcp.host`, :mod:`~bindings.nettcp.pipeline`, :mod:`~bindings.nettcp.session`:
  the service side (sessions, the Spyne pipeline, ``session_of(ctx)``);
- :mod:`~bindings.nettcp.client`, :mod:`~bindings.nettcp.zeep_nettcp`: the client side;
- :mod:`~bindings.nettcp.callbacks`: duplex callback contracts.

Only the binding is imported here (``import bindings`` stays light); ``session_of``,
``ServiceSession`` and the errors are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bindings.nettcp.binding import ConcurrencyMode, ConnectionMode, NetTcpRelayBinding

if TYPE_CHECKING:
    from bindings.nettcp.errors import (
        CallTimeout,
        DirectConnectionLost,
        SessionClosed,
        SessionOpenFailed,
    )
    from bindings.nettcp.session import ServiceSession, session_of

__all__ = [
    "CallTimeout",
    "ConcurrencyMode",
    "ConnectionMode",
    "DirectConnectionLost",
    "NetTcpRelayBinding",
    "ServiceSession",
    "SessionClosed",
    "SessionOpenFailed",
    "session_of",
]

_LAZY = {
    "CallTimeout": "bindings.nettcp.errors",
    "DirectConnectionLost": "bindings.nettcp.errors",
    "SessionClosed": "bindings.nettcp.errors",
    "SessionOpenFailed": "bindings.nettcp.errors",
    "ServiceSession": "bindings.nettcp.session",
    "session_of": "bindings.nettcp.session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bindings.nettcp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
