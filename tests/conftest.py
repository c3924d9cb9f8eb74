"""Fixtures shared by every test tier: a real relay on 127.0.0.1, port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from relay.server import RelayServer
from tests.support.relay import RelayHandle, RelayThread, make_namespace


@pytest.fixture
def relay() -> Iterator[RelayThread]:
    """A relay in a background thread, for sync tests (zeep, requests, hosts)."""
    with RelayThread(make_namespace()) as handle:
        yield handle


@pytest.fixture
async def arelay() -> AsyncIterator[RelayHandle]:
    """A relay in the test's own event loop, for asyncio tests."""
    server = RelayServer(make_namespace())
    await server.start()
    try:
        yield RelayHandle(server)
    finally:
        await server.stop()
