"""The bindings' exception tree.

One root per package (the relay's own errors live in ``relay.exceptions``)::

    BindingError                       root of everything raised by ``bindings``
    ├── ConfigurationError             bad settings: connection string, address, binding options
    └── RelayTransportError            a zeep client's request failed without a SOAP fault (WSDL
                                       fetch 401/404/502, JSON error, relay unreachable); also a
                                       ``zeep.exceptions.TransportError``, so it is defined in
                                       ``bindings.zeep_transport`` and imported from here lazily

Errors from other libraries (aiohttp, websockets, zeep) are translated at the
boundary with ``raise ... from exc``.  Add new classes under the branch they
belong to and extend the drawing above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bindings.zeep_transport import RelayTransportError

__all__ = ["BindingError", "ConfigurationError", "RelayTransportError"]


class BindingError(Exception):
    """Root of the bindings' errors."""


class ConfigurationError(BindingError):
    """Settings the bindings cannot work with; the message says which and why.

    Messages never contain keys or tokens.
    """


def __getattr__(name: str) -> Any:
    # RelayTransportError subclasses zeep's TransportError, and importing zeep costs
    # ~0.3 s: it lives with the zeep transport and is imported on first use, so
    # that the CLI and the hosting side stay light.
    if name == "RelayTransportError":
        from bindings.zeep_transport import RelayTransportError

        return RelayTransportError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
