"""zeep over a NetTcp session: existing zeep code changes only its binding.

::

    client = relay_client("http://127.0.0.1:9350/payroll12?wsdl", binding=NetTcpRelayBinding(),
                          token_provider=provider)
    client.service.GetSalary(7)        # every call on one persistent relayed WebSocket

The WSDL is fetched over HTTP through the relay, as with the HTTP bindings; calls go
on the client's :class:`~bindings.nettcp.client.SessionClient` instead of HTTP POSTs.
zeep's plugin chain runs as usual (WS-Addressing, WS-Security); the last plugin,
:class:`SessionPlugin`, only reads what the channel needs -- the request's
``MessageID``, and whether the operation has a reply -- and passes it to the
transport beside the serialised envelope.  Replies are handed to zeep as a response
(200 with the reply, 202 and no body for a one-way operation), so faults,
one-way calls and signed replies work as on the HTTP bindings.

The sync client runs the session in a :class:`~bindings.nettcp.background.BackgroundLoop`
thread, which parks between calls while the calls themselves do their I/O on the calling
thread (:mod:`bindings.nettcp.lane`); the async client in the caller's loop.  ``client.transport.close()`` (sync)
or ``await client.transport.aclose()`` ends the session gracefully.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

import requests
import zeep
from lxml import etree
from requests.structures import CaseInsensitiveDict
from zeep.plugins import Plugin

from bindings.nettcp.background import BackgroundLoop
from bindings.nettcp.binding import NetTcpRelayBinding
from bindings.nettcp.client import SessionClient
from bindings.nettcp.framing import SOAP12, ChannelMessage
from bindings.nettcp.lane import CallLane
from bindings.zeep_transport import ClientParts, RelayTransport
from soap.addressing import AddressingHeaders
from soap.envelope import Envelope

__all__ = ["NetTcpRelayTransport", "SessionPlugin", "channel_response", "nettcp_client"]

#: Headers the plugin sets for the transport (never sent anywhere).
MESSAGE_ID = "X-NetTcp-MessageID"
ONEWAY = "X-NetTcp-OneWay"


class SessionPlugin(Plugin):  # type: ignore[misc]
    """Last of the plugins: tells the transport the request's MessageID and if it is one-way."""

    def egress(self, envelope: etree._Element, http_headers: dict[str, str], operation: Any,
               binding_options: dict[str, Any]) -> tuple[etree._Element, dict[str, str]]:
        headers = AddressingHeaders.from_header(Envelope.from_element(envelope).header)
        if headers.message_id:
            http_headers[MESSAGE_ID] = headers.message_id
        if getattr(operation, "output", None) is None:
            http_headers[ONEWAY] = "1"
        return envelope, http_headers


def channel_response(reply: ChannelMessage | None) -> requests.Response:
    """What zeep's ``process_reply`` reads: 202 and no body (one-way), else the reply."""
    response = requests.Response()
    response.headers = CaseInsensitiveDict({"Content-Type": f"{SOAP12.content_type}; charset=utf-8"})
    response.encoding = "utf-8"
    if reply is None:
        response.status_code, response._content = 202, b""
    else:
        response.status_code = 500 if reply.is_fault else 200
        response._content = reply.data
    return response


def _request(message: bytes | str, headers: dict[str, str]) -> tuple[bytes, str, bool]:
    data = message.encode("utf-8") if isinstance(message, str) else message
    return data, headers.get(MESSAGE_ID, ""), headers.get(ONEWAY) == "1"


class NetTcpRelayTransport(RelayTransport):
    """The sync relay transport (WSDL fetches over HTTP) whose ``post`` goes on the session.

    Args:
        session: the client's session (opened on the first call), as ``.nettcp``
            (zeep's ``.session`` is the requests session of the WSDL fetches).
        **kwargs: passed to :class:`~bindings.zeep_transport.RelayTransport`.
    """

    def __init__(self, session: SessionClient, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nettcp, self.background = session, BackgroundLoop()
        self.lane = CallLane(session, self.background.loop)
        self.background.on_submit = self.lane.want_loop

    def post(self, address: str, message: bytes | str, headers: dict[str, str]) -> Any:
        data, message_id, oneway = _request(message, headers)
        if not oneway:
            taken, reply = self.lane.call(data, message_id)
            if taken:
                return channel_response(reply)
        return channel_response(self.lane.through_loop(data, message_id, oneway))

    def close(self) -> None:
        """End the session gracefully and stop its loop thread."""
        if not self.background.loop.is_closed():
            self.background.run(self.nettcp.close(), 60)
            self.background.stop()
            self.lane.close()


def async_transport(session: SessionClient, **kwargs: Any) -> Any:
    """The async relay transport (httpx, for WSDL fetches) whose calls go on the session."""
    from bindings.zeep_async import AsyncRelayTransport

    class AsyncNetTcpRelayTransport(AsyncRelayTransport):  # type: ignore[misc]
        nettcp: SessionClient

        async def post_xml(self, address: str, envelope: etree._Element,
                           headers: dict[str, str]) -> Any:
            message = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
            data, message_id, oneway = _request(message, headers)
            return channel_response(await session.call(data, message_id, oneway=oneway))

        async def aclose(self) -> None:
            await session.close()
            await super().aclose()

    transport = AsyncNetTcpRelayTransport(**kwargs)
    transport.nettcp = session
    return transport


def nettcp_client(
    wsdl_url: str,
    binding: NetTcpRelayBinding,
    parts: ClientParts,
    *,
    timeout: float,
    operation_timeout: float | None,
    callback: tuple[type, object] | None,
    client_kwargs: dict[str, Any],
    asynchronous: bool = False,
    proxy: str | bool | None = True,
) -> Any:
    """The zeep client (sync or async) of :func:`~bindings.zeep_transport.relay_client`
    and :func:`~bindings.zeep_async.relay_async_client` for a NetTcp binding; ``proxy``
    carries the WSDL fetches and the session's WebSocket alike (``hc.asyncio.proxy``)."""
    if operation_timeout is not None:
        binding = dataclasses.replace(binding, call_timeout=operation_timeout)
    session = SessionClient(_entity_address(wsdl_url), binding, parts.token_provider,
                            callback=callback, proxy=proxy)
    kwargs: dict[str, Any] = {
        "token_provider": parts.token_provider, "audience": parts.audience,
        "token_in_soap_header": parts.token_in_soap_header, "timeout": timeout,
        "operation_timeout": operation_timeout, "proxy": proxy}
    plugins = [*parts.plugins, SessionPlugin()]
    if asynchronous:
        transport = async_transport(session, **kwargs)
        return zeep.AsyncClient(wsdl_url, transport=transport, plugins=plugins, **client_kwargs)
    sync = NetTcpRelayTransport(session, **kwargs)
    try:
        return zeep.Client(wsdl_url, transport=sync, plugins=plugins, **client_kwargs)
    except BaseException:
        sync.close()
        raise


def _entity_address(wsdl_url: str) -> str:
    """``http://host:port/entity`` of ``http://host:port/entity?wsdl`` (or ``.wsdl``)."""
    parts = urlsplit(wsdl_url)
    return f"{parts.scheme}://{parts.netloc}{parts.path.removesuffix('.wsdl')}"
