"""soap.quotas: the incremental parser stops at the first quota exceeded, before the rest is read."""

from __future__ import annotations

import pytest

from soap.exceptions import MalformedXml
from soap.quotas import (
    DtdRefused,
    MessageTooLarge,
    Quota,
    QuotaExceeded,
    QuotaParser,
    ReaderQuotas,
    parse_whole,
)

ENV = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
END = b"</s:Body></s:Envelope>"


def parse(document: bytes, quotas: ReaderQuotas | None = None, *, max_size: int = 1 << 30,
          chunk: int = 7) -> QuotaParser:
    parser = QuotaParser(quotas or ReaderQuotas(), max_size=max_size)
    for start in range(0, len(document), chunk):
        parser.feed(document[start : start + chunk])
    parser.close()
    return parser


def quota_of(document: bytes, quotas: ReaderQuotas | None = None, chunk: int = 4096) -> Quota:
    with pytest.raises(QuotaExceeded) as caught:
        parse(document, quotas, chunk=chunk)
    return caught.value.quota


def test_a_normal_envelope_passes_and_keeps_its_tree() -> None:
    document = ENV + b'<m:Get xmlns:m="urn:m" a="1"><m:id>7</m:id>tail</m:Get>' + END
    parser = QuotaParser(ReaderQuotas(), max_size=len(document))
    for byte in range(len(document)):
        parser.feed(document[byte : byte + 1])
    root = parser.close()
    assert root.findtext(".//{urn:m}id") == "7" and parser.elements == 4


def test_depth_over_the_quota_names_max_depth() -> None:
    deep = ENV + b"<a>" * 200 + b"</a>" * 200 + END
    with pytest.raises(QuotaExceeded) as caught:
        parse(deep)
    assert str(caught.value) == (
        "The maximum depth (32) was exceeded while reading XML (reader quota MaxDepth)"
    )
    assert parse(ENV + b"<a>" * 30 + b"</a>" * 30 + END).elements == 32  # exactly the quota


def test_string_content_and_attribute_values_are_bounded() -> None:
    quotas = ReaderQuotas(max_string_content_length=10)
    assert quota_of(ENV + b"<a>" + b"x" * 11 + b"</a>" + END, quotas) is (
        Quota.MAX_STRING_CONTENT_LENGTH)
    assert quota_of(ENV + b'<a v="' + b"x" * 11 + b'"/>' + END, quotas) is (
        Quota.MAX_STRING_CONTENT_LENGTH)
    assert quota_of(ENV + b"<a><b/>" + b"y" * 11 + b"</a>" + END, quotas) is (
        Quota.MAX_STRING_CONTENT_LENGTH)  # a tail counts too
    parse(ENV + b"<a>" + b"x" * 10 + b"</a>" + END, quotas)


def test_repeated_children_are_bounded_by_the_array_length() -> None:
    quotas = ReaderQuotas(max_array_length=100)
    assert quota_of(ENV + b"<a>" + b"<i/>" * 101 + b"</a>" + END, quotas) is Quota.MAX_ARRAY_LENGTH
    parse(ENV + b"<a>" + b"<i/>" * 100 + b"</a>" + END, quotas)


def test_the_element_count_is_bounded_across_parents() -> None:
    quotas = ReaderQuotas(max_elements=1000)  # 20 parents of 50: no array is over its quota
    document = ENV + (b"<b>" + b"<i/>" * 50 + b"</b>") * 20 + END
    assert quota_of(document, quotas) is Quota.MAX_ELEMENTS


def test_distinct_names_and_namespaces_fill_the_name_table() -> None:
    names = b"".join(b"<n%06d/>" % i for i in range(100_000))
    assert quota_of(ENV + names + END) is Quota.MAX_NAME_TABLE_CHAR_COUNT
    spaces = b"".join(b'<x xmlns="urn:%06d"/>' % i for i in range(5000))
    assert quota_of(ENV + spaces + END) is Quota.MAX_NAME_TABLE_CHAR_COUNT
    repeated = b"<same/>" * 10_000  # one name, many times: no growth
    parse(ENV + b"<a>" + repeated + b"</a>" + END)


