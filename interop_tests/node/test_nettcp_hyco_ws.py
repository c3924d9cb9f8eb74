"""Microsoft's hyco-ws sender opens a NetTcp session and makes a call with a hand-built
envelope: the session channel is plain Hybrid Connections underneath (docs/nettcp.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from lxml import etree

from bindings import NetTcpRelayBinding, RelayServiceHost
from bindings.tokens import TokenProvider
from samples.payroll import services
from tests.support.node import NODE_SKIP_REASON, NodeProcess, node_available
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON),
]

WSA = "http://www.w3.org/2005/08/addressing"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


def envelope(address: str, message_id: str, employee: int) -> str:
    """What a hand-written client sends: SOAP 1.2, Action, MessageID, To."""
    return (
        f'<s:Envelope xmlns:s="{SOAP12}" xmlns:a="{WSA}"><s:Header>'
        f"<a:Action>GetSalary</a:Action><a:MessageID>{message_id}</a:MessageID>"
        f"<a:To>{address}</a:To></s:Header><s:Body>"
        f'<GetSalary xmlns="{services.TNS}"><employee_id>{employee}</employee_id></GetSalary>'
        "</s:Body></s:Envelope>"
    )


@pytest.fixture
def host(relay: RelayThread) -> Iterator[RelayServiceHost]:
    with RelayServiceHost(
        services.payroll12_app(), f"{relay.base_url}/payroll-tcp", binding=NetTcpRelayBinding(),
        token_provider=TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY),
    ) as opened:
        yield opened


def messages(sender: NodeProcess) -> list[etree._Element]:
    events = [json.loads(line) for line in sender.lines[1:]]
    assert events[-1]["type"] == "close"
    roots = []
    for event in events[:-1]:
        data = base64.b64decode(event["data"]) if event["type"] == "binary" else event["data"].encode()
        roots.append(etree.fromstring(data))
    return roots


def test_hyco_ws_makes_a_call_on_a_nettcp_session(relay: RelayThread, host: RelayServiceHost) -> None:
    sender = NodeProcess(
        "ws_sender.js", "--relay", f"127.0.0.1:{relay.port}", "--path", "payroll-tcp",
        "--key", TEST_KEY,
        "--text", envelope(host.public_address, "urn:uuid:hyco-1", 7),
        "--text", envelope(host.public_address, "urn:uuid:hyco-2", 99),
        "--expect", "3",  # the greeting, then two replies
    ).start()
    assert sender.wait() == 0
    greeting, *replies = messages(sender)
    assert greeting.findtext(f".//{{{WSA}}}Action") == "urn:soap-relay:nettcp/Session"
    assert greeting.findtext(".//{urn:soap-relay:nettcp}Id", "").startswith("urn:uuid:")
    by_request = {root.findtext(f".//{{{WSA}}}RelatesTo"): root for root in replies}
    assert set(by_request) == {"urn:uuid:hyco-1", "urn:uuid:hyco-2"}
    salary = by_request["urn:uuid:hyco-1"]
    assert salary.findtext(f".//{{{services.TNS}}}GetSalaryResult") == "5120.50"
    fault = by_request["urn:uuid:hyco-2"]
    assert fault.find(f".//{{{SOAP12}}}Fault") is not None
    assert "No employee has the id 99" in "".join(fault.itertext())
