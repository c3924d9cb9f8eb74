"""The WCF relay binding family, as small frozen dataclasses.

A binding says how a host and its clients talk through the relay: which SOAP
version, whether WS-Addressing is used, which entity kind it needs, and where
the client presents its token.

| binding                | pattern                  | wire                       | client token            |
|------------------------|--------------------------|----------------------------|-------------------------|
| BasicHttpRelayBinding  | request/response         | SOAP 1.1                   | HTTP header (or header) |
| WS2007HttpRelayBinding | request/response         | SOAP 1.2 + WS-Addressing   | RelayAccessToken header |
| WebHttpRelayBinding    | any HTTP                 | HTTP                       | HTTP header             |
| NetOnewayRelayBinding  | one-way, 202             | SOAP 1.1, kind ``oneway``  | as BasicHttp            |
| NetEventRelayBinding   | multicast one-way, 202   | SOAP 1.1, kind ``event``   | as BasicHttp            |
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from hc.entities import EntityKind
from soap.quotas import DEFAULT_MAX_RECEIVED_MESSAGE_SIZE, ReaderQuotas

#: Every binding's quotas unless it is given others (:mod:`soap.quotas` says why these).
DEFAULT_READER_QUOTAS = ReaderQuotas()

__all__ = [
    "STREAMED",
    "BasicHttpRelayBinding",
    "ClientAuthentication",
    "EndToEndSecurityMode",
    "NetEventRelayBinding",
    "NetOnewayRelayBinding",
    "ReaderQuotas",
    "RelayBinding",
    "WS2007HttpRelayBinding",
    "WebHttpRelayBinding",
]


class ClientAuthentication(enum.Enum):
    """Whether senders must present a token (WCF's ``RelayClientAuthenticationType``)."""

    RELAY_ACCESS_TOKEN = "relay_access_token"
    NONE = "none"


class EndToEndSecurityMode(enum.Enum):
    """WCF's ``EndToEndSecurityMode``; message security arrives with WS-Security."""

    NONE = "none"
    TRANSPORT = "transport"
    MESSAGE = "message"
    TRANSPORT_WITH_MESSAGE_CREDENTIAL = "transport_with_message_credential"


@dataclass(frozen=True)
class RelayBinding:
    """Settings every relay binding shares.

    Attributes:
        client_authentication: ``"none"`` maps to an entity that lets senders in
            without a token (``requires_client_authorization = false``).
        token_in_soap_header: clients put the token in a ``RelayAccessToken`` SOAP
            header instead of the ``ServiceBusAuthorization`` HTTP header.
        max_received_message_size: largest request body the host accepts, in
            bytes (WCF's name; default 2 MiB, WCF's is 64 KiB: see
            :mod:`soap.quotas`).  The body is read chunk by chunk and the read
            stops at the first byte over it: the caller gets 413 with a SOAP
            fault.  A listener advertises it to the relay, so a dynamic entity
            refuses larger bodies at the edge already.
        reader_quotas: depth, string, array, name-table and element limits,
            checked while a SOAP (or XML) request is parsed (:class:`ReaderQuotas`).
        keepalive_interval: seconds between the listener's WebSocket pings (0: none).
        keepalive_timeout: seconds a ping may go unanswered before the listener
            drops the connection and reconnects: with the interval, a silent network
            cut is noticed within ``keepalive_interval + keepalive_timeout`` + 1 s.
        max_concurrent_calls: requests one listener runs at once.
        security: end-to-end security mode.
    """

    client_authentication: ClientAuthentication | str = ClientAuthentication.RELAY_ACCESS_TOKEN
    token_in_soap_header: bool = False
    max_received_message_size: int = DEFAULT_MAX_RECEIVED_MESSAGE_SIZE
    reader_quotas: ReaderQuotas = DEFAULT_READER_QUOTAS
    keepalive_interval: float = 5.0
    keepalive_timeout: float = 3.0
    max_concurrent_calls: int = 16
    security: EndToEndSecurityMode = EndToEndSecurityMode.TRANSPORT

    #: "1.1", "1.2" or None for plain HTTP.
    soap_version: ClassVar[str | None] = "1.1"
    addressing: ClassVar[bool] = False
    entity_kind: ClassVar[EntityKind] = EntityKind.REQUEST_RESPONSE

    def __post_init__(self) -> None:
        auth = ClientAuthentication(self.client_authentication)
        object.__setattr__(self, "client_authentication", auth)
        if self.max_received_message_size < 1:
            raise ValueError("max_received_message_size must be a positive number of bytes")

    @property
    def max_message_size(self) -> int:
        """The old name of :attr:`max_received_message_size` (read-only alias)."""
        return self.max_received_message_size

    @property
    def requires_client_authorization(self) -> bool:
        return self.client_authentication is not ClientAuthentication.NONE


@dataclass(frozen=True)
class BasicHttpRelayBinding(RelayBinding):
    """SOAP 1.1 request/response (WCF ``BasicHttpRelayBinding``)."""


@dataclass(frozen=True)
class WS2007HttpRelayBinding(RelayBinding):
    """SOAP 1.2 with WS-Addressing 1.0; the token travels in a SOAP header.

    Attributes:
        compare_to_host: A request's ``wsa:To`` must name this service. By
            default it is compared as WCF's default address filter does: scheme,
            port and path, not the host name, so a client that calls
            ``http://localhost:9350/x`` reaches a host that opened
            ``http://127.0.0.1:9350/x``. True compares the host name too (WCF's
            ``EndpointAddressMessageFilter(address, includeHostNameInComparison: true)``).
    """

    token_in_soap_header: bool = True
    compare_to_host: bool = False
    soap_version: ClassVar[str | None] = "1.2"
    addressing: ClassVar[bool] = True


@dataclass(frozen=True)
class WebHttpRelayBinding(RelayBinding):
    """Plain HTTP: REST, WSDL fetches, any WSGI app.

    Reader quotas apply to requests with an XML media type; other bodies are
    only held to ``max_received_message_size``.  ``soaprelay forward`` streams
    bodies of any size: it uses :data:`STREAMED` (WCF's ``TransferMode.Streamed``).
    """

    soap_version: ClassVar[str | None] = None


#: The message size of a streamed binding (the forwarder): bodies are passed through,
#: never buffered or parsed, so only the relay's entity limit applies.
STREAMED = 1 << 62


@dataclass(frozen=True)
class NetOnewayRelayBinding(RelayBinding):
    """One-way calls to one listener; the sender gets 202 once it acknowledged."""

    max_received_message_size: int = 64 * 1024
    entity_kind: ClassVar[EntityKind] = EntityKind.ONEWAY


@dataclass(frozen=True)
class NetEventRelayBinding(RelayBinding):
    """One-way multicast to every listener; 202 with ``Relay-Delivered: <n>``."""

    max_received_message_size: int = 64 * 1024
    entity_kind: ClassVar[EntityKind] = EntityKind.EVENT
