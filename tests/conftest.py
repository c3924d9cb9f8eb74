"""Fixtures shared by every test tier: real relays on 127.0.0.1, port 0, from one factory,
the pure tier's socket guard, and the compiled copy of the tree (built in the background)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.compiled_build import CompiledBuild
from tests.support.no_sockets import refuse_sockets
from tests.support.relay import RelayFactory, RelayHandle, Relays, RelayThread

__all__ = ["RelayFactory"]  # re-exported: test modules annotate make_relay with it


_BUILD = pytest.StashKey[CompiledBuild]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the compiled build now when the compiled-build tests are to run
    (``tests.support.compiled_build``): it overlaps the rest of the suite."""
    config = session.config
    if config.option.collectonly or _BUILD in config.stash:
        return
    if any(item.path.name == "test_compiled.py" for item in session.items):
        config.stash[_BUILD] = CompiledBuild()


def pytest_sessionfinish(session: pytest.Session) -> None:
    build = session.config.stash.get(_BUILD, None)
    if build is not None:
        build.stop()


@pytest.fixture(scope="session")
def compiled_tree(pytestconfig: pytest.Config) -> Path:
    """The compiled copy of this tree (``scripts/compiled_tree.py``), once built."""
    build = pytestconfig.stash.get(_BUILD, None)
    if build is None:  # (selected some other way than collection: build it now)
        build = pytestconfig.stash[_BUILD] = CompiledBuild()
    return build.wait()


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pure tier's guard: any network socket, connect or name lookup fails the test.

    ``tests/hc`` and ``tests/soap`` use it for every test (their conftest); a pure module
    elsewhere says ``pytestmark = pytest.mark.usefixtures("no_sockets")``.
    """
    refuse_sockets(monkeypatch)


@pytest.fixture
async def relays(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Relays]:
    """The relay factory (``tests.support.relay.Relays``): ``await relays.in_loop(...)``,
    ``relays.in_thread(...)`` or ``relays.process(...)``; all stopped when the test ends."""
    async with Relays(tmp_path_factory.mktemp("relays")) as factory:
        yield factory


# The shorthands below are the factory's commonest calls, kept under the names the
# test modules have always used.

@pytest.fixture
def relay(relays: Relays) -> RelayThread:
    """A relay in a background thread, for sync tests (zeep, requests, hosts)."""
    return relays.in_thread()


@pytest.fixture
async def arelay(relays: Relays) -> RelayHandle:
    """A relay in the test's own event loop, for asyncio tests."""
    return await relays.in_loop()


@pytest.fixture
def make_relay(relays: Relays) -> RelayFactory:
    """Start relays with given entities/options in the test's loop: ``await make_relay(...)``."""
    return relays.in_loop
