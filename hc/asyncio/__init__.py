"""A Python Hybrid Connections SDK: a thin asyncio shell over the sans-I/O core in :mod:`hc`.

Named after Microsoft's .NET ``Microsoft.Azure.Relay`` types, for our relay and,
because it speaks the documented protocol, for Azure Relay:

- :class:`TokenProvider` (``create_shared_access_signature_token_provider``), and
  :class:`ClientCredentialsTokenProvider` for identity-provider (OAuth 2.0) tokens;
- :class:`HybridConnectionListener`: ``open()``/``close()``, ``request_handler``
  (each :class:`RelayedHttpListenerContext`), ``accept_connection()`` for
  WebSocket senders, ``connecting``/``online``/``offline`` callbacks;
- :class:`HybridConnectionClient`: ``create_connection()`` returning a duplex
  :class:`HybridConnectionStream`;
- both open their sockets through an HTTP CONNECT proxy when told (``proxy=``) or
  when the environment says so (:mod:`hc.asyncio.proxy`).

This package may use asyncio, ssl and socket, and imports nothing of ours but
``hc`` (``tests/test_layers.py``).
"""

from hc.asyncio.client import HybridConnectionClient
from hc.asyncio.errors import (
    AuthorizationFailedError,
    BodyBrokenError,
    ConnectionLostError,
    EndpointNotFoundError,
    KeepAliveTimeoutError,
    ProxyAuthenticationRequiredError,
    ProxyError,
    ProxyRefusedError,
    ProxyUnreachableError,
    QuotaExceededError,
    RelayError,
    RelayRejectedError,
    RelayUnreachableError,
    TokenUnavailableError,
)
from hc.asyncio.http import (
    RelayedHttpListenerContext,
    RelayedHttpListenerRequest,
    RelayedHttpListenerResponse,
)
from hc.asyncio.listener import HybridConnectionListener
from hc.asyncio.oauth import ClientCredentialsTokenProvider
from hc.asyncio.reconnect import Backoff, ReconnectPolicy
from hc.asyncio.stream import HybridConnectionStream
from hc.asyncio.tokens import SecurityToken, SharedAccessSignatureTokenProvider, TokenProvider

__all__ = [
    "AuthorizationFailedError",
    "Backoff",
    "BodyBrokenError",
    "ClientCredentialsTokenProvider",
    "ConnectionLostError",
    "EndpointNotFoundError",
    "HybridConnectionClient",
    "HybridConnectionListener",
    "HybridConnectionStream",
    "KeepAliveTimeoutError",
    "ProxyAuthenticationRequiredError",
    "ProxyError",
    "ProxyRefusedError",
    "ProxyUnreachableError",
    "QuotaExceededError",
    "ReconnectPolicy",
    "RelayError",
    "RelayRejectedError",
    "RelayUnreachableError",
    "RelayedHttpListenerContext",
    "RelayedHttpListenerRequest",
    "RelayedHttpListenerResponse",
    "SecurityToken",
    "SharedAccessSignatureTokenProvider",
    "TokenProvider",
    "TokenUnavailableError",
]
