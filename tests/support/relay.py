"""A real relay for tests: in the test's event loop, or in a thread for sync tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Self

from hc.entities import Rights
from hc.sas import create_token
from relay.namespace import EntityConfig, NamespaceConfig, SasRule
from relay.server import RelayServer

TEST_KEY_NAME = "RootManageSharedAccessKey"
TEST_KEY = "dGVzdGtleS1mb3ItdGVzdHMtb25seS0wMDAwMDAwMA=="


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
              ttl: float = 3600) -> str:
        return create_token(f"{self.base_url}/{path}", key_name, key, ttl=ttl)


class RelayThread(RelayHandle):
    """Runs a relay in a background thread with its own loop (for sync tests)."""

    def __init__(self, config: NamespaceConfig) -> None:
        super().__init__(RelayServer(config))
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


@contextmanager
def relay_thread(*entities: EntityConfig, **options: object) -> Iterator[RelayThread]:
    with RelayThread(make_namespace(*entities, **options)) as handle:
        yield handle
