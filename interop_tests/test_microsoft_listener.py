"""Microsoft's listener: the unmodified hyco-https package hosting a node-soap service.

``node/soap_listener.js`` is node-soap's ``soap.listen`` on the server that hyco-https's
``createRelayedServer`` returns (in place of an ``http.Server``): no code of ours runs on
the service side. zeep calls it through our relay (and AsyncClient and suds, since they are
here anyway), checking results, a fault, and bodies over 64 KiB:

- a small request with a response over 64 KiB (``Repeat``): the relay sends the request
  inline on the control channel, and hyco-https opens that request's rendezvous address to
  send the response there instead (PROTOCOL.md section 3);
- a request and a response both over 64 KiB (``Echo`` of a big text): the relay announces
  the request address-only, the listener fetches it on a rendezvous socket and answers on
  the same socket.

The rendezvous openings are counted on the in-process relay, with whether the request had
already gone inline, so the tests show which path was really taken (and that small
messages take none).
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
BIG = 70_000  # characters: envelopes of ~70.2 KB both ways, over the 65,536-byte inline limit


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


@dataclass(frozen=True)
class Opened:
    """A request rendezvous address the listener opened."""

    ident: str
    #: True when the relay had already sent the request inline on the control channel (the
    #: listener opened the address only to answer), False for an address-only request.
    request_was_inline: bool


@pytest.fixture
def rendezvous(node_service: NodeService, monkeypatch: pytest.MonkeyPatch) -> list[Opened]:
    """The request rendezvous addresses the listener opens during the test."""
    table = node_service.relay.server.state.rendezvous
    opened: list[Opened] = []
    take = table.take

    def counting_take(ident: str | None) -> Any:
        entry = take(ident)
        if isinstance(entry, PendingRequest):
            opened.append(Opened(str(ident), entry.delivered))
        return entry

    monkeypatch.setattr(table, "take", counting_take)
    return opened


def test_zeep_results_and_fault(node_service: NodeService, rendezvous: list[Opened]) -> None:
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


def test_zeep_small_request_with_a_response_over_64_kib(
    node_service: NodeService, rendezvous: list[Opened]
) -> None:
    # A request envelope of a few hundred bytes, a reply of ~108 KB of UTF-8: hyco-https
    # gets the request inline and, once node-soap has written more than 64 KiB, opens the
    # inline request's own rendezvous address to send the response there.
    piece, count = "Grüße-✓|", 9_000
    expected = piece * count
    assert len(expected.encode()) > 100_000  # well over 64 KiB, whatever the envelope
    assert node_service.client().service.Repeat(piece, count) == expected
    assert len(rendezvous) == 1
    assert rendezvous[0].request_was_inline


def test_zeep_request_and_response_just_over_64_kib(
    node_service: NodeService, rendezvous: list[Opened]
) -> None:
    # Echo makes both sides big: the ~70.2 KB request goes address-only, and the listener
    # answers on the rendezvous socket it fetched the request from.
    text = "".join(chr(0x41 + i % 26) for i in range(BIG))
    assert node_service.client().service.Echo(text) == text
    assert [opened.request_was_inline for opened in rendezvous] == [False]


def test_zeep_request_and_response_over_64_kib(
    node_service: NodeService, rendezvous: list[Opened]
) -> None:
    # ~170 KB of UTF-8 each way; it ends in a letter because node-soap trims the
    # whitespace around string values it parses (node/NOTES.md section 6), relay or not.
    text = "Grüße aus dem Rechenzentrum ✓ " * 5_000 + "Ende"
    assert node_service.client().service.Echo(text) == text
    # the request's address-only rendezvous carries both
    assert [opened.request_was_inline for opened in rendezvous] == [False]


async def test_zeep_async_client(node_service: NodeService, rendezvous: list[Opened]) -> None:
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
