"""hc.address: entity addresses, the loopback rule and host:port, shared by the SDK,
the bindings and connection strings. No sockets."""

from __future__ import annotations

import pytest

from hc.address import EntityAddress, is_loopback, netloc


@pytest.mark.parametrize(
    ("text", "host", "port", "tls", "entity"),
    [
        ("sb://relay.example.com/payroll", "relay.example.com", 443, True, "payroll"),
        ("sb://127.0.0.1:9350/payroll", "127.0.0.1", 9350, False, "payroll"),
        ("sb://localhost/a/b", "localhost", 80, False, "a/b"),
        ("http://[::1]:8080/svc/", "::1", 8080, False, "svc"),
        ("wss://relay.example.com/svc", "relay.example.com", 443, True, "svc"),
    ],
)
def test_addresses_parse_with_the_loopback_rule(
    text: str, host: str, port: int, tls: bool, entity: str
) -> None:
    assert EntityAddress.parse(text) == EntityAddress(host, port, tls, entity)


def test_urls_made_from_an_address() -> None:
    address = EntityAddress("::1", 9350, False, "pay roll")
    assert address.http_base == "http://[::1]:9350"
    assert address.ws_base == "ws://[::1]:9350"
    assert address.audience == "http://[::1]:9350/pay%20roll"
    assert address.url("listen", "a b") == (
        "ws://[::1]:9350/$hc/pay%20roll?sb-hc-action=listen&sb-hc-id=a%20b"
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ftp://h/x", "is not an entity address"),
        ("sb://h", "must name an entity path"),
        ("sb://h/x?y=1", "must name an entity path"),
        ("http://h:99999/x", "is not a valid URL"),
    ],
)
def test_what_is_no_entity_address_says_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        EntityAddress.parse(text)


def test_loopback_and_netloc() -> None:
    assert is_loopback("127.8.0.1") and is_loopback("::1") and is_loopback("LOCALHOST.")
    assert not is_loopback("10.0.0.1") and not is_loopback("relay.example.com")
    assert netloc("::1", 80) == "[::1]:80" and netloc("h", 1) == "h:1"
