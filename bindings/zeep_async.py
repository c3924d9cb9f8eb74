"""zeep's ``AsyncClient`` through the relay: the async twin of :func:`relay_client`'s wiring.

::

    client = relay_async_client("http://127.0.0.1:9350/payroll?wsdl",
                                binding=BasicHttpRelayBinding(),
                                token_provider=TokenProvider.shared_access_key(name, key))
    async with client:
        await client.service.GetSalary(7)

zeep's :class:`~zeep.transports.AsyncTransport` runs on httpx, which is an
optional dependency here: it is imported when a client is made, and a missing
httpx raises :class:`ImportError` saying what to install.

Tokens go where :mod:`bindings.zeep_transport` puts them, by the same auth
callable (:class:`~bindings.client_auth.RelayAuth`, with its
:class:`~bindings.client_auth.Audience`: entity URL, relay host and port only):
the ``ServiceBusAuthorization`` HTTP header on every request, asked of the
token provider each time, or for bindings with ``token_in_soap_header``
the ``RelayAccessToken`` SOAP header on POSTs
(:class:`~bindings.zeep_transport.RelayTokenPlugin`) and the HTTP header on
WSDL/XSD GETs only.

zeep loads the WSDL synchronously, in the constructor, even for the async
client: make the client before the event loop has other work to do, or in a
worker thread. Relay errors surface as with the sync client, by the same
mapping (:mod:`bindings.client_errors`): :class:`zeep.exceptions.Fault` for
SOAP faults, :class:`RelayTransportError` for the rest. A one-way call answered
``200`` with an empty body (Mono's WCF) returns ``None`` like a 202
(:mod:`bindings.zeep_oneway`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import zeep
from lxml import etree
from zeep.transports import AsyncTransport

from bindings.binding import RelayBinding
from bindings.client_auth import Audience, RelayAuth
from bindings.client_errors import RequestKind, library_errors, raise_for_answer
from bindings.tokens import TokenProvider
from bindings.zeep_oneway import oneway_inputs, read_empty_ok_as_accepted
from bindings.zeep_transport import client_parts
from hc.connection_string import ConnectionString

if TYPE_CHECKING:
    from bindings.wssecurity import MessageSecurity

__all__ = ["AsyncRelayTransport", "HttpxRelayAuth", "relay_async_client"]

log = logging.getLogger(__name__)


def _httpx() -> ModuleType:
    """The httpx module, or an ImportError that says how to get it."""
    try:
        import httpx
    except ImportError as exc:
        raise ImportError(
            "relay_async_client needs httpx (zeep's AsyncTransport runs on it): "
            "pip install 'httpx>=0.27,<1'"
        ) from exc
    return httpx


#: The auth callable of both transports (httpx takes it as a ``FunctionAuth``).
HttpxRelayAuth = RelayAuth


class AsyncRelayTransport(AsyncTransport):  # type: ignore[misc]
    """zeep's httpx transport, authenticating to the relay and reading its errors.

    Args:
        token_provider: Where tokens come from; None sends no token.
        audience: Maps a request URL to the token audience (see ``Audience``).
        token_in_soap_header: Keep the HTTP header off SOAP POSTs.
        timeout: Seconds allowed for each WSDL/XSD fetch.
        operation_timeout: Seconds allowed for each operation call (None: no limit).
        proxy: An HTTP proxy URL; True (default): httpx reads the environment; None: none.
    """

    #: zeep's ``Transport.__del__`` reads this, also on an instance whose __init__ failed.
    _close_session = False

    def __init__(
        self,
        token_provider: TokenProvider | None = None,
        *,
        audience: Callable[[str], str | None] | None = None,
        token_in_soap_header: bool = False,
        timeout: float = 30,
        operation_timeout: float | None = 120,
        proxy: str | bool | None = True,
    ) -> None:
        httpx = _httpx()
        network: dict[str, Any] = {"trust_env": bool(proxy)}  # True: httpx reads the environment
        if isinstance(proxy, str):
            network["proxy"] = proxy
        auth = None
        if token_provider is not None:
            auth = RelayAuth(
                token_provider, audience or Audience(None), skip_posts=token_in_soap_header
            )
        super().__init__(
            client=httpx.AsyncClient(timeout=operation_timeout, auth=auth, **network),
            wsdl_client=httpx.Client(timeout=timeout, auth=auth, **network),
        )
        self._httpx = httpx
        #: Body elements of the WSDL's one-way operations (set by :func:`relay_async_client`).
        self.oneway_inputs: frozenset[str] = frozenset()

    async def aclose(self) -> None:
        """Close both httpx clients (zeep's own ``aclose`` forgets the WSDL one)."""
        self.wsdl_client.close()
        await self.client.aclose()

    def _load_remote_data(self, url: str) -> bytes:
        """GET a WSDL/XSD document; relay errors raise :class:`RelayTransportError`."""
        with library_errors(RequestKind.FETCH, url, self._httpx.HTTPError, self._httpx.ProxyError):
            response = self.wsdl_client.get(url)
        raise_for_answer(RequestKind.FETCH, url, response.status_code,
                         response.headers.get("Content-Type"), lambda: response.content)
        return bytes(response.content)

    async def post_xml(self, address: str, envelope: etree._Element, headers: dict[str, str]) -> Any:
        """POST ``envelope``; an empty 200 to a one-way operation reads as 202
        (:mod:`bindings.zeep_oneway`)."""
        response = await super().post_xml(address, envelope, headers)
        read_empty_ok_as_accepted(response, envelope, self.oneway_inputs)
        return response

    async def post(self, address: str, message: bytes | str, headers: dict[str, str]) -> Any:
        """POST an envelope; never logs the body (it may carry a token).

        zeep quirk: ``AsyncTransport.post`` logs the request and reply bodies at DEBUG,
        which would put a ``RelayAccessToken`` in the logs; this override replaces it.

        Non-SOAP error answers (JSON) raise :class:`RelayTransportError`; SOAP
        faults are left to zeep, which raises :class:`zeep.exceptions.Fault`.
        """
        with library_errors(RequestKind.CALL, address, self._httpx.HTTPError, self._httpx.ProxyError):
            response = await self.client.post(address, content=message, headers=headers)
        log.debug("POST %s -> %s", address, response.status_code)
        raise_for_answer(RequestKind.CALL, address, response.status_code,
                         response.headers.get("Content-Type"), lambda: response.content)
        return response


def relay_async_client(
    wsdl_url: str,
    *,
    binding: RelayBinding | None = None,
    token_provider: TokenProvider | None = None,
    connection_string: ConnectionString | str | None = None,
    timeout: float = 30,
    operation_timeout: float | None = 120,
    message_security: MessageSecurity | None = None,
    proxy: str | bool | None = True,
    **client_kwargs: Any,
) -> zeep.AsyncClient:
    """A :class:`zeep.AsyncClient` that calls a service through the relay.

    Same arguments (``proxy`` too), token rules and message security (the WS-Security plugin
    last) as :func:`bindings.zeep_transport.relay_client`.
    Close it with ``async with client:`` or ``await client.transport.aclose()``.

    Raises:
        ImportError: httpx is not installed.
        RelayTransportError: The WSDL could not be fetched through the relay.
        ConfigurationError: Message security settings that do not fit the
            binding's security mode, or zeep's ``wsse`` as well.
        TypeError: ``transport`` was passed.
    """
    if "transport" in client_kwargs:
        raise TypeError("relay_async_client makes its own transport; pass timeouts instead")
    callback = client_kwargs.pop("callback", None)
    parts = client_parts(
        wsdl_url, binding, token_provider, connection_string, message_security, client_kwargs
    )
    if getattr(binding, "session_channel", False):  # NetTcp: calls on one session channel
        from bindings.nettcp.zeep_nettcp import nettcp_client

        return nettcp_client(wsdl_url, binding, parts, timeout=timeout,  # type: ignore[arg-type]
                             operation_timeout=operation_timeout, callback=callback,
                             client_kwargs=client_kwargs, asynchronous=True, proxy=proxy)
    transport = AsyncRelayTransport(
        parts.token_provider,
        audience=parts.audience,
        token_in_soap_header=parts.token_in_soap_header,
        timeout=timeout,
        operation_timeout=operation_timeout,
        proxy=proxy,
    )
    plugins = parts.plugins
    try:
        client = zeep.AsyncClient(wsdl_url, transport=transport, plugins=plugins, **client_kwargs)
    except BaseException:
        transport.wsdl_client.close()
        raise
    transport.oneway_inputs = oneway_inputs(client.wsdl)
    return client
