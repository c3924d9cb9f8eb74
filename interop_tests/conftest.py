"""Fixtures for the interop suite: the payroll services behind a real relay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from interop_tests.payroll_site import PayrollSite, payroll_site
from interop_tests.versions import peer_versions

# The relay factory and its thread shorthand, the same fixtures as in tests/ (re-exported).
from tests.conftest import make_relay, relay, relays  # noqa: F401


def pytest_report_header() -> list[str]:
    versions = ", ".join(f"{name} {found}" for name, found in peer_versions().items())
    return [f"interop peers: {versions}"]


@pytest.fixture(scope="module")
def payroll() -> Iterator[PayrollSite]:
    """One relay with every payroll service online, shared by a test module."""
    with payroll_site() as site:
        yield site
