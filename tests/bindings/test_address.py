"""RelayAddress: the host's view of where it listens."""

from __future__ import annotations

import pytest

from bindings.address import RelayAddress
from bindings.exceptions import ConfigurationError
from hc.connection_string import ConnectionString

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network


@pytest.mark.parametrize(
    "text, tls, port",
    [
        ("sb://127.0.0.1:9350/payroll", False, 9350),
        ("sb://localhost:9350/payroll", False, 9350),
        ("sb://[::1]:9350/payroll", False, 9350),
        ("sb://relay.example.com/payroll", True, 443),
        ("http://relay.example.com/payroll", False, 80),
        ("https://127.0.0.1:9351/payroll", True, 9351),
    ],
)
def test_tls_follows_the_connection_string_rule(text: str, tls: bool, port: int) -> None:
    address = RelayAddress.parse(text)
    assert (address.use_tls, address.port, address.entity_path) == (tls, port, "payroll")


def test_urls_derived_from_the_address() -> None:
    address = RelayAddress.parse("sb://127.0.0.1:9350/hr/payroll/")
    assert address.entity_path == "hr/payroll"
    assert address.public_address == "http://127.0.0.1:9350/hr/payroll"
    assert address.audience == "http://127.0.0.1:9350/hr/payroll"
    assert address.control_url == "ws://127.0.0.1:9350/$hc/hr/payroll"
    ipv6 = RelayAddress.parse("https://[::1]:9351/p")
    assert ipv6.ws_base == "wss://[::1]:9351"


@pytest.mark.parametrize(
    "text",
    ["payroll", "ftp://h/p", "sb://h:9350/", "sb://h:9350", "sb://h/p?x=1", "sb://h:99999/p"],
)
def test_bad_addresses_are_configuration_errors(text: str) -> None:
    with pytest.raises(ConfigurationError):
        RelayAddress.parse(text)


def test_from_connection_string() -> None:
    cs = ConnectionString.parse(
        "Endpoint=sb://127.0.0.1:9350/;SharedAccessKeyName=R;SharedAccessKey=k;EntityPath=payroll"
    )
    assert RelayAddress.from_connection_string(cs).public_address == "http://127.0.0.1:9350/payroll"
    assert RelayAddress.from_connection_string(cs, "other").entity_path == "other"
    with pytest.raises(ConfigurationError, match="entity"):
        RelayAddress.from_connection_string(cs.with_entity(None))
