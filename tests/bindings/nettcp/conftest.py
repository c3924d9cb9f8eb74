"""Fixtures of the NetTcp tests: a real relay in a thread, a host of the test service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from bindings import NetTcpRelayBinding, RelayServiceHost
from bindings.tokens import TokenProvider
from bindings.zeep_transport import relay_client
from tests.bindings.nettcp.services import Board, session_app
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread

PROVIDER = TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY)


class Stage:
    """A relay, hosts of the test service and zeep clients, all closed at the end."""

    def __init__(self, relay: RelayThread, stack: ExitStack) -> None:
        self.relay, self.stack = relay, stack
        self.board = Board()

    def host(self, entity: str = "svc", binding: NetTcpRelayBinding | None = None,
             **options: Any) -> RelayServiceHost:
        host = RelayServiceHost(session_app(self.board), f"{self.relay.base_url}/{entity}",
                                binding=binding or NetTcpRelayBinding(), token_provider=PROVIDER,
                                close_timeout=5, **options)
        self.stack.enter_context(host)
        return host

    def client(self, entity: str = "svc", binding: NetTcpRelayBinding | None = None,
               **options: Any) -> Any:
        client = relay_client(f"{self.relay.base_url}/{entity}?wsdl",
                              binding=binding or NetTcpRelayBinding(), token_provider=PROVIDER,
                              **options)
        self.stack.callback(client.transport.close)
        return client


@pytest.fixture
def stage(relay: RelayThread) -> Iterator[Stage]:
    with ExitStack() as stack:
        yield Stage(relay, stack)


Waiter = Callable[[Callable[[Board], bool]], bool]
