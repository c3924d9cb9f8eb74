"""soap-relay's relay service: a self-hosted, Azure-Relay-compatible rendezvous.

Pure cores (no I/O): :mod:`relay.namespace` (the config model), :mod:`relay.config`
(TOML loading), :mod:`relay.sas` (tokens), :mod:`relay.messages` (control-channel
commands), :mod:`relay.discovery` (the Atom feed).  The aiohttp shell is
:mod:`relay.server`; the command line is :mod:`relay.cli` (``soaprelay``).

Importing this package imports nothing heavy.
"""

__version__ = "0.1.0"
