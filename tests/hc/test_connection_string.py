"""hc.connection_string: Azure's format, plus UseTls and the loopback rule. No I/O."""

from __future__ import annotations

import pytest

from hc.connection_string import ConnectionString
from hc.exceptions import HcError, InvalidConnectionString
from hc.sas import create_token

KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY0o="
TOKEN = create_token("http://relay.example.com/payroll", "Root", KEY, now=1_700_000_000)
CS = f"Endpoint=sb://relay.example.com/;SharedAccessKeyName=Root;SharedAccessKey={KEY}"


def test_parse_azure_format() -> None:
    cs = ConnectionString.parse(CS + ";EntityPath=payroll")

    assert cs.endpoint == "sb://relay.example.com/"
    assert (cs.key_name, cs.key, cs.signature) == ("Root", KEY, None)
    assert cs.entity_path == "payroll"
    assert (cs.host, cs.port, cs.use_tls) == ("relay.example.com", 443, True)
    assert cs.http_base == "https://relay.example.com:443"
    assert cs.ws_base == "wss://relay.example.com:443"


def test_keys_are_case_insensitive_order_free_and_values_keep_equals_signs() -> None:
    text = f" sharedaccesskey = {KEY} ; ENTITYPATH=/payroll/;endpoint=sb://relay.example.com/;"
    text += "SHAREDACCESSKEYNAME=Root;"

    cs = ConnectionString.parse(text)

    assert cs == ConnectionString.parse(CS + ";EntityPath=payroll")
    assert cs.key is not None and cs.key.endswith("=")


def test_str_round_trips() -> None:
    for text in (CS, CS + ";EntityPath=a/b;UseTls=false"):
        cs = ConnectionString.parse(text)
        assert str(cs) == text
        assert ConnectionString.parse(str(cs)) == cs


def test_repr_hides_key_and_signature() -> None:
    with_key = ConnectionString.parse(CS)
    with_token = ConnectionString.parse(
        f"Endpoint=sb://relay.example.com/;SharedAccessSignature={TOKEN}"
    )

    assert KEY not in repr(with_key)
    assert "sig=" not in repr(with_token)
    assert "relay.example.com" in repr(with_key)


def test_shared_access_signature_instead_of_key() -> None:
    cs = ConnectionString.parse(f"Endpoint=sb://relay.example.com/;SharedAccessSignature={TOKEN}")

    assert (cs.signature, cs.key_name, cs.key) == (TOKEN, None, None)


@pytest.mark.parametrize(
    ("endpoint", "extra", "use_tls", "port"),
    [
        ("sb://relay.example.com/", "", True, 443),
        ("sb://relay.example.com:9351/", "", True, 9351),
        ("sb://127.0.0.1:9350/", "", False, 9350),
        ("sb://127.8.9.10/", "", False, 80),
        ("sb://localhost:9350/", "", False, 9350),
        ("sb://LocalHost:9350/", "", False, 9350),
        ("sb://[::1]:9350/", "", False, 9350),
        ("sb://10.0.0.1/", "", True, 443),
        ("http://relay.example.com/", "", False, 80),
        ("https://127.0.0.1/", "", True, 443),
        ("sb://relay.example.com/", ";UseTls=false", False, 80),
        ("sb://127.0.0.1:9350/", ";UseTls=TRUE", True, 9350),
        ("https://relay.example.com/", ";usetls=False", False, 80),
    ],
)
def test_tls_and_port(endpoint: str, extra: str, use_tls: bool, port: int) -> None:
    cs = ConnectionString.parse(
        f"Endpoint={endpoint};SharedAccessKeyName=R;SharedAccessKey=k{extra}"
    )

    assert (cs.use_tls, cs.port) == (use_tls, port)


def test_ipv6_bases_are_bracketed() -> None:
    cs = ConnectionString.parse("Endpoint=sb://[::1]:9350/;SharedAccessKeyName=R;SharedAccessKey=k")

    assert cs.host == "::1"
    assert cs.http_base == "http://[::1]:9350"
    assert cs.ws_base == "ws://[::1]:9350"
    assert cs.audience("payroll") == "http://[::1]:9350/payroll"


