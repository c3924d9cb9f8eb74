"""Shared helpers for the pure ``soap`` tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree


def c14n(xml: bytes | etree._Element) -> bytes:
    """Canonicalise a document or element (exclusive of the XML declaration)."""
    if isinstance(xml, bytes):
        xml = etree.fromstring(xml)
    return bytes(etree.tostring(xml, method="c14n"))


@pytest.fixture
def canon() -> Callable[[bytes | etree._Element], bytes]:
    """The :func:`c14n` helper as a fixture."""
    return c14n
