"""Where the bindings' relay settings come from: connection string text and the environment.

:class:`hc.connection_string.ConnectionString` parses Azure's format and raises the
core's ``InvalidConnectionString``; the bindings' public API promises
:class:`bindings.exceptions.ConfigurationError` for bad settings, so text from a
caller or from ``SOAPRELAY_CONNECTION_STRING`` is parsed here, at the boundary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bindings.exceptions import ConfigurationError
from hc.connection_string import ConnectionString
from hc.exceptions import InvalidConnectionString

__all__ = [
    "ENV_VAR",
    "connection_string_from_env",
    "default_connection_string",
    "parse_connection_string",
]

#: The environment variable that holds the default connection string.
ENV_VAR = "SOAPRELAY_CONNECTION_STRING"


def parse_connection_string(value: ConnectionString | str) -> ConnectionString:
    """``value`` parsed (a parsed one passes unchanged).

    Raises:
        ConfigurationError: the text is not a valid connection string (no secret shown).
    """
    if isinstance(value, ConnectionString):
        return value
    try:
        return ConnectionString.parse(value)
    except InvalidConnectionString as exc:
        raise ConfigurationError(str(exc)) from None


def connection_string_from_env(environ: Mapping[str, str] | None = None) -> ConnectionString:
    """Parse the ``SOAPRELAY_CONNECTION_STRING`` environment variable.

    Args:
        environ: the environment to read; ``os.environ`` by default.

    Raises:
        ConfigurationError: the variable is unset, empty or invalid.
    """
    text = (os.environ if environ is None else environ).get(ENV_VAR, "")
    if not text.strip():
        raise ConfigurationError(f"environment variable {ENV_VAR} is not set")
    return _parse_env(text)


def default_connection_string(
    http_base: str | None = None, environ: Mapping[str, str] | None = None
) -> ConnectionString | None:
    """``SOAPRELAY_CONNECTION_STRING`` as the default credentials for a relay.

    Args:
        http_base: the relay a host or client talks to, ``http[s]://host:port``;
            None accepts any relay.
        environ: the environment to read; ``os.environ`` by default.

    Returns:
        The parsed variable; None when it is unset or empty, or when it names
        another relay than ``http_base`` (its key signs tokens for its own relay only).

    Raises:
        ConfigurationError: the variable is set but invalid.
    """
    text = (os.environ if environ is None else environ).get(ENV_VAR, "")
    if not text.strip():
        return None
    parsed = _parse_env(text)
    if http_base is not None and parsed.http_base != http_base.lower().rstrip("/"):
        return None
    return parsed


def _parse_env(text: str) -> ConnectionString:
    try:
        return ConnectionString.parse(text)
    except InvalidConnectionString as exc:
        raise ConfigurationError(f"environment variable {ENV_VAR}: {exc}") from None
