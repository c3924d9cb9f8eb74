"""Host an existing local HTTP/SOAP service behind the relay, unchanged (``soaprelay forward``).

:class:`Forwarder` is a Handler that replays each relayed request against a
local service with aiohttp, like Azure's Hybrid Connection Manager: ``/{entity}/rest``
goes to ``{target}/rest``, status and headers come back as they are (hop-by-hop
headers dropped), bodies stream both ways.

WSDL and XSD documents are the exception: they name the service's *private*
address, so an XML response to ``?wsdl``/``?xsd``/``?singleWsdl`` (or one whose
root is ``wsdl:definitions``) is buffered and rewritten with
:func:`soap.wsdl.rewrite_addresses`, on the rule that the document fetched at
``X?wsdl`` describes the service at ``X``: its ``soap:address`` becomes the
relay URL the sender used for ``X``, and references under ``X`` move with it.
An unreachable target is a 502 whose message names the target.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from bindings.address import RelayAddress
from bindings.binding import STREAMED, WebHttpRelayBinding
from bindings.exceptions import ConfigurationError, HostError
from bindings.handler import RelayedRequest, RelayedResponse
from bindings.host import RelayServiceHost
from bindings.status import HostStatus
from bindings.wsgi_host import error_response
from hc.connection_string import ConnectionString
from hc.headers import FRAMING_HEADERS
from soap import ns
from soap.envelope import parse_xml
from soap.exceptions import SoapError
from soap.wsdl import rewrite_addresses

__all__ = ["Forwarder", "run_forwarder"]

log = logging.getLogger("bindings.forwarder")

_HOP_BY_HOP = FRAMING_HEADERS | {"proxy-authenticate", "proxy-authorization"}
_DOCUMENT_QUERIES = frozenset({"wsdl", "xsd", "singlewsdl"})
_WSDL_NS = ns.WSDL.encode()
_ADDRESS_TAGS = tuple(f"{{{uri}}}address" for uri in (ns.WSDL_SOAP11, ns.WSDL_SOAP12, ns.WSDL_HTTP))
#: Request bodies up to this size are sent with Content-Length (legacy servers
#: often refuse chunked requests); larger ones stream chunked.
_BUFFER_REQUEST = 1024 * 1024
_CHUNK = 64 * 1024


def _hop_by_hop(headers: Any) -> frozenset[str]:
    """FRAMING_HEADERS plus whatever the ``Connection`` header lists."""
    listed = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return _HOP_BY_HOP | listed


class _StreamedBody:
    """An upstream response body as an async iterator that releases the connection."""

    def __init__(self, response: aiohttp.ClientResponse, head: bytes) -> None:
        self._response, self._head = response, head
        self._chunks = response.content.iter_chunked(_CHUNK)

    def __aiter__(self) -> _StreamedBody:
        return self

    async def __anext__(self) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        try:
            return await self._chunks.__anext__()
        except BaseException:
            self._response.release()
            raise

    async def aclose(self) -> None:
        self._response.release()


class Forwarder:
    """A Handler forwarding to ``target`` (``http://127.0.0.1:8080[/base]``).

    Args:
        target: the local service's base URL.
        connect_timeout: seconds to wait for the local service to accept a connection.
        max_document: largest WSDL/XSD buffered for rewriting.

    Raises:
        ConfigurationError: ``target`` is not an http(s) URL.
    """

    def __init__(
        self, target: str, *, connect_timeout: float = 10.0, max_document: int = 16 * 1024 * 1024
    ) -> None:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ConfigurationError(f"forward target {target!r} must be http(s)://HOST[:PORT][/PATH]")
        self.target = target.rstrip("/")
        self.connect_timeout, self.max_document = connect_timeout, max_document
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Forwarder({self.target!r})"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout)
            self._session = aiohttp.ClientSession(
                timeout=timeout, auto_decompress=False, trust_env=False
            )
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP client session."""
        if self._session is not None:
            await self._session.close()

    def _url(self, request: RelayedRequest) -> tuple[str, str]:
        """(target URL, public path): ``/{entity}/rest?q`` -> ``{target}/rest?q``."""
        parts = urlsplit(request.target)
        prefix = "/" + request.entity_path
        rest = parts.path
        if rest.lower() == prefix.lower() or rest.lower().startswith(prefix.lower() + "/"):
            rest = rest[len(prefix) :]
        url = self.target + rest + (f"?{parts.query}" if parts.query else "")
        return url, parts.path

    def _headers(self, request: RelayedRequest, is_document: bool) -> list[tuple[str, str]]:
        drop = _hop_by_hop(request.headers)
        if is_document:  # the WSDL must arrive uncompressed to be rewritten
            drop |= {"accept-encoding"}
        headers = [(k, v) for k, v in request.headers if k.lower() not in drop]
        public = urlsplit(request.public_base)
        headers += [("X-Forwarded-Host", public.netloc), ("X-Forwarded-Proto", public.scheme)]
        if request.remote:
            headers.append(("X-Forwarded-For", request.remote[0]))
        return headers

    async def __call__(self, request: RelayedRequest) -> RelayedResponse:
        url, public_path = self._url(request)
        query = {k.lower() for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
        is_document = request.method.upper() == "GET" and bool(query & _DOCUMENT_QUERIES)
        body = await _request_body(request.body)
        try:
            upstream = await self._client().request(
                request.method, url, headers=self._headers(request, is_document), data=body,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("forward target %s unreachable: %r", self.target, exc)
            text = f"The local service at {self.target} is unreachable: {_describe(exc)}"
            return error_response(request, 502, "Bad Gateway", text)
        return await self._relay_back(request, upstream, is_document, public_path, url)

    async def _relay_back(
        self, request: RelayedRequest, upstream: aiohttp.ClientResponse,
        is_document: bool, public_path: str, url: str,
    ) -> RelayedResponse:
        drop = _hop_by_hop(upstream.headers.items())
        headers = tuple((k, v) for k, v in upstream.headers.items() if k.lower() not in drop)
        reason = upstream.reason or ""
        xml = "xml" in upstream.headers.get("Content-Type", "").lower()
        encoded = "Content-Encoding" in upstream.headers
        head = b""
        if xml and not encoded and not is_document and request.method.upper() == "GET":
            head = await upstream.content.read(4096)
            is_document = _WSDL_NS in head and b"definitions" in head
        if not (xml and not encoded and is_document):
            return RelayedResponse(upstream.status, reason, headers, _StreamedBody(upstream, head))
        try:
            document = head + await upstream.content.read(self.max_document + 1)
        finally:
            upstream.release()
        if len(document) <= self.max_document:
            document = self._rewrite(document, request, public_path, url)
        return RelayedResponse(upstream.status, reason, headers, document)

    def _rewrite(self, document: bytes, request: RelayedRequest, public_path: str, url: str) -> bytes:
        private, public_base = url.split("?", 1)[0], request.public_base
        try:
            service_path = self._public_service_path(document, request.entity_path, public_path)
            if service_path is not None:
                return rewrite_addresses(document, public_base, path=service_path)
            # an XSD: no service address; references under the fetched path move with it
            return rewrite_addresses(
                document, public_base, path=public_path, private_origins=[private]
            )
        except SoapError as exc:  # not a document we can rewrite: pass it through
            log.warning("could not rewrite the addresses of %s: %s", url, exc)
            return document

    def _public_service_path(
        self, document: bytes, entity_path: str, public_path: str
    ) -> str | None:
        """The relay path of the service the WSDL names, or None for a document without one.

        ``{target}/rest`` maps to ``/{entity}/rest``; an address outside the target
        maps to the path the WSDL was fetched at.
        """
        root = parse_xml(document)
        location = next(
            (el.get("location") for el in root.iter(*_ADDRESS_TAGS) if el.get("location")), None
        )
        if location is None:
            return None
        path = urlsplit(location).path.rstrip("/")
        base = urlsplit(self.target).path.rstrip("/")
        if path == base or path.startswith(base + "/"):
            return "/" + entity_path + path[len(base) :]
        return public_path


async def _request_body(body: AsyncIterator[bytes]) -> bytes | AsyncIterator[bytes]:
    """Small bodies as bytes (sent with Content-Length), large ones as a stream."""
    head = bytearray()
    async for chunk in body:
        head += chunk
        if len(head) > _BUFFER_REQUEST:
            return _chain(bytes(head), body)
    return bytes(head)


async def _chain(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield head
    async for chunk in rest:
        yield chunk


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."


async def _forward(connection_string: ConnectionString, entity: str, target: str,
                   proxy: str | bool | None) -> None:
    forwarder = Forwarder(target)
    host = RelayServiceHost(
        forwarder, RelayAddress.from_connection_string(connection_string, entity),
        # Streamed (WCF's TransferMode.Streamed): bodies pass through unparsed, of any
        # size; the relay's entity limit is the only one.
        binding=WebHttpRelayBinding(max_received_message_size=STREAMED),
        connection_string=connection_string, proxy=proxy,
    )
    stop = asyncio.Event()
    host.add_status_callback(lambda status: stop.set() if status is HostStatus.OFFLINE else None)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with host:
            print(f"soaprelay: forwarding {host.public_address} -> {target}", flush=True)
            await stop.wait()
            gave_up = host.status is HostStatus.OFFLINE
            error = host.last_error
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if gave_up:
        raise error if isinstance(error, HostError) else HostError(str(error))


def run_forwarder(connection_string: ConnectionString, entity: str, target: str,
                  proxy: str | bool | None = True) -> None:
    """Forward relay entity ``entity`` to ``target`` until SIGINT/SIGTERM (blocking).

    ``proxy``: the HTTP CONNECT proxy to the relay (a URL), the environment's (True),
    or none (None).

    Prints ``soaprelay: forwarding <relay url> -> <target>`` once online.

    Raises:
        ConfigurationError: bad target or entity.
        HostError: the relay refused the listener, or it could not come online
            (``ProxyFailed`` when the proxy on the way refused or failed).
    """
    asyncio.run(_forward(connection_string, entity, target, proxy))

