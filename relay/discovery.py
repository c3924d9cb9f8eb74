"""The discovery feed: an Atom 1.0 document listing public entities (PROTOCOL.md §6). No I/O.

The server picks the entries (``discovery = "public"`` and at least one listener
online); this module only renders them::

    <feed xmlns="http://www.w3.org/2005/Atom">
      <title>contoso</title>
      <id>http://127.0.0.1:9350/</id>
      <updated>2024-05-01T12:00:00Z</updated>
      <author><name>contoso</name></author>
      <link rel="self" href="http://127.0.0.1:9350/"/>
      <generator>soaprelay</generator>
      <entry>
        <title>payroll</title>
        <link href="http://127.0.0.1:9350/payroll"/>
        <id>http://127.0.0.1:9350/payroll</id>
        <updated>2024-05-01T12:00:00Z</updated>
        <category term="request-response" scheme="urn:soaprelay:entity-kind"/>
      </entry>
    </feed>

All text goes through lxml, so paths and names are escaped, never concatenated
into markup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from lxml import etree

from hc.entities import EntityKind

__all__ = ["ATOM_NS", "KIND_SCHEME", "MEDIA_TYPE", "FeedEntry", "render_feed"]

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_TYPE = "application/atom+xml"
#: The ``scheme`` of each entry's ``<category term="KIND">``.
KIND_SCHEME = "urn:soaprelay:entity-kind"

#: Characters outside XML 1.0's ``Char`` production; lxml refuses them.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: RFC 3986 characters that may stay literal in a path.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


@dataclass(frozen=True)
class FeedEntry:
    """One listed entity."""

    path: str
    kind: EntityKind

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EntityKind(self.kind))  # also accept "oneway" etc.


def render_feed(
    entries: Iterable[FeedEntry], *, namespace: str, base_url: str, updated: datetime
) -> bytes:
    """Render the Atom feed, entries sorted by path.

    Args:
        entries: the entities to list.
        namespace: the namespace name (feed title and author).
        base_url: the relay's public ``http[s]://host:port``; a trailing ``/`` is ignored.
        updated: a timezone-aware time for the feed and its entries.

    Returns:
        UTF-8 XML with a declaration, to be served as :data:`MEDIA_TYPE`.

    Raises:
        ValueError: ``updated`` is naive.
    """
    if updated.tzinfo is None or updated.utcoffset() is None:
        raise ValueError("updated must be timezone-aware")
    stamp = updated.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    base = base_url.rstrip("/")
    feed = etree.Element(_atom("feed"), nsmap={None: ATOM_NS})
    _child(feed, "title", namespace)
    _child(feed, "id", f"{base}/")
    _child(feed, "updated", stamp)
    _child(_child(feed, "author"), "name", namespace)
    _child(feed, "link", rel="self", href=f"{base}/")
    _child(feed, "generator", "soaprelay")
    for entry in sorted(entries, key=lambda e: e.path):
        url = f"{base}/{quote(entry.path.strip('/'), safe=_PATH_SAFE)}"
        element = _child(feed, "entry")
        _child(element, "title", entry.path)
        _child(element, "link", href=url)
        _child(element, "id", url)
        _child(element, "updated", stamp)
        _child(element, "category", term=entry.kind.value, scheme=KIND_SCHEME)
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="utf-8", pretty_print=True))


def _atom(name: str) -> str:
    return f"{{{ATOM_NS}}}{name}"


def _child(
    parent: etree._Element, name: str, text: str | None = None, **attrib: str
) -> etree._Element:
    element = etree.SubElement(parent, _atom(name), {k: _xml_safe(v) for k, v in attrib.items()})
    if text is not None:
        element.text = _xml_safe(text)
    return element


def _xml_safe(text: str) -> str:
    """Replace characters XML cannot carry (control characters) with U+FFFD."""
    return _NOT_XML_CHAR.sub("\ufffd", text)
