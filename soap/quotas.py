"""WCF-style message size and reader quotas, checked while the XML is parsed.

A :class:`QuotaParser` takes a message chunk by chunk (as it arrives from the
relay), feeds each chunk to a hardened incremental lxml parser and checks every
parse event against the :class:`ReaderQuotas`: the first excess stops the parse
with :class:`QuotaExceeded`, before the rest of the message is read or any more
of the tree is built.  Over ``max_received_message_size`` bytes it stops with
:class:`MessageTooLarge`.  A DTD (and so any entity declaration: billion laughs,
XXE) is refused with :class:`~soap.exceptions.MalformedXml` as soon as it shows.

The defaults, beside WCF's (``BasicHttpBinding``, ``XmlDictionaryReaderQuotas``):

=================================  ===========  =========  ==========================
quota                              ours         WCF        label in the fault
=================================  ===========  =========  ==========================
``max_received_message_size``      2 MiB        64 KiB     MaxReceivedMessageSize
``max_depth``                      32           32         MaxDepth
``max_string_content_length``      1 MiB        8,192      MaxStringContentLength
``max_array_length``               16,384       16,384     MaxArrayLength
``max_name_table_char_count``      16,384       16,384     MaxNameTableCharCount
``max_elements``                   65,536       (none)     MaxElements
=================================  ===========  =========  ==========================

Why: WCF's 64 KiB message and 8 KiB string are the two quotas every WCF user
raises first (a few employees with photos, a PDF in base64).  2 MiB is what
Spyne itself accepts by default (``max_content_length``), so a Spyne service
behind the relay takes what it would take on its own, and a 1 MiB string carries
a 768 KB attachment in base64; one call's memory stays bounded (the README's
"Limits" section has the measurement).  Larger messages: raise both on the binding.  Depth, array and name-table keep WCF's
values: real SOAP contracts stay far below them and the error names the same
quota a WCF user knows.  ``max_elements`` is ours: an element costs far more as
an lxml node and then as a Spyne object than as bytes on the wire, so the
element count, not the byte count, is what bounds memory; 65,536 is four
full arrays.
"""

from __future__ import annotations

import enum
import functools
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from soap.exceptions import MalformedXml, RemoteSoapError

__all__ = [
    "DEFAULT_MAX_RECEIVED_MESSAGE_SIZE",
    "DtdRefused",
    "MessageTooLarge",
    "Quota",
    "QuotaExceeded",
    "QuotaParser",
    "ReaderQuotas",
    "parse_whole",
]

#: Ours: 2 MiB, Spyne's own default (WCF: 64 KiB); see the module docstring.
DEFAULT_MAX_RECEIVED_MESSAGE_SIZE = 2 * 1024 * 1024
#: Chunks are fed to libxml2 in pieces of at most this size, so one feed is short.
_FEED = 64 * 1024
_DOCTYPE = b"<!DOCTYPE"


class Quota(enum.Enum):
    """A reader quota, with the name WCF users know it by."""

    MAX_DEPTH = ("MaxDepth", "depth")
    MAX_STRING_CONTENT_LENGTH = ("MaxStringContentLength", "string content length")
    MAX_ARRAY_LENGTH = ("MaxArrayLength", "array length (children of one element)")
    MAX_NAME_TABLE_CHAR_COUNT = ("MaxNameTableCharCount", "name table character count")
    MAX_ELEMENTS = ("MaxElements", "element count")

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def what(self) -> str:
        return self.value[1]


class QuotaExceeded(RemoteSoapError):
    """A received document went over one of its reader quotas.

    Attributes:
        quota: which one.
        limit: its value.
    """

    def __init__(self, quota: Quota, limit: int) -> None:
        self.quota, self.limit = quota, limit
        super().__init__(
            f"The maximum {quota.what} ({limit}) was exceeded while reading XML"
            f" (reader quota {quota.label})"
        )


