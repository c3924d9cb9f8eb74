"""Shared helpers for the pure ``soap`` tests, and the guard that keeps them pure."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree


def c14n(xml: bytes | etree._Element) -> bytes:
    """Canonicalise a document or element (exclusive of the XML declaration)."""
    if isinstance(xml, bytes):
        xml = etree.fromstring(xml)
    return bytes(etree.tostring(xml, method="c14n"))


@pytest.fixture(autouse=True)
def _pure_tier(no_sockets: None) -> None:
    """Every test here runs with network sockets refused (``tests.support.no_sockets``)."""


@pytest.fixture
def canon() -> Callable[[bytes | etree._Element], bytes]:
    """The :func:`c14n` helper as a fixture."""
    return c14n
