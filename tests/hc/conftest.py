"""``hc`` is the sans-I/O core: its tests are pure, and the guard makes sure they stay so."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _pure_tier(no_sockets: None) -> None:
    """Every test here runs with network sockets refused (``tests.support.no_sockets``)."""
