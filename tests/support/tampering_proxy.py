"""A tampering HTTP proxy in front of the relay, for the WS-Security end-to-end tests.

Clients use it as their HTTP forward proxy (``session.proxies``), so URLs, token
audiences and the WS-Addressing ``To`` stay the relay's, exactly as with a
man-in-the-middle on the path. It runs on 127.0.0.1, port 0, in its own thread
and event loop, and forwards every request to the relay, POST bodies changed
according to :attr:`TamperingProxy.mode`:

- ``Tamper.NONE``: byte for byte (and the body is kept as :attr:`captured`);
- ``Tamper.BODY_BYTE``: one digit in the SOAP Body's text changed;
- ``Tamper.REPLAY``: the body of an earlier honest request sent instead;
- ``Tamper.WRAP_BODY``: signature wrapping (XSW): the signed Body moved into a
  header wrapper, a forged Body (no Id, another digit) in its place;
- ``Tamper.CHARSET``: a charset differential (:func:`smuggle_utf7`): as UTF-8 the
  bytes are the signed message plus unsigned text, as UTF-7 (the
  ``Content-Type`` charset the proxy sets) a forged Body with another digit.

Replies come back unchanged, unless :attr:`TamperingProxy.reply_with` holds
bytes to answer with instead (a reply stolen from another call).

The transformations are plain functions on bytes, usable without the proxy.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import enum
import re
import threading
from typing import Self

import aiohttp
import requests
from aiohttp import web
from lxml import etree

from soap.envelope import Envelope, SoapVersion
from soap.security.header import WSU_ID

__all__ = [
    "Tamper",
    "TamperingProxy",
    "change_body_digit",
    "smuggle_utf7",
    "with_charset",
    "wrap_body",
]

_HOP_BY_HOP = frozenset({
    "connection", "content-length", "host", "keep-alive", "proxy-authorization",
    "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
})  # fmt: skip
_BODY_START = re.compile(rb"<(?:[\w.-]+:)?Body[\s>]")
_DIGIT_TEXT = re.compile(rb">\s*(\d)")
_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*\?>\s*")
_CHARSET = re.compile(r";\s*charset\s*=\s*[^;]*", re.IGNORECASE)


class Tamper(enum.Enum):
    """What the proxy does to the POST bodies it forwards."""

    NONE = "none"
    BODY_BYTE = "body-byte"
    REPLAY = "replay"
    WRAP_BODY = "wrap-body"
    CHARSET = "charset"


def change_body_digit(data: bytes) -> bytes:
    """``data`` with the first digit of text inside the SOAP Body changed (7 -> 8)."""
    body = _BODY_START.search(data)
    assert body is not None, "no SOAP Body"
    digit = _DIGIT_TEXT.search(data, body.end())
    assert digit is not None, "no digit in the Body's text"
    at = digit.start(1)
    changed = str((int(data[at : at + 1]) + 1) % 10).encode()
    return data[:at] + changed + data[at + 1 :]


def wrap_body(data: bytes) -> bytes:
    """Signature wrapping: the signed Body into a header wrapper, a forged one in its place."""
    envelope = Envelope.from_bytes(data)
    body = envelope.body
    forged = copy.deepcopy(body)
    forged.attrib.pop(WSU_ID, None)
    forged_bytes = change_body_digit(etree.tostring(forged))
    body.addnext(etree.fromstring(forged_bytes))
    header = envelope.header
    assert header is not None, "a signed message has a Header"
    etree.SubElement(header, "{urn:attacker}Wrapper").append(body)
    return bytes(etree.tostring(envelope.root, xml_declaration=True, encoding="utf-8"))


def _utf7(text: str) -> bytes:
    """``text`` as one UTF-7 base64 run: no ``<``, ``>`` or ``--`` shows as UTF-8."""
    return b"+" + base64.b64encode(text.encode("utf-16-be")).rstrip(b"=") + b"-"


def _tag(element: etree._Element) -> str:
    qname = etree.QName(element)
    return qname.localname if element.prefix is None else f"{element.prefix}:{qname.localname}"


def smuggle_utf7(data: bytes) -> bytes:
    """A signed request that reads as another one in UTF-7 (the auditor's charset attack).

    Read as UTF-8 (its own encoding once the XML declaration is gone), the
    result is ``data``'s signed infoset plus an unsigned header ``x:A`` holding
    UTF-7 text (and, in SOAP 1.1, a trailing extension element ``x:C``; in SOAP
    1.2, where nothing may follow the Body, a processing instruction). Read as
    UTF-7, ``x:A`` closes the Header and opens a forged Body (the first digit
    changed), then ``<!--`` swallows the real Body up to the ``-->`` at the end::

        UTF-8: ...<x:A>+ADw-/x:A+AD4-...</x:A></s:Header><s:Body wsu:Id=..>7</s:Body>
               <x:C>+AC0ALQA+-</x:C></s:Envelope>
        UTF-7: ...<x:A></x:A></s:Header><s:Body>8</s:Body><x:C><!--...the signed
               Body...--></x:C></s:Envelope>
    """
    data = _XML_DECLARATION.sub(b"", data).replace(b"+", b"&#43;")  # same infoset in UTF-8
    assert b"--" not in data, "a comment swallowing this message would end early"
    envelope = Envelope.from_bytes(data)
    assert envelope.header is not None, "a signed message has a Header"
    header, body = _tag(envelope.header), _tag(envelope.body)
    payload = b"".join(etree.tostring(child, with_tail=False) for child in envelope.body)
    forged = change_body_digit(f"<{body}>".encode() + payload + f"</{body}>".encode())
    if envelope.version is SoapVersion.SOAP11:
        opener, closer = '<x:C xmlns:x="urn:x"><!--', b'<x:C xmlns:x="urn:x">%b</x:C>'
    else:
        opener, closer = "<!--", b"<?x %b ?>"
    hidden = _utf7(f"</x:A></{header}>{forged.decode()}{opener}")
    end_header = f"</{header}>".encode()
    data = data.replace(end_header, b'<x:A xmlns:x="urn:x">' + hidden + b"</x:A>" + end_header, 1)
    at = data.rindex(f"</{_tag(envelope.root)}>".encode())
    return data[:at] + closer % _utf7("-->") + data[at:]


def with_charset(content_type: str, charset: str) -> str:
    """``content_type`` with its charset parameter replaced by (or given) ``charset``."""
    return f"{_CHARSET.sub('', content_type)}; charset={charset}"


class TamperingProxy:
    """A forward proxy that can tamper with what it forwards (see the module docstring).

    Attributes:
        mode: What to do to the next POST bodies.
        captured: The last POST body forwarded unchanged (what REPLAY sends).
        sent: Every POST body as the client sent it.
        replies: Every reply body as the relay answered it.
        reply_with: When set, the body every POST is answered with instead.
    """

    def __init__(self) -> None:
        self.mode = Tamper.NONE
        self.reply_with: bytes | None = None
        self.captured: bytes | None = None
        self.sent: list[bytes] = []
        self.replies: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, session: requests.Session) -> None:
        """Send ``session``'s plain-HTTP requests through this proxy."""
        session.trust_env = False  # no proxy settings from the environment
        session.proxies = {"http": self.url}

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _tamper(self, body: bytes) -> bytes:
        if self.mode is Tamper.NONE:
            self.captured = body
            return body
        if self.mode is Tamper.BODY_BYTE:
            return change_body_digit(body)
        if self.mode is Tamper.WRAP_BODY:
            return wrap_body(body)
        if self.mode is Tamper.CHARSET:
            return smuggle_utf7(body)
        assert self.captured is not None, "nothing captured to replay"
        return self.captured

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        if request.method == "POST":
            self.sent.append(body)
            body = self._tamper(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        if request.method == "POST" and self.mode is Tamper.CHARSET:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            headers["Content-Type"] = with_charset(request.headers.get("Content-Type", ""), "utf-7")
        async with self._session.request(
            request.method, str(request.url), headers=headers, data=body, allow_redirects=False
        ) as upstream:
            content = await upstream.read()
            kept = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP]
        if request.method == "POST":
            self.replies.append(content)
            content = content if self.reply_with is None else self.reply_with
        return web.Response(status=upstream.status, headers=kept, body=content)
