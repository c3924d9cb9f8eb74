"""Seeing inside the relay: Azure-named metrics, diagnostic events, the console.

The relay's handlers tell one :class:`relay.observe.observer.Observer` (on
``RelayState.observer``) the facts they already know: a call finished, a listener
came or went, a client was refused.  Everything else lives here and nowhere
else: counters (``stats``) rendered for Prometheus at scrape time
(``exposition``), diagnostic events with Azure's operation names as JSON log
lines, a Server-Sent Events stream and presence webhooks (``events``,
``webhooks``), the SOAP-aware inspector (``inspector``, ``soapinfo``, ``mask``)
and the web console with its API (``admin``, ``api``, ``static/``).

This package file imports nothing so that ``relay.namespace`` can take the
settings (``relay.observe.settings``) without importing the rest.
"""
