"""Message security wired into hosting and clients: make_handler, RelayServiceHost, relay_client.

No relay here (see ``tests/samples/test_signed_e2e.py`` for that): handlers are
called with a :class:`RelayedRequest` in the test's loop, clients are built
from a local WSDL file. Every clock is the test PKI's ``T0``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import zeep
from lxml import etree

from bindings.binding import (
    BasicHttpRelayBinding,
    EndToEndSecurityMode,
    NetOnewayRelayBinding,
    RelayBinding,
    WS2007HttpRelayBinding,
)
from bindings.exceptions import ConfigurationError, UntrustedResponse
from bindings.handler import RelayedRequest, RelayedResponse, iter_bytes, settle
from bindings.host import RelayServiceHost, make_handler
from bindings.spyne_host import SpyneRelayApp, spyne_wsgi
from bindings.tokens import TokenProvider
from bindings.wsgi_host import WsgiHandler
from bindings.wssecurity import (
    MessageSecurity,
    SecurityStage,
    WsSecurityMiddleware,
    WsSecurityPlugin,
)
from bindings.zeep_addressing import AddressingPlugin
from bindings.zeep_transport import RelayTokenPlugin, relay_client, security_plugins
from samples.payroll import services
from soap.envelope import Envelope
from soap.fault import find_fault
from tests.bindings.test_wssecurity import at, client_settings, service_settings
from tests.soap.test_security_trust import T0, pki

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

Mode = EndToEndSecurityMode
MESSAGE = Mode.MESSAGE
TWMC = Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def async_handler(request: RelayedRequest) -> RelayedResponse:
    return RelayedResponse(200)


def inner_app(handler: object) -> object:
    assert isinstance(handler, WsgiHandler)
    return handler.app


# --- the service side ------------------------------------------------------


def test_message_mode_gives_the_spyne_pipeline_its_security_step() -> None:
    binding = BasicHttpRelayBinding(security=MESSAGE, max_received_message_size=1234)
    app = inner_app(make_handler(services.payroll_app(), binding, service_settings()))
    assert isinstance(app, SpyneRelayApp)  # no middleware around it: one pipeline, one parse
    assert isinstance(app.security, SecurityStage) and app.security.signer is not None


def test_message_mode_wraps_a_plain_wsgi_app() -> None:
    binding = BasicHttpRelayBinding(security=TWMC)
    app = inner_app(make_handler(wsgi_app, binding, service_settings()))
    assert isinstance(app, WsSecurityMiddleware) and app.app is wsgi_app
    assert app.signer is None  # the credential mode never signs replies


@pytest.mark.parametrize("mode", [Mode.NONE, Mode.TRANSPORT])
def test_transport_modes_leave_the_app_alone(mode: Mode) -> None:
    binding = BasicHttpRelayBinding(security=mode)
    assert inner_app(make_handler(wsgi_app, binding)) is wsgi_app
    spyne = inner_app(make_handler(services.payroll_app(), binding))
    assert isinstance(spyne, SpyneRelayApp) and spyne.security is None


@pytest.mark.parametrize(
    ("app", "mode", "settings", "message"),
    [
        (wsgi_app, MESSAGE, None, "needs MessageSecurity settings"),
        (services.payroll_app(), MESSAGE, None, "needs MessageSecurity settings"),
        (wsgi_app, Mode.TRANSPORT, "service", "binding's security is TRANSPORT"),
        (wsgi_app, Mode.NONE, "service", "binding's security is NONE"),
        (async_handler, MESSAGE, "service", "async handler would get unchecked messages"),
        (async_handler, TWMC, None, "async handler"),
        (async_handler, Mode.TRANSPORT, "service", "async handler"),
        (wsgi_app, MESSAGE, MessageSecurity(), "trust store on the service"),
    ],
)  # fmt: skip
def test_hosting_configuration_errors(
    app: object, mode: Mode, settings: MessageSecurity | str | None, message: str
) -> None:
    security = service_settings() if settings == "service" else settings
    assert not isinstance(security, str)
    with pytest.raises(ConfigurationError, match=message):
        make_handler(app, BasicHttpRelayBinding(security=mode), security)


def test_relay_service_host_takes_message_security() -> None:
    host = RelayServiceHost(
        services.payroll_app(),
        "sb://127.0.0.1:9/payroll-signed",
        binding=BasicHttpRelayBinding(security=MESSAGE),
        message_security=service_settings(),
    )
    hosted = inner_app(host.handler)
    assert isinstance(hosted, SpyneRelayApp) and hosted.security is not None
    with pytest.raises(ConfigurationError, match="needs MessageSecurity"):
        RelayServiceHost(
            services.payroll_app(), "sb://127.0.0.1:9/p", binding=WS2007HttpRelayBinding(
                security=MESSAGE
            )
        )


def contract(tmp_path: Path, make_app: Callable[[], Any], binding: RelayBinding) -> Path:
    """The app's WSDL as a file, addressed at a relay that is never called."""
    hosted = spyne_wsgi(make_app(), binding)
    path = tmp_path / "contract.wsdl"
    path.write_bytes(hosted.wsdl("http://relay.test/timesheet"))
    hosted.close()
    return path


