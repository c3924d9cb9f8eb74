"""Fixtures for the binding tests; they never see the developer's own
``SOAPRELAY_CONNECTION_STRING``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bindings.listener import HybridConnectionListener
from bindings.settings import ENV_VAR


@pytest.fixture(autouse=True)
def _no_connection_string_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
async def listeners() -> AsyncIterator[list[HybridConnectionListener]]:
    """Listeners a test starts; closed when it ends."""
    made: list[HybridConnectionListener] = []
    yield made
    for listener in made:
        await listener.close(timeout=2)
