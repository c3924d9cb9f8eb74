"""The Atom discovery feed, parsed back with lxml."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from hc.entities import EntityKind
from relay.discovery import ATOM_NS, KIND_SCHEME, MEDIA_TYPE, FeedEntry, render_feed

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

A = {"a": ATOM_NS}
WHEN = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
BASE = "http://127.0.0.1:9350"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _parse(feed: bytes) -> etree._Element:
    return etree.fromstring(feed, _PARSER)


def _render(
    *entries: FeedEntry, namespace: str = "contoso", base_url: str = BASE
) -> etree._Element:
    return _parse(render_feed(entries, namespace=namespace, base_url=base_url, updated=WHEN))


def test_feed_structure() -> None:
    feed = _render(
        FeedEntry("payroll", EntityKind.REQUEST_RESPONSE),
        FeedEntry("hr/timesheets", EntityKind.ONEWAY),
    )

    assert feed.tag == f"{{{ATOM_NS}}}feed"
    assert feed.findtext("a:title", namespaces=A) == "contoso"
    assert feed.findtext("a:id", namespaces=A) == f"{BASE}/"
    assert feed.findtext("a:updated", namespaces=A) == "2024-05-01T12:00:00Z"
    assert feed.findtext("a:author/a:name", namespaces=A) == "contoso"
    assert feed.find("a:link", A).get("rel") == "self"  # type: ignore[union-attr]
    entries = feed.findall("a:entry", A)
    assert [e.findtext("a:title", namespaces=A) for e in entries] == ["hr/timesheets", "payroll"]
    hr, payroll = entries
    assert payroll.find("a:link", A).get("href") == f"{BASE}/payroll"  # type: ignore[union-attr]
    assert payroll.findtext("a:id", namespaces=A) == f"{BASE}/payroll"
    assert payroll.findtext("a:updated", namespaces=A) == "2024-05-01T12:00:00Z"
    category = hr.find("a:category", A)
    assert category is not None
    assert (category.get("term"), category.get("scheme")) == ("oneway", KIND_SCHEME)


def test_xml_declaration_and_media_type() -> None:
    feed = render_feed([], namespace="n", base_url=BASE, updated=WHEN)

    assert feed.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert MEDIA_TYPE == "application/atom+xml"
    assert _parse(feed).findall("a:entry", A) == []


def test_untrusted_text_is_escaped_not_injected() -> None:
    hostile = 'x"/><entry><title>evil</title></entry><y a="&amp;'

    feed = _render(FeedEntry(hostile, EntityKind.EVENT), namespace="<b>&ns</b>")

    (entry,) = feed.findall("a:entry", A)
    assert entry.findtext("a:title", namespaces=A) == hostile
    assert feed.findtext("a:title", namespaces=A) == "<b>&ns</b>"
    href = entry.find("a:link", A).get("href")  # type: ignore[union-attr]
    assert href is not None and href.startswith(f"{BASE}/x%22/%3E%3Centry%3E")


def test_characters_xml_cannot_carry_are_replaced() -> None:
    feed = _render(FeedEntry("bad\x00\x1bname", EntityKind.EVENT))

    assert feed.findtext("a:entry/a:title", namespaces=A) == "bad\ufffd\ufffdname"
    href = feed.find("a:entry/a:link", A).get("href")  # type: ignore[union-attr]
    assert href == f"{BASE}/bad%00%1Bname"


def test_base_url_trailing_slash_and_non_utc_time() -> None:
    cet = datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))

    feed = _parse(
        render_feed(
            [FeedEntry("p", EntityKind.ONEWAY)], namespace="n", base_url=BASE + "/", updated=cet
        )
    )

    assert feed.findtext("a:updated", namespaces=A) == "2024-05-01T12:00:00Z"
    assert feed.find("a:entry/a:link", A).get("href") == f"{BASE}/p"  # type: ignore[union-attr]


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_feed([], namespace="n", base_url=BASE, updated=datetime(2024, 5, 1))


def test_feed_entry_accepts_the_kind_value() -> None:
    assert FeedEntry("p", "event").kind is EntityKind.EVENT  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FeedEntry("p", "bogus")  # type: ignore[arg-type]
