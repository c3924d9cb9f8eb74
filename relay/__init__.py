"""soap-relay's relay service: a self-hosted, Azure-Relay-compatible rendezvous.

The protocol's rules (tokens, control-channel commands, header rules, frame
splitting, entity kinds) come from the sans-I/O core :mod:`hc`.  Pure parts of
its own (no I/O): :mod:`relay.namespace` (the config model), :mod:`relay.config`
(TOML loading), :mod:`relay.discovery` (the Atom feed), :mod:`relay.access` (who
may send or listen), :mod:`relay.boundary` (an exception as the sender's answer).
The handlers share one :class:`relay.state.RelayState`; the aiohttp shell that
owns the life cycle is :mod:`relay.server`, and no handler imports it.  ``relay`` never imports :mod:`bindings`; the ``soaprelay``
command line that runs either is the package above both, :mod:`soaprelay`.

Importing this package imports nothing heavy.
"""

__version__ = "0.1.0"
