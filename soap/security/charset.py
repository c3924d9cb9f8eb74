"""One byte string, one document: the HTTP charset must name the encoding the XML was read in.

A receiver verifies a message as XML reads its bytes: by the byte order mark,
else the XML declaration's ``encoding``, else UTF-8 (XML 1.0 section 4.3.3 and
appendix F). The framework behind it may read the same bytes differently: Spyne
decodes the request with the ``Content-Type`` charset before it parses. When
the two encodings differ, the bytes hold two documents, and the signature
vouches for the wrong one. For example, UTF-7 markup hidden in an unsigned
header, sent with ``Content-Type: text/xml; charset=utf-7``::

    as UTF-8 (what the signature check reads):
    <s:Header>... <x:A>+ADw-/x:A+AD4-+ADw-/s:Header+AD4-+ADw-s:Body+AD4-...999...+ADw-!--</x:A>
    </s:Header><s:Body wsu:Id="id-2">...7...</s:Body><x:C>+AC0-+AC0-+AD4-</x:C>

    as UTF-7 (what the application reads):
    <s:Header>... <x:A></x:A></s:Header><s:Body>...999...</s:Body><!-- ...the signed
    Body, commented out... --></x:C>

:func:`check_charset` refuses such a request: every ``charset`` parameter in
the ``Content-Type`` (found however a parser might split the header) must name
the document's own encoding, and only UTF-8 and UTF-16 with a byte order mark,
the encodings every XML processor reads (XML 1.0 section 4.3.3: "All XML
processors MUST be able to read entities in both the UTF-8 and UTF-16
encodings"), are accepted, so no two decoders of an exotic encoding can
disagree. A ``Content-Type`` without a charset leaves the document to speak for
itself and is accepted.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from soap.exceptions import MalformedXml

__all__ = ["ACCEPTED_ENCODINGS", "check_charset", "document_encoding"]

#: The document encodings accepted (Python codec names).
ACCEPTED_ENCODINGS = frozenset({"utf-8", "utf-16"})
#: Any ``charset=value``, quoted or not, wherever it stands in the header.
_CHARSET_PARAM = re.compile(r'charset\s*=\s*"?([^";,\s]*)', re.IGNORECASE)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def _codec_name(label: str) -> str | None:
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def document_encoding(data: bytes, root: etree._Element) -> str:
    """The encoding the XML parser read ``data`` in, as a Python codec name.

    A byte order mark decides first (lxml's ``docinfo.encoding`` reports UTF-8
    for a UTF-16 document with a BOM and no declaration); then the XML
    declaration; then UTF-8, XML's default.

    Args:
        data: The document's bytes.
        root: Its root element, as parsed from ``data``.
    """
    if data.startswith(_UTF32_BOMS):
        return "utf-32"
    if data.startswith(_UTF16_BOMS):
        return "utf-16"
    declared = root.getroottree().docinfo.encoding or "UTF-8"
    return _codec_name(declared) or declared.lower()


def check_charset(content_type: str, data: bytes, root: etree._Element) -> str:
    """Refuse bytes that a reader going by ``content_type`` would read as another document.

    Args:
        content_type: The HTTP ``Content-Type`` value ("" when there is none).
        data: The document's bytes.
        root: Its root element, as parsed from ``data``.

    Returns:
        The document's encoding (a key of :data:`ACCEPTED_ENCODINGS`).

    Raises:
        MalformedXml: The document is not UTF-8 or UTF-16 with a byte order
            mark, or a ``charset`` parameter names another encoding.
    """
    encoding = document_encoding(data, root)
    if encoding not in ACCEPTED_ENCODINGS:
        raise MalformedXml(f"the document is in {encoding}; only UTF-8 and UTF-16 are accepted")
    if encoding == "utf-16" and not data.startswith(_UTF16_BOMS):
        raise MalformedXml("a UTF-16 document must start with a byte order mark")
    for label in _CHARSET_PARAM.findall(content_type):
        if label and _codec_name(label) != encoding:
            raise MalformedXml(
                f"the Content-Type charset {label[:40]!r} is not the document's encoding"
                f" ({encoding}): the bytes would read as another document"
            )
    return encoding
