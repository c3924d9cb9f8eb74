"""Real relays for tests, from one factory: in the test's loop, in a thread, or a process.

:class:`Relays` starts every relay a test needs and stops them all when the test ends
(the ``relays`` fixture in ``tests/conftest.py``, or ``with Relays() as relays:`` for a
module-scoped fixture).  Each relay is a real one on 127.0.0.1, port 0, started the
way the test needs it:

- :meth:`Relays.in_loop`: a :class:`RelayServer` in the test's own event loop (asyncio
  tests); ``clock`` and ``rng`` are injected here;
- :meth:`Relays.in_thread`: a :class:`RelayServer` on its own loop in a background thread
  (sync tests: zeep, requests, hosts);
- :meth:`Relays.process`: ``soaprelay serve`` as a child process, what users run
  (chaos, memory and CLI tests).

The loop and thread kinds share one configuration, :func:`make_namespace`: a dev-like
namespace with dynamic entities and one Manage rule, changed by keyword
(``make_namespace(EntityConfig("x"), token_grace=0.2)``), or a whole ``config``.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Self

from hc.entities import Rights
from hc.sas import create_token
from relay.namespace import EntityConfig, NamespaceConfig, SasRule
from relay.server import RelayServer
from tests.support.procs import Children, RelayProcess

__all__ = [
    "TEST_KEY", "TEST_KEY_NAME", "RelayFactory", "RelayHandle", "RelayThread", "Relays",
    "make_namespace", "relay_thread",
]

TEST_KEY_NAME = "RootManageSharedAccessKey"
TEST_KEY = "dGVzdGtleS1mb3ItdGVzdHMtb25seS0wMDAwMDAwMA=="
Clock = Callable[[], float]
#: What ``relays.in_loop`` (the ``make_relay`` fixture) is: ``await make_relay(*entities, **options)``.
RelayFactory = Callable[..., Awaitable["RelayHandle"]]


def make_namespace(*entities: EntityConfig, **options: object) -> NamespaceConfig:
    """A dev-like namespace on 127.0.0.1:0: dynamic entities, one Manage rule."""
    config = NamespaceConfig(
        name="test",
        host="127.0.0.1",
        port=0,
        rules=(SasRule(TEST_KEY_NAME, TEST_KEY, Rights.MANAGE | Rights.LISTEN | Rights.SEND),),
        entities=entities,
        dynamic_entities=True,
        shutdown_grace=2.0,  # a test that leaves a call hanging must not wait 30 s at teardown
    )
    return replace(config, **options)  # type: ignore[arg-type]


class RelayHandle:
    """What a test needs to know about a running relay."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1)

    @property
    def connection_string(self) -> str:
        return (
            f"Endpoint=sb://127.0.0.1:{self.port}/;SharedAccessKeyName={TEST_KEY_NAME};"
            f"SharedAccessKey={TEST_KEY};UseTls=false"
        )

    def token(self, path: str = "", *, key_name: str = TEST_KEY_NAME, key: str = TEST_KEY,
              ttl: float = 3600, now: float | None = None) -> str:
        """A SAS token for ``path``; ``now`` signs it as of another time (injected clocks)."""
        return create_token(f"{self.base_url}/{path}", key_name, key, ttl=ttl, now=now)


class RelayThread(RelayHandle):
    """Runs a relay in a background thread with its own loop (for sync tests)."""

    def __init__(self, config: NamespaceConfig, *, clock: Clock = time.time) -> None:
        super().__init__(RelayServer(config, clock=clock))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class Relays:
    """The one factory for the relays of a test (or a module); stops them all at the end.

    Args:
        folder: where process relays keep their state and logs (default: a temporary
            folder of its own, made when the first process starts).
    """

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self._in_loop: list[RelayServer] = []
        self._threads: list[RelayThread] = []
        self._children: Children | None = None

    # -- the three kinds -------------------------------------------------------------

    async def in_loop(self, *entities: EntityConfig, config: NamespaceConfig | None = None,
                      clock: Clock = time.time, rng: random.Random | None = None,
                      **options: object) -> RelayHandle:
        """A relay in the running loop (``config``, or :func:`make_namespace` of the rest)."""
        server = RelayServer(config or make_namespace(*entities, **options), clock=clock, rng=rng)
        await server.start()
        self._in_loop.append(server)
        return RelayHandle(server)

    def in_thread(self, *entities: EntityConfig, config: NamespaceConfig | None = None,
                  clock: Clock = time.time, **options: object) -> RelayThread:
        """A relay on its own loop in a background thread, for sync code."""
        relay = RelayThread(config or make_namespace(*entities, **options), clock=clock)
        self._threads.append(relay.__enter__())
        return relay

    def process(self, name: str = "relay", *, children: Children | None = None,
                **options: object) -> RelayProcess:
        """``soaprelay serve``, ready (its banner read); see :class:`RelayProcess` for the
        options.  With ``children``, it stops with them (newest first), else with this."""
        owner = children or self._own_children()
        relay = RelayProcess(name, owner.folder, **options)  # type: ignore[arg-type]
        owner.add(relay)
        relay.read_banner()
        return relay

    def stop(self, relay: RelayThread | RelayProcess) -> None:
        """Stop one thread or process relay before the end (a restart, a relay gone)."""
        if isinstance(relay, RelayThread):
            self._threads.remove(relay)
            relay.__exit__(None, None, None)
        else:
            relay.stop()

    # -- the end ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop every relay: those in the loop here, then threads and processes."""
        while self._in_loop:
            await self._in_loop.pop().stop()
        self.close()

    def close(self) -> None:
        """Stop the thread and process relays (in-loop ones need :meth:`aclose`)."""
        if self._in_loop:
            raise AssertionError("relays in a loop are stopped with `await relays.aclose()`")
        while self._threads:
            self._threads.pop().__exit__(None, None, None)
        if self._children is not None:
            self._children.stop_all()
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def _own_children(self) -> Children:
        if self._children is None:
            if self._folder is None:
                self._temporary = tempfile.TemporaryDirectory(prefix="relays-")
                self._folder = Path(self._temporary.name)
            self._children = Children(self._folder)
        return self._children


@contextmanager
def relay_thread(*entities: EntityConfig, **options: object) -> Iterator[RelayThread]:
    """One thread relay for a ``with`` block (module-scoped fixtures, helpers)."""
    with Relays() as relays:
        yield relays.in_thread(*entities, **options)  # type: ignore[arg-type]
