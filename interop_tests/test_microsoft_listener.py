"""Microsoft's listener: the unmodified hyco-https package hosting a node-soap service.

``node/soap_listener.js`` is node-soap's ``soap.listen`` on the server that hyco-https's
``createRelayedServer`` returns (in place of an ``http.Server``): no code of ours runs on
the service side. zeep calls it through our relay (and AsyncClient and suds, since they are
here anyway), checking results, a fault, and bodies over 64 KiB:

- a response over 64 KiB: hyco-https sends it on the request's rendezvous address instead
  of the control channel (PROTOCOL.md section 3);
- a request over 64 KiB: the relay announces it address-only, the listener fetches it on a
  rendezvous socket and answers there.

The rendezvous openings are counted on the in-process relay, so the tests show that path
was really taken (and not taken for small messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import zeep
from suds import WebFault
from suds.client import Client as SudsClient

from bindings import relay_client
from bindings.zeep_async import relay_async_client
from interop_tests.payroll_site import TIMEOUT
from relay.listeners import PendingRequest
from tests.support.node import NODE_SKIP_REASON, NodeProcess, node_available
from tests.support.relay import TEST_KEY, RelayThread, relay_thread

pytestmark = [pytest.mark.node, pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON)]

ENTITY = "node-payroll"
BIG = 70_000  # characters: a reply envelope of ~70.2 KB, over hyco-https's 65,536-byte limit


@dataclass
class NodeService:
    relay: RelayThread
    listener: NodeProcess

    @property
    def wsdl(self) -> str:
        return f"{self.relay.base_url}/{ENTITY}?wsdl"

    def client(self) -> zeep.Client:
        return relay_client(
            self.wsdl, connection_string=self.relay.connection_string, operation_timeout=TIMEOUT
        )


@pytest.fixture(scope="module")
def node_service() -> Iterator[NodeService]:
    with relay_thread() as relay, NodeProcess(
        "soap_listener.js", "--relay", f"127.0.0.1:{relay.port}", "--path", ENTITY,
        "--key", TEST_KEY,
    ) as listener:
        yield NodeService(relay, listener)


@pytest.fixture
def rendezvous(node_service: NodeService, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ids of the request rendezvous addresses the listener opens during the test."""
    table = node_service.relay.server.rendezvous
    opened: list[str] = []
    take = table.take

    def counting_take(ident: str | None) -> Any:
        entry = take(ident)
        if isinstance(entry, PendingRequest):
            opened.append(str(ident))
        return entry

    monkeypatch.setattr(table, "take", counting_take)
    return opened


def test_zeep_results_and_fault(node_service: NodeService, rendezvous: list[str]) -> None:
    client = node_service.client()
    assert client.service.GetSalary(7) == Decimal(72000)
    assert client.service.GetSalary(1) == Decimal("41000.5")
    assert client.service.Echo("hello") == "hello"
    with pytest.raises(zeep.exceptions.Fault, match="Unknown employee 8") as caught:
        client.service.GetSalary(8)
    assert caught.value.code == "soap:Client"
    assert caught.value.detail is not None
    assert "".join(caught.value.detail.itertext()).strip() == "8"
    assert rendezvous == []  # small messages stay on the control channel
    requests = [line for line in node_service.listener.lines if '"event":"request"' in line]
    assert any(f'"url":"/{ENTITY}"' in line for line in requests)


def test_zeep_response_over_64_kib_takes_the_rendezvous(
    node_service: NodeService, rendezvous: list[str]
) -> None:
    text = "".join(chr(0x41 + i % 26) for i in range(BIG))
    assert node_service.client().service.Echo(text) == text
    assert len(rendezvous) == 1


def test_zeep_request_and_response_over_64_kib(
    node_service: NodeService, rendezvous: list[str]
) -> None:
    # ~170 KB of UTF-8 each way; it ends in a letter because node-soap trims the
    # whitespace around string values it parses (node/NOTES.md section 6), relay or not.
    text = "Grüße aus dem Rechenzentrum ✓ " * 5_000 + "Ende"
    assert node_service.client().service.Echo(text) == text
    assert len(rendezvous) == 1  # the request's address-only rendezvous carries both


async def test_zeep_async_client(node_service: NodeService, rendezvous: list[str]) -> None:
    text = "a" * BIG
    async with relay_async_client(
        node_service.wsdl, connection_string=node_service.relay.connection_string,
        operation_timeout=TIMEOUT,
    ) as client:
        assert await client.service.GetSalary(42) == Decimal("99999.99")
        assert await client.service.Echo(text) == text
    assert len(rendezvous) == 1


def test_suds_client(node_service: NodeService) -> None:
    token = node_service.relay.token(ENTITY)
    client = SudsClient(
        node_service.wsdl, headers={"ServiceBusAuthorization": token}, timeout=TIMEOUT
    )
    assert client.service.GetSalary(7) == Decimal(72000)
    assert client.service.Echo("b" * BIG) == "b" * BIG
    with pytest.raises(WebFault) as caught:
        client.service.GetSalary(8)
    assert caught.value.fault.faultstring == "Unknown employee 8"
