"""The bindings' exception tree.

One root per package (the relay's own errors live in ``relay.exceptions``)::

    BindingError                       root of everything raised by ``bindings``
    └── ConfigurationError             bad settings: connection string, address, binding options

Errors from other libraries (aiohttp, websockets, zeep) are translated at the
boundary with ``raise ... from exc``.  Add new classes under the branch they
belong to and extend the drawing above.
"""

from __future__ import annotations

__all__ = ["BindingError", "ConfigurationError"]


class BindingError(Exception):
    """Root of the bindings' errors."""


class ConfigurationError(BindingError):
    """Settings the bindings cannot work with; the message says which and why.

    Messages never contain keys or tokens.
    """
