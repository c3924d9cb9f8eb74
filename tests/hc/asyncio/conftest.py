"""The listener's two WebSocket layers: every real-relay listener test runs on both."""

from __future__ import annotations

import pytest

from hc.asyncio import fastws


@pytest.fixture(params=[False, True], ids=["hc-framing", "picows"])
def picows(request: pytest.FixtureRequest) -> bool:
    """False: frames parsed by :mod:`hc.framing`; True: by picows (skipped when not installed)."""
    if request.param and not fastws.AVAILABLE:
        pytest.skip("picows is not installed (the fast extra)")
    return bool(request.param)
