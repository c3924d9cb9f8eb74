"""WS-Security message mode on a NetTcp session: signed calls, signed and checked replies,
an unsigned call refused with a security fault while the session stays up."""

from __future__ import annotations

import pytest
import zeep.exceptions

from bindings import EndToEndSecurityMode, NetTcpRelayBinding
from tests.bindings.nettcp.conftest import Stage
from tests.bindings.test_wssecurity import client_settings, service_settings

SIGNED = NetTcpRelayBinding(security=EndToEndSecurityMode.MESSAGE)


def test_signed_calls_and_replies_on_a_session(stage: Stage) -> None:
    stage.host(binding=SIGNED, message_security=service_settings())
    client = stage.client(binding=SIGNED, message_security=client_settings())
    assert client.service.Echo("signed") == "signed"  # the reply's signature checked by the plugin
    assert client.service.Add(2) == 2
    assert client.transport.nettcp.sessions_opened == 1


def test_an_unsigned_call_gets_a_security_fault_and_the_session_stays(stage: Stage) -> None:
    stage.host(binding=SIGNED, message_security=service_settings())
    unsigned = stage.client()
    with pytest.raises(zeep.exceptions.Fault) as raised:
        unsigned.service.Echo("unsigned")
    assert raised.value.message.endswith("the message has no wsse:Security header")
    assert [q.localname for q in raised.value.subcodes] == ["InvalidSecurity"]
    with pytest.raises(zeep.exceptions.Fault):
        unsigned.service.Echo("again")
    assert unsigned.transport.nettcp.sessions_opened == 1
