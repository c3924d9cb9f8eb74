"""Tests for soap.security.charset: the HTTP charset must be the document's own encoding."""

from __future__ import annotations

import codecs
import re

import pytest

from soap.envelope import parse_xml
from soap.exceptions import MalformedXml
from soap.security.charset import check_charset, document_encoding

DOC = "<a>é</a>"
UTF8 = DOC.encode()
UTF16_LE = codecs.BOM_UTF16_LE + DOC.encode("utf-16-le")
UTF16_BE = codecs.BOM_UTF16_BE + DOC.encode("utf-16-be")
DECLARED_UTF16 = '<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16")
LATIN1 = b'<?xml version="1.0" encoding="ISO-8859-1"?><a>\xe9</a>'
UTF7 = b'<?xml version="1.0" encoding="UTF-7"?><a>+AOk-</a>'


def check(content_type: str, data: bytes) -> str:
    return check_charset(content_type, data, parse_xml(data))


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (UTF8, "utf-8"),
        (codecs.BOM_UTF8 + UTF8, "utf-8"),
        (b'<?xml version="1.0" encoding="utf8"?><a/>', "utf-8"),
        # lxml's docinfo says UTF-8 for these: the byte order mark decides.
        (UTF16_LE, "utf-16"),
        (UTF16_BE, "utf-16"),
        (DECLARED_UTF16, "utf-16"),
        (LATIN1, "iso8859-1"),
        (UTF7, "utf-7"),
    ],
)
def test_document_encoding(data: bytes, encoding: str) -> None:
    assert document_encoding(data, parse_xml(data)) == encoding


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("", UTF8),
        ("text/xml", UTF8),
        ("text/xml; charset=utf-8", UTF8),
        ("text/xml; Charset=UTF8", UTF8),
        ('text/xml; charset="utf-8"', UTF8),
        ('application/soap+xml; charset=utf-8; action="urn:payroll/GetSalary"', UTF8),
        ("text/xml; charset=", UTF8),  # empty: no charset, as Spyne reads it
        ("text/xml; charset=utf-16", UTF16_LE),
        ("application/soap+xml; charset=UTF-16", UTF16_BE),
        ("text/xml", DECLARED_UTF16),
    ],
)
def test_a_charset_naming_the_document_encoding_is_accepted(
    content_type: str, data: bytes
) -> None:
    assert check(content_type, data) in ("utf-8", "utf-16")


@pytest.mark.parametrize(
    ("content_type", "data", "message"),
    [
        ("text/xml; charset=utf-7", UTF8, "charset 'utf-7' is not the document's encoding (utf-8)"),
        ("application/soap+xml; charset=utf-7", UTF8, "charset 'utf-7'"),
        ('text/xml; charset="UTF-7"', UTF8, "charset 'UTF-7'"),
        ("text/xml; CHARSET = utf-7", UTF8, "charset 'utf-7'"),
        # Whichever of two a parser keeps (cgi keeps the last), both must agree.
        ("text/xml; charset=utf-8; charset=utf-7", UTF8, "charset 'utf-7'"),
        ("text/xml; charset=utf-7; charset=utf-8", UTF8, "charset 'utf-7'"),
        ("text/xml; charset=iso-8859-1", UTF8, "charset 'iso-8859-1'"),
        ("text/xml; charset=utf-16", UTF8, "charset 'utf-16'"),
        ("text/xml; charset=utf-8", UTF16_LE, "not the document's encoding (utf-16)"),
        # Python's utf-16-le keeps the BOM as a character; lxml reads it as a BOM.
        ("text/xml; charset=utf-16-le", UTF16_LE, "charset 'utf-16-le'"),
        ("text/xml; charset=x-no-such-codec", UTF8, "charset 'x-no-such-codec'"),
        ("text/xml", LATIN1, "the document is in iso8859-1; only UTF-8 and UTF-16"),
        ("text/xml; charset=utf-7", UTF7, "the document is in utf-7"),
    ],
)  # fmt: skip
def test_a_charset_that_reads_the_bytes_otherwise_is_refused(
    content_type: str, data: bytes, message: str
) -> None:
    with pytest.raises(MalformedXml, match=re.escape(message)):
        check(content_type, data)


def test_utf16_without_a_byte_order_mark_is_refused() -> None:
    data = '<?xml version="1.0" encoding="UTF-16LE"?><a/>'.encode("utf-16-le")
    with pytest.raises(MalformedXml, match="only UTF-8 and UTF-16"):
        check("text/xml", data)
