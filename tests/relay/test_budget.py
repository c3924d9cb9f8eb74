"""relay.budget: the bytes the relay reads for token scans, across all senders, are bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from lxml import etree

from relay.budget import ByteBudget, Reservation
from soap.relay_token import relay_token_header
from tests.support.raw_listener import RawListener
from tests.support.relay import RelayHandle


def test_reservations_never_exceed_the_budget_and_release_once() -> None:
    budget = ByteBudget(100)
    first, second = Reservation(budget), Reservation(budget)
    assert first.take(60) and budget.used == 60
    assert not second.take(50) and second.refused and budget.used == 60
    assert second.take(40) and budget.used == 100
    first.release()
    first.release()  # a second release gives nothing back twice
    assert budget.used == 40
    second.release()
    assert budget.used == 0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def envelope_with_token(token: str, size: int) -> bytes:
    header = etree.tostring(relay_token_header(token))
    return (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>' + header
        + b"</s:Header><s:Body><Ping xmlns='urn:x'>" + b"p" * size + b"</Ping></s:Body></s:Envelope>"
    )


async def test_a_spent_scan_budget_is_a_clear_401_and_the_header_token_still_works(
    arelay: RelayHandle, http: aiohttp.ClientSession
) -> None:
    body = envelope_with_token(arelay.token("echo"), 200_000)  # over 64 KiB: read only for the scan
    soap = {"Content-Type": "text/xml"}
    async with RawListener(arelay.ws_url, "echo", arelay.token("echo")) as lst:
        async with http.post(f"{arelay.base_url}/echo", data=body, headers=soap) as resp:
            assert resp.status == 200  # scanned: the token in the SOAP header is used
        assert arelay.server.state.scan_budget.used == 0  # given back once the call ended
        arelay.server.state.scan_budget.limit = 100_000  # as if other senders held the rest
        async with http.post(f"{arelay.base_url}/echo", data=body, headers=soap) as resp:
            assert resp.status == 401
            assert "too busy to look for a RelayAccessToken" in await resp.text()
        with_header = {**soap, "ServiceBusAuthorization": arelay.token("echo")}
        async with http.post(f"{arelay.base_url}/echo", data=body, headers=with_header) as resp:
            assert resp.status == 200
    assert len(lst.received) == 2
