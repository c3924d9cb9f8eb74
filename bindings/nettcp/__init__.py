"""NetTcpRelayBinding: persistent duplex session channels with callbacks (docs/nettcp.md).

- :mod:`~bindings.nettcp.binding`: the binding and its modes;
- :mod:`~bindings.nettcp.framing` (pure): one SOAP 1.2 + WS-Addressing envelope per message;
- :mod:`~bindings.nettcp.calls` (pure): calls in flight by MessageID, flood control;
- :mod:`~bindings.nettcp.channel`: one session's message pump, on either end;
- :mod:`~bindings.nettcp.host`, :mod:`~bindings.nettcp.pipeline`, :mod:`~bindings.nettcp.session`:
  the service side (sessions, the Spyne pipeline, ``session_of(ctx)``);
- :mod:`~bindings.nettcp.client`, :mod:`~bindings.nettcp.zeep_nettcp`: the client side;
- :mod:`~bindings.nettcp.callbacks`: duplex callback contracts.

Only the binding is imported here (``import bindings`` stays light).
"""

from bindings.nettcp.binding import ConcurrencyMode, ConnectionMode, NetTcpRelayBinding

__all__ = ["ConcurrencyMode", "ConnectionMode", "NetTcpRelayBinding"]
