"""Host options through a real relay on 127.0.0.1:0: discovery, client authentication, env var."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from lxml import etree

from bindings import BasicHttpRelayBinding, RelayServiceHost, TokenProvider, relay_client
from bindings.settings import ENV_VAR
from relay.discovery import ATOM_NS
from samples.payroll.services import payroll_app
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread


def provider() -> TokenProvider:
    return TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY)


def feed_titles(relay: RelayThread) -> list[str]:
    response = requests.get(f"{relay.base_url}/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    root = etree.fromstring(response.content)
    return [str(t) for t in root.xpath("//a:entry/a:title/text()", namespaces={"a": ATOM_NS})]


def test_a_public_host_is_in_the_discovery_feed_and_a_private_one_is_not(
    relay: RelayThread,
) -> None:
    base = f"sb://127.0.0.1:{relay.port}"
    public = RelayServiceHost(payroll_app(), f"{base}/listed", token_provider=provider(),
                              discovery="public")
    private = RelayServiceHost(payroll_app(), f"{base}/unlisted", token_provider=provider())
    assert feed_titles(relay) == []
    with public, private:
        assert feed_titles(relay) == ["listed"]


def test_client_authentication_none_lets_a_tokenless_zeep_client_in(relay: RelayThread) -> None:
    binding = BasicHttpRelayBinding(client_authentication="none")
    address = f"sb://127.0.0.1:{relay.port}/open-payroll"
    with RelayServiceHost(payroll_app(), address, binding=binding, token_provider=provider()):
        client = relay_client(f"{relay.base_url}/open-payroll?wsdl", binding=binding)
        assert client.service.GetSalary(7) == Decimal("5120.50")
    # an entity that requires client authorization still refuses the tokenless client
    with RelayServiceHost(payroll_app(), f"sb://127.0.0.1:{relay.port}/closed-payroll",
                          token_provider=provider()):
        refused = requests.get(f"{relay.base_url}/closed-payroll?wsdl", timeout=10)
    assert refused.status_code == 401


def test_the_environment_variable_alone_hosts_and_calls(
    relay: RelayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, relay.connection_string + ";EntityPath=env-payroll")
    with RelayServiceHost(payroll_app()) as host:
        assert host.public_address == f"{relay.base_url}/env-payroll"
        client = relay_client(f"{relay.base_url}/env-payroll?wsdl")
        assert client.service.GetSalary(12) == Decimal("4975.25")
