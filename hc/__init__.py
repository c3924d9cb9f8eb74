"""soap-relay's Hybrid Connections core: the protocol's rules with no I/O.

Both sides of the wire import this package and nothing else of each other: the
relay server (:mod:`relay`) and the on-premises bindings (:mod:`bindings`).  It
holds :mod:`hc.sas` (SAS tokens: create, parse, verify, ``sr`` scopes),
:mod:`hc.connection_string` (Azure's connection strings), :mod:`hc.entities`
(entity kinds, discovery, client authorization, rights), :mod:`hc.messages`
(the control-channel commands), :mod:`hc.headers` (what crosses the relay and
what does not), :mod:`hc.frames` (WebSocket frame splitting),
:mod:`hc.exceptions` (protocol errors with a status hint), and the sans-I/O
control channel for both roles: :mod:`hc.framing` (a minimal RFC 6455
endpoint), :mod:`hc.protocol` (the control-channel rules on it) and
:mod:`hc.events` (what they report).

Nothing here opens a socket, starts a task or reads the environment: the
package imports no asyncio, aiohttp, websockets or socket, and no other package
of ours (``tests/test_layers.py`` holds it to that).  The one exception is
:mod:`hc.asyncio`, the Python Hybrid Connections SDK: a thin asyncio shell over
this core (listener, client, streams, token providers) that may use asyncio,
ssl and socket, and still imports nothing of ours but ``hc``.  The WebSocket
opening handshake it performs is pure and lives here, in :mod:`hc.handshake`.
"""
