"""What the relay does to headers and request targets on the way through. No I/O.

PROTOCOL.md §2 and §3: a sender's token may sit in four places, checked in
order, and is removed before the request reaches a listener; hop-by-hop and
framing headers never cross the relay; ``Via`` names the relay.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl

from hc.messages import Headers

__all__ = [
    "FRAMING_HEADERS",
    "TokenLocation",
    "find_token",
    "forwarded_request_headers",
    "forwarded_response_headers",
    "oversized_head",
    "query_pairs",
    "reason_phrase",
    "request_target",
]

#: Never forwarded in either direction: the relay frames each hop itself.
FRAMING_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_TOKEN_QUERY = "sb-hc-token"
_SB_AUTH = "servicebusauthorization"
_AUTHORIZATION = "authorization"
_SAS_PREFIX = "SharedAccessSignature "


class TokenLocation(enum.Enum):
    """Where a sender's token was found, in the order they are checked."""

    QUERY = "sb-hc-token"
    SERVICE_BUS_HEADER = "ServiceBusAuthorization"
    AUTHORIZATION_HEADER = "Authorization"
    SOAP_HEADER = "RelayAccessToken"


_DROP_FORWARDED = FRAMING_HEADERS | {_SB_AUTH, "via"}
_DROP_FORWARDED_AUTH = _DROP_FORWARDED | {_AUTHORIZATION}
_DROP_RESPONSE = FRAMING_HEADERS | {"via"}
#: RFC 9110 §5.1/§5.5: a field name is a token; a value has no CR, LF or NUL.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def find_token(
    query: Iterable[tuple[str, str]], headers: Iterable[tuple[str, str]]
) -> tuple[str | None, TokenLocation | None]:
    """The sender's token and where it was, from the query and HTTP headers.

    The ``Authorization`` header counts only when it carries a SAS token, so a
    ``Basic`` credential meant for the service behind the relay passes through.
    The SOAP header location is looked at by the caller, only when this finds none.
    """
    token = next((v for k, v in query if k == _TOKEN_QUERY), None)
    if token:
        return token, TokenLocation.QUERY
    service_bus = authorization = None
    for name, value in headers:  # one pass: this runs for every relayed request
        lowered = name.lower()
        if lowered == _SB_AUTH:
            service_bus = service_bus or value
        elif lowered == _AUTHORIZATION and authorization is None:
            authorization = value
    if service_bus:
        return service_bus, TokenLocation.SERVICE_BUS_HEADER
    if authorization and authorization.startswith(_SAS_PREFIX):
        return authorization, TokenLocation.AUTHORIZATION_HEADER
    return None, None


def _forward(
    headers: Iterable[tuple[str, str]], drop: frozenset[str], relay_host: str
) -> Headers:
    """``headers`` minus ``drop``, with this relay's hop added to (the first) ``Via``."""
    kept: list[tuple[str, str]] = []
    via = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == "via" and via is None:
            via = value
        if lowered not in drop:
            kept.append((name, value))
    hop = f"1.1 {relay_host}"
    kept.append(("Via", f"{via}, {hop}" if via else hop))
    return tuple(kept)


def forwarded_request_headers(
    headers: Iterable[tuple[str, str]], token_location: TokenLocation | None, relay_host: str
) -> Headers:
    """Sender headers as a listener sees them: credentials and framing removed, Via added."""
    by_authorization = token_location is TokenLocation.AUTHORIZATION_HEADER
    return _forward(
        headers, _DROP_FORWARDED_AUTH if by_authorization else _DROP_FORWARDED, relay_host
    )


def forwarded_response_headers(
    headers: Iterable[tuple[str, str]], relay_host: str, dropped: list[str] | None = None
) -> Headers:
    """Listener response headers as the sender sees them: framing removed, Via added.

    A listener's header that could not be written as HTTP (a name that is not a
    token, a value with CR, LF or NUL: response splitting) is left out, and its
    name added to ``dropped`` for the caller to report.
    """
    valid = []
    for name, value in headers:
        if _FIELD_NAME.fullmatch(name) and not _BAD_VALUE.search(value):
            valid.append((name, value))
        elif dropped is not None:
            dropped.append(name)
    return _forward(valid, _DROP_RESPONSE, relay_host)


#: A listener's response head larger than this is refused with 502, like nginx's
#: "upstream sent too big header": clients choke on thousands of fields (Node's
#: http parser stops at 16 KiB of head, aiohttp's client at 32 KiB per field).
MAX_RESPONSE_HEADERS = 100
MAX_RESPONSE_HEAD_BYTES = 32 * 1024


def oversized_head(headers: Iterable[tuple[str, str]]) -> str | None:
    """Why a listener's response headers cannot be forwarded, or None when they can."""
    count = size = 0
    for name, value in headers:
        count += 1
        size += len(name) + len(value) + 4  # ": " and CRLF
    if count > MAX_RESPONSE_HEADERS:
        return f"{count} header fields (at most {MAX_RESPONSE_HEADERS})"
    if size > MAX_RESPONSE_HEAD_BYTES:
        return f"{size} bytes of header fields (at most {MAX_RESPONSE_HEAD_BYTES})"
    return None


def request_target(raw_path: str, raw_query: str) -> str:
    """Path and query exactly as the sender sent them, minus every ``sb-hc-*`` parameter."""
    kept = [part for part in raw_query.split("&") if part and not part.startswith("sb-hc-")]
    return f"{raw_path}?{'&'.join(kept)}" if kept else raw_path


def reason_phrase(text: str) -> str | None:
    """``text`` as an HTTP reason phrase: printable ASCII only, at most 200 characters."""
    cleaned = "".join(ch for ch in text if 32 <= ord(ch) < 127)
    return cleaned[:200] or None


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Parse a raw query string keeping blank values and order."""
    return parse_qsl(raw_query, keep_blank_values=True) if raw_query else []
