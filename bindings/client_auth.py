"""The sender's relay token on each HTTP request: one auth callable for requests and httpx.

The token travels (PROTOCOL.md section 2) in the ``ServiceBusAuthorization``
HTTP header, asked of the token provider for every request so renewal is
automatic. Its audience is the entity URL, ``http[s]://host:port/entity``, and
it goes only to the relay's host and port: an XSD imported from elsewhere or a
private address left in a WSDL never sees it (:class:`Audience`).

:class:`RelayAuth` is a plain callable, ``request -> request``, which both HTTP
libraries take as ``auth``: requests calls it with a ``PreparedRequest``,
httpx (wrapping it in its ``FunctionAuth``) with an ``httpx.Request``; both
have ``method``, ``url`` and a mutable ``headers``::

    auth = RelayAuth(provider, Audience("payroll", ["http://relay:9350/payroll?wsdl"]))
    requests.Session().auth = auth
    httpx.Client(auth=auth)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from bindings.tokens import TokenProvider

__all__ = ["AUTH_HEADER", "Audience", "RelayAuth"]

#: The HTTP header a sender's token travels in (PROTOCOL.md section 2, place 2).
AUTH_HEADER = "ServiceBusAuthorization"


class HttpRequest(Protocol):
    """What :class:`RelayAuth` needs of a request (requests' and httpx's both have it)."""

    method: str | None
    headers: MutableMapping[str, str]

    @property
    def url(self) -> object: ...


Request = TypeVar("Request", bound=HttpRequest)


class Audience:
    """Maps a request URL to the entity URL a token must be signed for.

    Args:
        entity_path: The entity the client talks to (e.g. ``payroll``); requests
            to any path go with a token for ``<origin>/<entity_path>``. When
            None, the request URL's own path (without query) is the audience.
        relay_origins: URLs of the relay; requests to any other host and port
            (an XSD imported from elsewhere, a private address in a WSDL) get
            no token at all. None sends tokens everywhere.
    """

    def __init__(self, entity_path: str | None, relay_origins: Iterable[str] | None = None) -> None:
        self._entity = entity_path.strip("/") if entity_path else None
        self._origins = None if relay_origins is None else {_origin(u) for u in relay_origins}

    def __call__(self, url: str) -> str | None:
        """The audience for a request to ``url``, or None when it is not for the relay."""
        if self._origins is not None and _origin(url) not in self._origins:
            return None
        parts = urlsplit(url)
        path = self._entity if self._entity is not None else parts.path.strip("/")
        scheme = "https" if parts.scheme in ("https", "wss", "sb") else "http"
        return f"{scheme}://{parts.netloc}/{path}"


def _origin(url: str) -> str:
    """``host:port`` of a URL, lower-cased, with the scheme's default port filled in."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = 443 if parts.scheme in ("https", "wss") else 80
    return f"{(parts.hostname or '').lower()}:{port or default}"


class RelayAuth:
    """Puts a fresh token in the ``ServiceBusAuthorization`` header of each request.

    Args:
        token_provider: Asked for a token on every request (it caches and renews).
        audience: Maps the request URL to the token's audience (None: send no token).
        skip_posts: Leave POSTs alone (their token is in the SOAP header).
    """

    def __init__(
        self,
        token_provider: TokenProvider,
        audience: Callable[[str], str | None],
        *,
        skip_posts: bool = False,
    ) -> None:
        self._provider, self._audience, self._skip_posts = token_provider, audience, skip_posts

    def __repr__(self) -> str:
        return f"RelayAuth({self._provider!r}, skip_posts={self._skip_posts})"

    def __call__(self, request: Request) -> Request:
        if self._skip_posts and (request.method or "").upper() == "POST":
            return request
        url = request.url
        audience = self._audience("" if url is None else str(url))
        if audience is not None:
            request.headers[AUTH_HEADER] = self._provider.get_token(audience).text
        return request
