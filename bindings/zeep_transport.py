"""The zeep side of the relay bindings: a transport and a client factory.

A zeep client pointed at a relay address calls the service as if it were local::

    client = relay_client("http://127.0.0.1:9350/payroll?wsdl",
                          token_provider=TokenProvider.shared_access_key(name, key))
    client.service.GetSalary(7)

The sender's SAS token travels (PROTOCOL.md section 2) in the
``ServiceBusAuthorization`` HTTP header (:class:`~bindings.client_auth.RelayAuth`,
the auth callable the async transport shares), asked of the token provider for
every request so renewal is automatic. With ``binding.token_in_soap_header``
(the WS2007 binding's default) SOAP POSTs carry it in a ``RelayAccessToken``
SOAP header instead, added by a zeep plugin; WSDL/XSD GETs keep the HTTP header.
The token's audience is the entity URL, ``http[s]://host:port/entity``, and
it goes only to the relay's host and port (the WSDL URL's, the connection
string's): an XSD imported from elsewhere or a private address left in a WSDL
never sees it.  With neither a token provider nor a connection string, the
``SOAPRELAY_CONNECTION_STRING`` environment variable supplies the key when it
names the WSDL URL's relay.  A binding with ``client_authentication="none"``
sends no token unless given a token provider.

The relay answers its own errors to SOAP requests with a SOAP fault, which zeep
raises as :class:`zeep.exceptions.Fault`; other failures (a WSDL fetch answered
401/404/502, a JSON error body) raise :class:`RelayTransportError` with the
status, the relay's error code, message and tracking id (one mapping for both
transports, :mod:`bindings.client_errors`). ``202 Accepted`` with an empty body
(one-way and event calls) makes zeep return ``None``; so does ``200 OK`` with an
empty body to an operation the WSDL declares one-way (Mono's WCF answers one-way
calls so, .NET with 202: :mod:`bindings.zeep_oneway`).

Bindings with WS-Addressing get the project's own plugin
(:class:`~bindings.zeep_addressing.AddressingPlugin`, on :mod:`soap.addressing`):
``To``, ``Action``, ``MessageID`` and ``ReplyTo`` on every request.

With a message security mode (``binding.security``) and ``message_security=``,
a :class:`~bindings.zeep_security.WsSecurityPlugin` runs after every other
plugin: it signs the Body, the Timestamp and the WS-Addressing headers, never
the ``RelayAccessToken`` header (which the relay removes on the way, byte for
byte, so the signature still verifies at the service), and checks the replies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import zeep
from lxml import etree
from zeep.plugins import Plugin

from bindings.binding import BasicHttpRelayBinding, EndToEndSecurityMode, RelayBinding
from bindings.client_auth import AUTH_HEADER, Audience, RelayAuth
from bindings.client_errors import RequestKind, library_errors, raise_for_answer
from bindings.exceptions import ConfigurationError
from bindings.relay_errors import RelayTransportError, relay_transport_error
from bindings.settings import default_connection_string, parse_connection_string
from bindings.tokens import TokenProvider
from bindings.zeep_addressing import AddressingPlugin
from bindings.zeep_oneway import oneway_inputs, read_empty_ok_as_accepted
from hc.connection_string import ConnectionString
from soap.relay_token import RelayTokenHook

if TYPE_CHECKING:
    from bindings.wssecurity import MessageSecurity

__all__ = [
    "AUTH_HEADER",
    "Audience",
    "RelayAuth",
    "RelayTokenPlugin",
    "RelayTransport",
    "RelayTransportError",
    "relay_client",
    "relay_transport_error",
    "security_plugins",
]

log = logging.getLogger(__name__)

_TRANSPORT_ONLY = frozenset({EndToEndSecurityMode.NONE, EndToEndSecurityMode.TRANSPORT})


class RelayTokenPlugin(Plugin):  # type: ignore[misc]
    """zeep plugin adding the ``RelayAccessToken`` SOAP header to each request.

    Args:
        token_provider: Asked for a token for every message.
        audience: Maps the operation's address to the token's audience.
    """

    def __init__(
        self, token_provider: TokenProvider, audience: Callable[[str], str | None]
    ) -> None:
        self._provider, self._audience = token_provider, audience

    def egress(
        self,
        envelope: etree._Element,
        http_headers: dict[str, str],
        operation: Any,
        binding_options: dict[str, Any],
    ) -> tuple[etree._Element, dict[str, str]]:
        """Append the token header for the operation's address."""
        address = str(binding_options.get("address", ""))
        audience = self._audience(address)
        if audience is None:
            log.warning("no relay token sent to %s: it is not the relay's address", address)
            return envelope, http_headers
        hook = RelayTokenHook(lambda: self._provider.get_token(audience).text)
        return hook.egress(envelope, http_headers)


