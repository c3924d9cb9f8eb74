"""``HybridConnectionClient``: a sender's WebSocket to a listener, through the relay.

As ``Microsoft.Azure.Relay.HybridConnectionClient``::

    client = HybridConnectionClient("http://127.0.0.1:9350/echo", provider)
    async with await client.create_connection() as stream:
        await stream.write(b"hello")
        print(await stream.read())

It opens ``ws[s]://HOST/$hc/ENTITY?sb-hc-action=connect&sb-hc-id=ID`` with a
Send token in ``ServiceBusAuthorization`` (PROTOCOL.md §4); the relay joins it
to a listener, which takes it with ``accept_connection()``.
"""

from __future__ import annotations

import functools
import ssl
import uuid

from hc.address import EntityAddress
from hc.asyncio.connection import Connector, mask_keys, open_on_relay, tcp_connector, xor_mask
from hc.asyncio.proxy import ProxySetting, proxy_setting
from hc.asyncio.stream import HybridConnectionStream
from hc.asyncio.tokens import DEFAULT_TTL, TokenProvider
from hc.framing import DEFAULT_MAX_MESSAGE_SIZE, Side, WebSocketEndpoint
from hc.handshake import Headers

__all__ = ["HybridConnectionClient"]


class HybridConnectionClient:
    """Opens WebSocket connections to the listeners of one entity.

    Args:
        address: the entity, ``sb://``, ``https://`` or ``http://HOST[:PORT]/ENTITY``.
        token_provider: gives the Send token; None sends none (for an entity that
            does not require client authorization).
        connector: how sockets are opened (TCP/TLS by default).
        ssl_context: for TLS (https/sb addresses): the system's trust store when None.
        proxy: an HTTP CONNECT proxy URL (``http://[user:password@]host:port``), True
            (the default) for the environment's (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``),
            None for none; ignored when ``connector`` is given (:mod:`hc.asyncio.proxy`).
        max_message_size: the largest message accepted from the listener.
    """

    def __init__(
        self,
        address: str,
        token_provider: TokenProvider | None = None,
        *,
        connector: Connector | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy: ProxySetting = True,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.address = EntityAddress.parse(address)
        self.token_provider = token_provider
        self.connector: Connector = connector or functools.partial(
            tcp_connector, ssl_context=ssl_context, proxy=proxy_setting(proxy))
        self.max_message_size = max_message_size

    def __repr__(self) -> str:
        return f"<HybridConnectionClient {self.address.audience}>"

    async def create_connection(
        self, headers: Headers = (), *, subprotocols: tuple[str, ...] = ()
    ) -> HybridConnectionStream:
        """A duplex stream to one listener (the relay picks it).

        Args:
            headers: extra handshake headers, passed on to the listener's ``accept``.
            subprotocols: offered to the listener.

        Raises:
            RelayRejectedError: the relay refused (401/403 token, 404 no listener online).
            RelayUnreachableError: no connection to the relay.
        """
        tracking_id = str(uuid.uuid4())
        token = None
        if self.token_provider is not None:
            token = (await self.token_provider.get_token(self.address.audience, DEFAULT_TTL)).token
        endpoint = WebSocketEndpoint(Side.CLIENT, max_message_size=self.max_message_size,
                                     mask_key=mask_keys, mask=xor_mask)
        protocol = await open_on_relay(
            self.address.url("connect", tracking_id), endpoint, self.address.http_base,
            token=token, headers=headers, subprotocols=subprotocols, connector=self.connector,
        )
        return HybridConnectionStream(protocol, tracking_id=tracking_id)