class DtdRefused(MalformedXml):
    """A received document has a DTD (entity declarations: billion laughs, XXE)."""

    def __init__(self) -> None:
        super().__init__("DTDs are not allowed in SOAP messages")


class MessageTooLarge(RemoteSoapError):
    """A received message is longer than ``max_received_message_size``.

    Attributes:
        limit: the size limit, in bytes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"The maximum message size quota for incoming messages ({limit} bytes) was"
            " exceeded (MaxReceivedMessageSize)"
        )


@dataclass(frozen=True)
class ReaderQuotas:
    """WCF's ``XmlDictionaryReaderQuotas``, plus an element count.

    Attributes:
        max_depth: deepest element nesting (the Envelope is depth 1).
        max_string_content_length: longest text of one element, or attribute value,
            in characters.
        max_array_length: most element children of one element (repeated items).
        max_name_table_char_count: total characters of the distinct element and
            attribute local names and namespace URIs of one message.
        max_elements: total elements in one message.
    """

    max_depth: int = 32
    max_string_content_length: int = 1024 * 1024
    max_array_length: int = 16_384
    max_name_table_char_count: int = 16_384
    max_elements: int = 65_536

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"reader quota {name} must be a positive integer, not {value!r}")


class QuotaParser:
    """An incremental, hardened XML parser that enforces size and reader quotas.

    ``feed`` each chunk as it arrives, then ``close`` for the root element::

        parser = QuotaParser(ReaderQuotas(), max_size=2 * 1024 * 1024)
        for chunk in chunks:
            parser.feed(chunk)     # raises at the first excess
        root = parser.close()

    Args:
        quotas: the reader quotas.
        max_size: largest message, in bytes.

    Raises (from ``feed`` and ``close``):
        MessageTooLarge: more than ``max_size`` bytes.
        QuotaExceeded: a reader quota was exceeded.
        DtdRefused: a DTD.
        MalformedXml: not well-formed.
    """

    def __init__(self, quotas: ReaderQuotas, *, max_size: int) -> None:
        self.quotas, self.max_size = quotas, max_size
        self.size = 0
        self.elements = 0
        self._parser = etree.XMLPullParser(
            events=("start", "end", "start-ns"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        )
        self._children: list[int] = []  # per open element: its element children so far
        self._names: set[str] = set()
        self._name_chars = 0
        self._rooted = False
        self._tail = b""  # the prolog's last bytes, to find a DOCTYPE split over chunks

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the message and check the quotas on what it completed."""
        self.size += len(chunk)
        if self.size > self.max_size:
            raise MessageTooLarge(self.max_size)
        for start in range(0, len(chunk), _FEED):
            piece = chunk[start : start + _FEED]
            if not self._rooted:
                self._refuse_doctype(piece)
            try:
                self._parser.feed(piece)
            except etree.XMLSyntaxError as exc:
                raise MalformedXml(f"not well-formed XML: {exc}") from exc
            self._check(self._parser.read_events())

    def close(self) -> etree._Element:
        """End the message; returns the root element."""
        try:
            root = self._parser.close()
        except etree.XMLSyntaxError as exc:
            raise MalformedXml(f"not well-formed XML: {exc}") from exc
        self._check(self._parser.read_events())
        return root

    def _refuse_doctype(self, piece: bytes) -> None:
        window = self._tail + piece
        if _DOCTYPE in window:
            raise DtdRefused
        self._tail = window[-len(_DOCTYPE) :]

    def _check(self, events: Iterable[tuple[str, object]]) -> None:
        for event, item in events:
            if event == "start":
                assert isinstance(item, etree._Element)
                self._start(item)
            elif event == "end":
                assert isinstance(item, etree._Element)
                self._end(item)
            else:  # start-ns: (prefix, uri)
                assert isinstance(item, tuple)
                self._name(item[1])

    def _start(self, element: etree._Element) -> None:
        quotas = self.quotas
        if not self._rooted:
            self._rooted = True
            docinfo = element.getroottree().docinfo
            if docinfo.doctype or docinfo.internalDTD is not None:
                raise DtdRefused
        self.elements += 1
        if self.elements > quotas.max_elements:
            raise QuotaExceeded(Quota.MAX_ELEMENTS, quotas.max_elements)
        if self._children:
            self._children[-1] += 1
            if self._children[-1] > quotas.max_array_length:
                raise QuotaExceeded(Quota.MAX_ARRAY_LENGTH, quotas.max_array_length)
        self._children.append(0)
        if len(self._children) > quotas.max_depth:
            raise QuotaExceeded(Quota.MAX_DEPTH, quotas.max_depth)
        self._qname(element.tag)
        for name, value in element.attrib.items():
            self._qname(name)
            self._string(value)

    def _end(self, element: etree._Element) -> None:
        self._children.pop()
        self._string(element.text)
        for child in element:
            self._string(child.tail)

    def _qname(self, tag: object) -> None:
        if not isinstance(tag, str):
            return  # a comment or processing instruction
        namespace, _, local = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
        self._name(local)
        self._name(namespace)

    def _name(self, name: str) -> None:
        if name and name not in self._names:
            self._names.add(name)
            self._name_chars += len(name)
            if self._name_chars > self.quotas.max_name_table_char_count:
                limit = self.quotas.max_name_table_char_count
                raise QuotaExceeded(Quota.MAX_NAME_TABLE_CHAR_COUNT, limit)

    def _string(self, text: str | None) -> None:
        if text is not None and len(text) > self.quotas.max_string_content_length:
            limit = self.quotas.max_string_content_length
            raise QuotaExceeded(Quota.MAX_STRING_CONTENT_LENGTH, limit)


