"""Fixtures shared by every test tier: a real relay on 127.0.0.1, port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from relay.namespace import EntityConfig
from relay.server import RelayServer
from tests.support.no_sockets import refuse_sockets
from tests.support.relay import RelayHandle, RelayThread, make_namespace


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pure tier's guard: any network socket, connect or name lookup fails the test.

    ``tests/hc`` and ``tests/soap`` use it for every test (their conftest); a pure module
    elsewhere says ``pytestmark = pytest.mark.usefixtures("no_sockets")``.
    """
    refuse_sockets(monkeypatch)


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


RelayFactory = Callable[..., Awaitable[RelayHandle]]


@pytest.fixture
async def make_relay() -> AsyncIterator[RelayFactory]:
    """Start relays with given entities/options in the test's loop: ``await make_relay(...)``."""
    servers: list[RelayServer] = []

    async def start(*entities: EntityConfig, **options: object) -> RelayHandle:
        server = RelayServer(make_namespace(*entities, **options))
        await server.start()
        servers.append(server)
        return RelayHandle(server)

    yield start
    for server in servers:
        await server.stop()
