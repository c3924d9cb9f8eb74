"""Secrets out before anything is stored: SAS tokens, RelayAccessToken, passwords. No I/O.

The inspector keeps what it captured for anyone with the console to read, so it
masks first, then stores::

    Authorization: SharedAccessSignature sr=...&sig=abc   ->  Authorization: ***
    ?sb-hc-token=SharedAccessSignature...                 ->  ?sb-hc-token=***
    <RelayAccessToken>SharedAccessSignature ...</...>     ->  <RelayAccessToken>***</...>
    <wsse:Password Type="...#PasswordText">pw</...>       ->  <wsse:Password Type="...">***</...>
    ...sig=abc&se=1...  SharedAccessKey=key                ->  sig=***  SharedAccessKey=***

Every match is replaced whatever its namespace prefix; a body too broken to
match keeps no token anyway because the last two rules apply to any text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "mask_body", "mask_headers", "mask_query"]

MASK = "***"
_SECRET_HEADERS = frozenset({"authorization", "servicebusauthorization", "proxy-authorization",
                             "cookie", "set-cookie"})
_ELEMENTS = re.compile(
    rb"(<(?:[\w.-]+:)?(RelayAccessToken|Password|Nonce|BinarySecurityToken)\b[^>]*>)"
    rb"[^<]*(</(?:[\w.-]+:)?\2\s*>)"
)
_ELEMENT_NAMES = (b"RelayAccessToken", b"Password", b"Nonce", b"BinarySecurityToken")
_SIG = re.compile(rb"((?:\bsig|SharedAccessKey|sb-hc-token)=)[^&;\"'<\s]+", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"((?:^|&)(?:sb-hc-token|sig|code|token)=)[^&]*", re.IGNORECASE)


def _may_hold_sig(text: bytes) -> bool:
    """A cheap test before the regular expression: most values hold no token."""
    low = text.lower()
    return b"sig=" in low or b"sharedaccesskey=" in low or b"sb-hc-token=" in low


def mask_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` with credential headers' values masked, and tokens inside others."""
    out = []
    for name, value in headers:
        if name.lower() in _SECRET_HEADERS:
            out.append((name, MASK))
            continue
        raw = value.encode("utf-8", "replace")
        if _may_hold_sig(raw):
            value = _SIG.sub(rb"\1" + MASK.encode(), raw).decode("utf-8", "replace")
        out.append((name, value))
    return out


def mask_query(query: str) -> str:
    """A raw query string with token parameters masked."""
    return _QUERY_SECRET.sub(r"\1" + MASK, query)


def mask_body(body: bytes) -> bytes:
    """A SOAP (or any) body with token and password element contents masked."""
    if any(name in body for name in _ELEMENT_NAMES):
        body = _ELEMENTS.sub(rb"\1" + MASK.encode() + rb"\3", body)
    return _SIG.sub(rb"\1" + MASK.encode(), body) if _may_hold_sig(body) else body