def test_with_entity_and_audience() -> None:
    cs = ConnectionString.parse(CS)

    payroll = cs.with_entity("/payroll/v2/")

    assert payroll.entity_path == "payroll/v2"
    assert cs.entity_path is None
    assert payroll.with_entity(None).entity_path is None
    assert payroll.audience() == "http://relay.example.com/payroll/v2"
    assert payroll.audience("hr") == "http://relay.example.com/hr"
    assert cs.audience() == "http://relay.example.com/"
    local = ConnectionString.parse(CS.replace("relay.example.com", "127.0.0.1:9350"))
    assert local.audience("payroll") == "http://127.0.0.1:9350/payroll"


BAD = {
    "empty": ("", "lacks Endpoint"),
    "no-endpoint": (f"SharedAccessKeyName=R;SharedAccessKey={KEY}", "lacks Endpoint"),
    "unknown-key": (CS + ";SharedAcessKey=x", "unknown connection string key 'SharedAcessKey'"),
    "duplicate": (CS + ";sharedaccesskeyname=Other", "SharedAccessKeyName twice"),
    "empty-value": (CS + ";EntityPath=", "EntityPath is empty"),
    "no-equals": (CS + ";garbage", "part 4 is not Name=Value"),
    "scheme": (f"Endpoint=amqp://h/;SharedAccessKeyName=R;SharedAccessKey={KEY}", "sb://, http://"),
    "no-scheme": (
        f"Endpoint=relay.example.com;SharedAccessKeyName=R;SharedAccessKey={KEY}",
        "sb://",
    ),
    "no-host": (f"Endpoint=sb:///;SharedAccessKeyName=R;SharedAccessKey={KEY}", "HOST"),
    "path": (f"Endpoint=sb://h/payroll;SharedAccessKeyName=R;SharedAccessKey={KEY}", "EntityPath"),
    "query": (
        f"Endpoint=sb://h/?x=1;SharedAccessKeyName=R;SharedAccessKey={KEY}",
        "namespace root",
    ),
    "userinfo": (f"Endpoint=sb://u@h/;SharedAccessKeyName=R;SharedAccessKey={KEY}", "HOST"),
    "port-range": (f"Endpoint=sb://h:99999/;SharedAccessKeyName=R;SharedAccessKey={KEY}", "port"),
    "port-text": (f"Endpoint=sb://h:abc/;SharedAccessKeyName=R;SharedAccessKey={KEY}", "port"),
    "port-zero": (f"Endpoint=sb://h:0/;SharedAccessKeyName=R;SharedAccessKey={KEY}", "HOST"),
    "ipv6-open": (f"Endpoint=sb://[::1/;SharedAccessKeyName=R;SharedAccessKey={KEY}", "not a URL"),
    "name-only": ("Endpoint=sb://h/;SharedAccessKeyName=R", "needs SharedAccessKeyName and"),
    "key-only": (f"Endpoint=sb://h/;SharedAccessKey={KEY}", "needs SharedAccessKeyName and"),
    "no-credentials": ("Endpoint=sb://h/", "needs SharedAccessKeyName"),
    "both": (CS + f";SharedAccessSignature={TOKEN}", "not both"),
    "bad-token": ("Endpoint=sb://h/;SharedAccessSignature=Bearer x", "not a valid SAS token"),
    "use-tls": (CS + ";UseTls=yes", "UseTls must be true or false"),
    "entity-query": (CS + ";EntityPath=a?b", "not a valid entity path"),
    "entity-slashes": (CS + ";EntityPath=//", "not a valid entity path"),
}


@pytest.mark.parametrize(("text", "reason"), BAD.values(), ids=BAD.keys())
def test_bad_connection_strings(text: str, reason: str) -> None:
    with pytest.raises(InvalidConnectionString) as caught:
        ConnectionString.parse(text)

    assert reason in str(caught.value)
    assert KEY not in str(caught.value)
    assert isinstance(caught.value, HcError) and isinstance(caught.value, ValueError)


def test_direct_construction_is_validated() -> None:
    with pytest.raises(InvalidConnectionString, match="';'"):
        ConnectionString("sb://h/", key_name="R", key="a;b")
    with pytest.raises(InvalidConnectionString):
        ConnectionString.parse(CS).with_entity("a#b")
