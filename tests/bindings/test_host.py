"""RelayServiceHost without a relay: what it hosts, where, and with which token."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import pytest

from bindings import (
    HostStatus,
    NetEventRelayBinding,
    RelayServiceHost,
    WebHttpRelayBinding,
)
from bindings.acknowledge import Acknowledging
from bindings.exceptions import ConfigurationError, HostOpenTimeout, RelayUnreachable
from bindings.handler import RelayedRequest, RelayedResponse
from bindings.settings import ENV_VAR
from bindings.tokens import FixedTokenProvider, SharedAccessKeyTokenProvider
from bindings.wsgi_host import WsgiHandler
from hc.sas import create_token
from samples.payroll.services import payroll_app

CS = "Endpoint=sb://127.0.0.1:9350/;SharedAccessKeyName=Root;SharedAccessKey=k;EntityPath=payroll"


def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [b""]


async def handler(request: RelayedRequest) -> RelayedResponse:
    return RelayedResponse()


class CallableHandler:
    async def __call__(self, request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse()


def test_what_gets_hosted() -> None:
    assert isinstance(RelayServiceHost(wsgi, "sb://127.0.0.1:1/a").handler, WsgiHandler)
    assert RelayServiceHost(handler, "sb://127.0.0.1:1/a").handler is handler
    instance = CallableHandler()
    assert RelayServiceHost(instance, "sb://127.0.0.1:1/a").handler is instance
    spyne = RelayServiceHost(payroll_app(), "sb://127.0.0.1:1/a").handler
    assert isinstance(spyne, WsgiHandler) and type(spyne.app).__name__ == "SpyneRelayApp"
    event = RelayServiceHost(wsgi, "sb://127.0.0.1:1/a", binding=NetEventRelayBinding())
    assert isinstance(event.handler, Acknowledging)
    with pytest.raises(ConfigurationError, match="cannot host"):
        RelayServiceHost(42, "sb://127.0.0.1:1/a")


def test_address_and_token_from_the_connection_string() -> None:
    host = RelayServiceHost(wsgi, connection_string=CS, binding=WebHttpRelayBinding())
    assert host.public_address == "http://127.0.0.1:9350/payroll"
    assert isinstance(host.token_provider, SharedAccessKeyTokenProvider)
    assert host.status is HostStatus.CLOSED and host.last_error is None
    explicit = RelayServiceHost(wsgi, "https://relay.example.com/other", connection_string=CS)
    assert explicit.public_address == "https://relay.example.com:443/other"
    token = create_token("http://127.0.0.1:9350/payroll", "Root", "k")
    signed = RelayServiceHost(
        wsgi, connection_string=f"Endpoint=sb://127.0.0.1:9350/;SharedAccessSignature={token}"
        ";EntityPath=p")
    assert isinstance(signed.token_provider, FixedTokenProvider)


def test_the_environment_variable_supplies_address_and_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, CS)
    host = RelayServiceHost(wsgi)
    assert host.public_address == "http://127.0.0.1:9350/payroll"
    assert isinstance(host.token_provider, SharedAccessKeyTokenProvider)
    # an address on the variable's relay: the variable gives the key
    other = RelayServiceHost(wsgi, "sb://127.0.0.1:9350/other")
    assert other.public_address == "http://127.0.0.1:9350/other"
    assert isinstance(other.token_provider, SharedAccessKeyTokenProvider)
    # an address on another relay: that relay never gets a token signed with this key
    assert RelayServiceHost(wsgi, "sb://127.0.0.1:9351/other").token_provider is None
    # what is given explicitly wins
    fixed = FixedTokenProvider(create_token("http://127.0.0.1:9350/payroll", "Root", "k"))
    assert RelayServiceHost(wsgi, token_provider=fixed).token_provider is fixed
    cs = CS.replace("EntityPath=payroll", "EntityPath=explicit").replace("9350", "9400")
    assert RelayServiceHost(wsgi, connection_string=cs).public_address.endswith(":9400/explicit")


def test_without_an_address_or_the_variable_the_error_names_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match=ENV_VAR):
        RelayServiceHost(wsgi)
    monkeypatch.setenv(ENV_VAR, CS.replace(";EntityPath=payroll", ""))
    with pytest.raises(ConfigurationError, match="EntityPath"):
        RelayServiceHost(wsgi)
    monkeypatch.setenv(ENV_VAR, "Endpoint=ftp://x/;SharedAccessKeyName=a;SharedAccessKey=b")
    for args in ((wsgi,), (wsgi, "sb://127.0.0.1:1/a")):  # also when it would give the token only
        with pytest.raises(ConfigurationError, match=f"{ENV_VAR}: Endpoint 'ftp://x/'"):
            RelayServiceHost(*args)


@pytest.mark.parametrize(
    "args, options",
    [((wsgi,), {}), ((wsgi, "payroll"), {}), ((wsgi, "sb://h/p"), {"listeners": 0})],
)
def test_bad_settings_are_configuration_errors(args: tuple[Any, ...], options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RelayServiceHost(*args, **options)


def test_close_before_open_is_harmless() -> None:
    host = RelayServiceHost(wsgi, "sb://127.0.0.1:1/a")
    host.close()
    assert host.status is HostStatus.CLOSED


def test_open_times_out_naming_the_last_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = RelayServiceHost(wsgi, f"sb://127.0.0.1:{port}/a")
    with pytest.raises(HostOpenTimeout, match="did not come online") as caught:
        host.open(timeout=0.5)
    assert isinstance(caught.value.__cause__, RelayUnreachable)
    assert isinstance(host.last_error, RelayUnreachable) and host.status is HostStatus.CLOSED