def signed_message(client: zeep.Client, operation: str, *args: Any) -> bytes:
    """What the client would send for ``operation``, signed by our plugin at T0."""
    root = client.create_message(client.service, operation, *args)
    plugin = security_plugins(BasicHttpRelayBinding(security=MESSAGE), client_settings())[0]
    plugin.egress(root, {}, None, {})
    return bytes(etree.tostring(root))


def relayed(body: bytes) -> RelayedRequest:
    headers = (("Content-Type", "text/xml; charset=utf-8"),)
    return RelayedRequest(
        "POST", "/timesheet", headers, iter_bytes(body), "http://relay.test", "timesheet"
    )


async def test_one_way_spyne_operations_are_checked_before_the_202(tmp_path: Path) -> None:
    recorder = services.Recorder()
    binding = NetOnewayRelayBinding(security=MESSAGE)
    handler = make_handler(services.timesheet_app(recorder), binding, service_settings())
    client = zeep.Client(str(contract(tmp_path, services.timesheet_app, binding)))
    body = signed_message(client, "SubmitTimesheet", 7, Decimal("7.5"))
    tampered = body.replace(b">7.5<", b">75<")
    assert tampered != body
    refused = await handler(relayed(tampered))
    assert refused.status == 500  # a fault, not 202
    assert isinstance(refused.body, bytes)
    fault = find_fault(Envelope.from_bytes(refused.body))
    assert fault is not None and fault.subcode is not None
    assert fault.subcode.localname == "FailedCheck"
    accepted = await handler(relayed(body))
    assert (accepted.status, accepted.body) == (202, b"")
    assert recorder.lines == []  # the 202 is not written yet: no work
    await settle(accepted, sent=True)  # what the exchange does once it was written
    assert recorder.wait_for(1, 10)
    assert recorder.lines == ["timesheet employee=7 hours=7.5"]


# --- the client side -------------------------------------------------------


def test_client_plugin_comes_after_addressing_and_the_relay_token(tmp_path: Path) -> None:
    wsdl = contract(tmp_path, services.payroll12_app, WS2007HttpRelayBinding())
    client = relay_client(
        str(wsdl),
        binding=WS2007HttpRelayBinding(security=MESSAGE),
        token_provider=TokenProvider.shared_access_key("k", "a2V5"),
        message_security=client_settings(),
    )
    kinds = [type(plugin) for plugin in client.plugins]
    assert kinds == [AddressingPlugin, RelayTokenPlugin, WsSecurityPlugin]


def test_async_client_plugin_comes_last_too(tmp_path: Path) -> None:
    from bindings.zeep_async import relay_async_client

    wsdl = contract(tmp_path, services.payroll12_app, WS2007HttpRelayBinding())
    client = relay_async_client(
        str(wsdl),
        binding=WS2007HttpRelayBinding(security=MESSAGE),
        token_provider=TokenProvider.shared_access_key("k", "a2V5"),
        message_security=client_settings(),
    )
    kinds = [type(plugin) for plugin in client.plugins]
    assert kinds == [AddressingPlugin, RelayTokenPlugin, WsSecurityPlugin]
    with pytest.raises(ConfigurationError, match="needs MessageSecurity"):
        relay_async_client(str(wsdl), binding=WS2007HttpRelayBinding(security=MESSAGE))


def test_client_plugins_per_mode() -> None:
    assert security_plugins(BasicHttpRelayBinding(), None) == []
    assert security_plugins(BasicHttpRelayBinding(security=Mode.NONE), None) == []
    twmc = security_plugins(
        BasicHttpRelayBinding(security=TWMC), client_settings(username="alice", password="pw")
    )
    assert len(twmc) == 1 and isinstance(twmc[0], WsSecurityPlugin)
    assert twmc[0].hook.signer is None and twmc[0].hook.username_token is not None


@pytest.mark.parametrize(
    ("mode", "settings", "wsse", "message"),
    [
        (MESSAGE, None, None, "needs MessageSecurity settings"),
        (Mode.TRANSPORT, "client", None, "binding's security is TRANSPORT"),
        (MESSAGE, "client", object(), "not both"),
        (MESSAGE, MessageSecurity(trust=pki().pinned(pki().server)), None, "signing identity"),
    ],
)  # fmt: skip
def test_client_configuration_errors(
    mode: Mode, settings: MessageSecurity | str | None, wsse: object, message: str
) -> None:
    security = client_settings() if settings == "client" else settings
    assert not isinstance(security, str)
    with pytest.raises(ConfigurationError, match=message):
        security_plugins(BasicHttpRelayBinding(security=mode), security, wsse)


def test_relay_client_refuses_wsse_with_message_security(tmp_path: Path) -> None:
    wsdl = contract(tmp_path, services.payroll_app, BasicHttpRelayBinding())
    with pytest.raises(ConfigurationError, match="not both"):
        relay_client(
            str(wsdl),
            binding=BasicHttpRelayBinding(security=MESSAGE),
            message_security=client_settings(),
            wsse=object(),
        )


def test_untrusted_response_is_in_the_bindings_tree() -> None:
    from bindings.zeep_security import UntrustedResponse as Defined

    assert UntrustedResponse is Defined
    assert issubclass(UntrustedResponse, zeep.exceptions.SignatureVerificationFailed)
    assert at(T0)() == T0