def test_the_parse_stops_at_the_first_excess_not_at_the_end() -> None:
    parser = QuotaParser(ReaderQuotas(max_array_length=10), max_size=1 << 30)
    parser.feed(ENV + b"<a>")
    fed = 0
    with pytest.raises(QuotaExceeded):
        for _ in range(1_000_000):
            parser.feed(b"<i/>")
            fed += 1
    assert fed == 10  # the 11th child stopped it


def test_more_bytes_than_the_size_limit_stop_the_feed() -> None:
    parser = QuotaParser(ReaderQuotas(), max_size=100)
    parser.feed(ENV)
    with pytest.raises(MessageTooLarge) as caught:
        parser.feed(b"<a/>" * 20)
    assert caught.value.limit == 100 and "MaxReceivedMessageSize" in str(caught.value)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""
XXE = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'


@pytest.mark.parametrize("document", [
    BILLION_LAUGHS, XXE,
    b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>',
    '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x [<!ENTITY e "y">]><x>&e;</x>'.encode(
        "utf-16"),
])
@pytest.mark.parametrize("chunk", [1, 4, 4096])
def test_a_dtd_is_refused_whatever_the_chunks_and_encoding(document: bytes, chunk: int) -> None:
    with pytest.raises(DtdRefused, match="DTDs are not allowed"):
        parse(document, chunk=chunk)


def test_malformed_xml_is_malformed_xml() -> None:
    with pytest.raises(MalformedXml, match="not well-formed") as caught:
        parse(b"<a><b></a>")
    assert not isinstance(caught.value, DtdRefused)


@pytest.mark.parametrize("field", ["max_depth", "max_string_content_length", "max_array_length",
                                   "max_name_table_char_count", "max_elements"])
def test_quotas_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ReaderQuotas(**{field: 0})


def _outcome(parse_it: object) -> tuple[str, str]:
    """``(tree, "")`` or ``(error class, message)`` of a parse."""
    from lxml import etree

    try:
        root = parse_it()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the outcome compared, whatever it is
        return type(exc).__name__, str(exc)
    return etree.tostring(root).decode(), ""


TIGHT = ReaderQuotas(max_depth=4, max_string_content_length=40, max_array_length=3,
                     max_name_table_char_count=90, max_elements=12)


@pytest.mark.parametrize("document", [
    ENV + b'<m:Get xmlns:m="urn:m" a="1"><m:id>7</m:id>tail</m:Get>' + END,  # fast path
    ENV + b"<a><b/></a>" + END,  # depth 4: exactly the quota
    ENV + b"<a><b><c/></b></a>" + END,  # depth 5
    ENV + b"<a>" * 30 + b"</a>" * 30 + END,  # depth 32
    ENV + b"<a>" * 31 + b"</a>" * 31 + END,  # depth 33
    ENV + b"<a>" + b"<i/>" * 4 + b"</a>" + END,  # array
    ENV + b"<a>" + b"x" * 41 + b"</a>" + END,  # string
    ENV + b"<a>" + b"<i/>" * 3 + b"</a><b/><c/><d/><e/><f/><g/>" + END,  # elements
    b"<!DOCTYPE a><a/>",
    b'<?xml version="1.0"?><a><![CDATA[<!DOCTYPE]]></a>',
    ENV + b"<a>" + END,  # not well-formed
    b"",
    b"<a/>" * 2,
    "<a>\u00e9t\u00e9</a>".encode("utf-16"),
], ids=["normal", "deep-ok", "too-deep", "depth-32", "depth-33", "array", "string", "elements", "doctype", "cdata",
        "malformed", "empty", "two-roots", "utf-16"])
@pytest.mark.parametrize("quotas", [ReaderQuotas(), TIGHT], ids=["default", "tight"])
def test_parse_whole_answers_as_the_incremental_parser(document: bytes, quotas: ReaderQuotas) -> None:
    """The whole-message shortcut gives the same tree, or the same error, as QuotaParser."""

    def incremental() -> object:
        parser = QuotaParser(quotas, max_size=1 << 20)
        parser.feed(document)
        return parser.close()

    assert _outcome(lambda: parse_whole(document, quotas, max_size=1 << 20)) == _outcome(incremental)


def test_parse_whole_refuses_a_message_over_its_size() -> None:
    with pytest.raises(MessageTooLarge):
        parse_whole(ENV + END, ReaderQuotas(), max_size=len(ENV + END) - 1)