class RelayTransport(zeep.Transport):  # type: ignore[misc]
    """A zeep transport that authenticates to the relay and reads its errors.

    Args:
        token_provider: Where tokens come from; None sends no token.
        audience: Maps a request URL to the token audience (see :class:`Audience`).
        token_in_soap_header: Keep the HTTP header off SOAP POSTs (the token is
            in the envelope, see :class:`RelayTokenPlugin`).
        proxy: An HTTP proxy URL for every request; True (default): requests reads
            ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``; None: no proxy at all.
        **kwargs: Passed to :class:`zeep.Transport` (``timeout``,
            ``operation_timeout``, ``session``, ``cache``).
    """

    def __init__(
        self,
        token_provider: TokenProvider | None = None,
        *,
        audience: Callable[[str], str | None] | None = None,
        token_in_soap_header: bool = False,
        proxy: str | bool | None = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        #: Body elements of the WSDL's one-way operations (set by :func:`relay_client`).
        self.oneway_inputs: frozenset[str] = frozenset()
        if isinstance(proxy, str):
            self.session.proxies = {"http": proxy, "https": proxy}
        elif not proxy:
            self.session.trust_env = False  # no proxy from the environment either
        if token_provider is not None:
            self.session.auth = RelayAuth(
                token_provider, audience or Audience(None), skip_posts=token_in_soap_header
            )

    def _load_remote_data(self, url: str) -> bytes:
        """GET a WSDL/XSD document; relay errors raise :class:`RelayTransportError`."""
        with library_errors(RequestKind.FETCH, url, requests.RequestException,
                            requests.exceptions.ProxyError):
            response = self.session.get(url, timeout=self.load_timeout)
        with closing(response):
            raise_for_answer(RequestKind.FETCH, url, response.status_code,
                             response.headers.get("Content-Type"), lambda: response.content)
            return bytes(response.content)

    def post_xml(self, address: str, envelope: etree._Element, headers: dict[str, str]) -> Any:
        """POST ``envelope``; an empty 200 to a one-way operation reads as 202."""
        response = super().post_xml(address, envelope, headers)
        read_empty_ok_as_accepted(response, envelope, self.oneway_inputs)
        return response

    def post(self, address: str, message: bytes | str, headers: dict[str, str]) -> Any:
        """POST an envelope; never logs the body (it may carry a token).

        Non-SOAP error answers (JSON) raise :class:`RelayTransportError`; SOAP
        faults are left to zeep, which raises :class:`zeep.exceptions.Fault`.
        """
        with library_errors(RequestKind.CALL, address, requests.RequestException,
                            requests.exceptions.ProxyError):
            response = self.session.post(
                address, data=message, headers=headers, timeout=self.operation_timeout
            )
        log.debug("POST %s -> %s", address, response.status_code)
        raise_for_answer(RequestKind.CALL, address, response.status_code,
                         response.headers.get("Content-Type"), lambda: response.content)
        return response


def relay_client(
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
) -> zeep.Client:
    """A :class:`zeep.Client` that calls a service through the relay.

    Args:
        wsdl_url: The relay address of the WSDL, e.g. ``http://host:9350/payroll?wsdl``.
        binding: The relay binding (BasicHttp by default); WS-Addressing is added
            for bindings that use it, and it says where the token goes.
        token_provider: Where tokens come from. Defaults to the connection
            string's key or signature, else to the ``SOAPRELAY_CONNECTION_STRING``
            environment variable's when it names the WSDL URL's relay; with none
            of them, or a binding with ``client_authentication="none"``, no
            token is sent.
        connection_string: Relay connection string; its ``EntityPath``, when
            present, names the entity tokens are signed for.
        timeout: Seconds allowed for loading the WSDL and XSD documents.
        operation_timeout: Seconds allowed for each operation call.
        message_security: WS-Security settings for ``binding.security`` MESSAGE
            (sign requests, verify signed replies) or TRANSPORT_WITH_MESSAGE_CREDENTIAL
            (a UsernameToken or a signature). Its plugin runs after every other
            one, so it signs the WS-Addressing headers; the relay token header is
            never signed (the relay removes it).
        proxy: An HTTP proxy URL ``http://[user:password@]host:port``; True (default):
            the environment's (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``); None: none.
            A proxy's failure raises :class:`~bindings.relay_errors.ProxyTransportError`.
        **client_kwargs: ``callback=(contract, implementation)`` with a NetTcp binding
            answers the service's callbacks (:mod:`bindings.nettcp.callbacks`); the rest
            is passed to :class:`zeep.Client` (``plugins``, ``settings``,
            ``service_name``, ``port_name`` ...); ``transport`` is not accepted,
            nor ``wsse`` with message security.

    Returns:
        The zeep client. A reply failing the WS-Security checks raises
        :class:`~bindings.exceptions.UntrustedResponse`; the service's security
        faults arrive as :class:`zeep.exceptions.Fault`.

    Raises:
        RelayTransportError: The WSDL could not be fetched through the relay.
        ConfigurationError: Message security settings that do not fit the
            binding's security mode, or zeep's ``wsse`` as well.
        TypeError: ``transport`` was passed.
    """
    if "transport" in client_kwargs:
        raise TypeError("relay_client makes its own transport; pass timeouts instead")
    callback = client_kwargs.pop("callback", None)
    parts = client_parts(
        wsdl_url, binding, token_provider, connection_string, message_security, client_kwargs
    )
    if getattr(binding, "session_channel", False):  # NetTcp: calls on one session channel
        from bindings.nettcp.zeep_nettcp import nettcp_client

        return nettcp_client(wsdl_url, binding, parts, timeout=timeout,  # type: ignore[arg-type]
                             operation_timeout=operation_timeout, callback=callback,
                             client_kwargs=client_kwargs, proxy=proxy)
    if callback is not None:
        raise ConfigurationError("callback= needs a binding with sessions (NetTcpRelayBinding)")
    transport = RelayTransport(
        parts.token_provider,
        audience=parts.audience,
        token_in_soap_header=parts.token_in_soap_header,
        timeout=timeout,
        operation_timeout=operation_timeout,
        proxy=proxy,
    )
    client = zeep.Client(wsdl_url, transport=transport, plugins=parts.plugins, **client_kwargs)
    transport.oneway_inputs = oneway_inputs(client.wsdl)
    return client


@dataclass(frozen=True)
class ClientParts:
    """What the sync and async client factories share: the token and the plugins."""

    token_provider: TokenProvider | None
    audience: Audience
    token_in_soap_header: bool
    plugins: list[Plugin]


def client_parts(
    wsdl_url: str,
    binding: RelayBinding | None,
    token_provider: TokenProvider | None,
    connection_string: ConnectionString | str | None,
    message_security: MessageSecurity | None,
    client_kwargs: dict[str, Any],
) -> ClientParts:
    """Token source, audience and plugins for a client of ``wsdl_url``.

    Pops ``plugins`` from ``client_kwargs``; the caller's plugins come first, then
    WS-Addressing, the RelayAccessToken header, and WS-Security last (it signs
    what the others added).
    """
    binding = binding or BasicHttpRelayBinding()
    security = security_plugins(binding, message_security, client_kwargs.get("wsse"))
    entity_path = _wsdl_entity(wsdl_url)
    web = urlsplit(wsdl_url).scheme in ("http", "https")
    origins = [wsdl_url] if web else []
    tokenless = not binding.requires_client_authorization and token_provider is None
    if connection_string is not None:
        cs = parse_connection_string(connection_string)
        entity_path = cs.entity_path or entity_path
        origins.append(cs.http_base)
        if not tokenless:
            token_provider = token_provider or _provider_from(cs)
    elif token_provider is None and not tokenless:
        env = default_connection_string(_http_base(wsdl_url) if web else None)
        if env is not None:  # the URL names the entity; the variable gives the key
            entity_path = entity_path or env.entity_path
            token_provider = _provider_from(env)
            origins.append(env.http_base)
    audience = Audience(entity_path, origins or None)
    in_header = binding.token_in_soap_header and token_provider is not None
    plugins = list(client_kwargs.pop("plugins", None) or [])
    if binding.addressing:
        plugins.append(AddressingPlugin())
    if in_header and token_provider is not None:
        plugins.append(RelayTokenPlugin(token_provider, audience))
    plugins.extend(security)
    return ClientParts(token_provider, audience, in_header, plugins)


def security_plugins(
    binding: RelayBinding, message_security: MessageSecurity | None, wsse: object = None
) -> list[Plugin]:
    """The WS-Security plugin the binding's mode needs, as a list to append **last**.

    Shared by the sync and async client factories.

    Raises:
        ConfigurationError: Settings that do not fit ``binding.security``, or
            zeep's ``wsse`` together with message security (zeep applies it after
            the plugins, so it would change the signed message).
    """
    if message_security is None and binding.security in _TRANSPORT_ONLY:
        return []  # no message security: signxml is not even imported
    from bindings.wssecurity import security_plugin

    plugin = security_plugin(binding.security, message_security)
    if plugin is None:
        return []
    if wsse is not None:
        raise ConfigurationError(
            "give message_security or zeep's wsse, not both: zeep applies wsse after"
            " the plugins and would change the signed message"
        )
    return [plugin]


def _http_base(url: str) -> str:
    """``http[s]://host:port`` of an http(s) URL, the default port filled in."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme.lower()}://{host}:{port or (443 if parts.scheme == 'https' else 80)}"


def _wsdl_entity(wsdl_url: str) -> str | None:
    """The entity of a WSDL address: ``/payroll?wsdl`` or ``/payroll.wsdl`` give ``payroll``.

    A local WSDL file names no entity: each request's own path is then used.
    """
    parts = urlsplit(wsdl_url)
    if parts.scheme not in ("http", "https"):
        return None
    return parts.path.strip("/").removesuffix(".wsdl") or None


def _provider_from(cs: ConnectionString) -> TokenProvider:
    if cs.signature is not None:
        return TokenProvider.shared_access_signature(cs.signature)
    assert cs.key_name is not None and cs.key is not None  # checked by ConnectionString
    return TokenProvider.shared_access_key(cs.key_name, cs.key)