def parse_whole(data: bytes, quotas: ReaderQuotas, *, max_size: int) -> etree._Element:
    """A message that arrived whole, parsed under ``quotas`` and ``max_size``: its root.

    The same answer (root or error) as a :class:`QuotaParser` fed ``data``, for a
    fraction of its cost on the small messages calls carry: a message of ``n`` bytes
    has at most ``n`` elements, children of one element, characters in one string and
    characters of distinct names, so below every such quota only the depth is left to
    check, and libxml2 checks it on the finished tree (:func:`_too_deep`).  Anything
    else -- a larger message, a DOCTYPE, an error, too deep -- goes through
    :class:`QuotaParser`, which says exactly what is wrong.

    Raises:
        MessageTooLarge, QuotaExceeded, DtdRefused, MalformedXml: as :class:`QuotaParser`.
    """
    if len(data) <= _bounded_size(quotas) and len(data) <= max_size and _DOCTYPE not in data:
        try:
            root = etree.fromstring(data, _whole_parser())
        except etree.XMLSyntaxError:
            root = None
        if root is not None and not _has_dtd(root) and not _too_deep(quotas.max_depth)(root):
            return root
    parser = QuotaParser(quotas, max_size=max_size)
    parser.feed(data)
    return parser.close()


def _bounded_size(quotas: ReaderQuotas) -> int:
    """The largest message that cannot exceed any quota but the depth."""
    return min(quotas.max_string_content_length, quotas.max_name_table_char_count,
               quotas.max_elements, quotas.max_array_length)


class _Parsers(threading.local):
    """One parser per thread (lxml parsers must not be shared between threads), made
    once: a parser made per message cost about a quarter of a small message's parse."""

    def __init__(self) -> None:
        self.whole = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                     huge_tree=False)


_PARSERS = _Parsers()


def _whole_parser() -> etree.XMLParser:
    return _PARSERS.whole


def _has_dtd(root: etree._Element) -> bool:
    docinfo = root.getroottree().docinfo
    return bool(docinfo.doctype) or docinfo.internalDTD is not None


@functools.lru_cache(maxsize=8)
def _too_deep(max_depth: int) -> etree.XPath:
    """True for a tree with an element deeper than ``max_depth`` (the root is depth 1)."""
    return etree.XPath("boolean(/*" + "/*" * max_depth + ")")
