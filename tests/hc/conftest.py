"""``hc`` is the sans-I/O core: its tests are pure, and the guard makes sure they stay so.

``tests/hc/asyncio/`` (the tests of ``hc/asyncio``, the SDK's asyncio shell, which does
real I/O) is the one exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ASYNCIO_SHELL = Path(__file__).resolve().parent / "asyncio"


@pytest.fixture(autouse=True)
def _pure_tier(request: pytest.FixtureRequest) -> None:
    """Every test here runs with network sockets refused (``tests.support.no_sockets``)."""
    if ASYNCIO_SHELL not in Path(request.path).resolve().parents:
        request.getfixturevalue("no_sockets")
