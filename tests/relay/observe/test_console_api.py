"""The console's API through a real relay and a real Spyne service: inspector, capture,
masking, replay, the SOAP test client, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from relay.observe.admin import CSP
from relay.observe.settings import ObserveSettings
from tests.support.desk import desk_host, envelope
from tests.support.relay import Relays, RelayThread

SOAP = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:soap-relay:desk/Echo"'}
PASSWORD_HEADER = (
    '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
    'oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken><wsse:Username>ada'
    "</wsse:Username><wsse:Password>hunter2-secret</wsse:Password></wsse:UsernameToken>"
    "</wsse:Security>"
)


class Console:
    """The console's API as its page calls it (a Manage token in Authorization)."""

    def __init__(self, relay: RelayThread) -> None:
        self.relay = relay
        self.base = f"{relay.base_url}/$console/api/"
        self.headers = {"Authorization": relay.token()}

    def get(self, path: str) -> Any:
        response = requests.get(self.base + path, headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any], **headers: str) -> requests.Response:
        return requests.post(self.base + path, json=body, headers={**self.headers, **headers},
                             timeout=30)

    def calls(self) -> list[dict[str, Any]]:
        return list(self.get("calls?after=0")["calls"])


def call(relay: RelayThread, body: bytes, **headers: str) -> requests.Response:
    sent = {**SOAP, "ServiceBusAuthorization": relay.token("desk"), **headers}
    return requests.post(f"{relay.base_url}/desk", data=body, headers=sent, timeout=30)


@pytest.fixture
def small_capture(relays: Relays) -> RelayThread:
    return relays.in_thread(observe=ObserveSettings(capture_bytes=6000))


def test_inspector_shows_each_call_without_bodies_by_default(relay: RelayThread) -> None:
    console = Console(relay)
    with desk_host(relay):
        assert call(relay, envelope("hello")).status_code == 200
        assert call(relay, envelope("fault:no pay today")).status_code == 500
    ok, fault = [c for c in console.calls() if c["entity"] == "desk"]
    assert (ok["operation"], ok["status"], ok["soapVersion"]) == ("Echo", 200, "1.1")
    assert ok["requestBytes"] == len(envelope("hello")) and ok["listener"].startswith("L")
    assert (fault["status"], fault["faultCode"], fault["faultString"]) == (
        500, "Server.Refused", "no pay today")
    assert ok["relayMs"] >= 0 and ok["listenerMs"] > 0
    detail = console.get(f"calls/{ok['seq']}")
    assert detail["captured"] is False and "requestBody" not in detail


def test_captured_calls_are_masked_and_replayed(relay: RelayThread) -> None:
    console = Console(relay)
    with desk_host(relay):
        assert console.post("capture", {"entity": "desk", "on": True}).json()["capture"] is True
        token = relay.token("desk")
        body = envelope("again", header=PASSWORD_HEADER)
        assert call(relay, body, Authorization=token).status_code == 200
        first = console.calls()[-1]
        detail = console.get(f"calls/{first['seq']}")
        assert detail["captured"] is True
        assert "hunter2-secret" not in detail["requestBody"] and "***" in detail["requestBody"]
        assert token not in str(detail) and "again" in detail["requestBody"]
        assert "\n  " in detail["requestBody"]  # pretty-printed
        replayed = console.post(f"calls/{first['seq']}/replay", {})
        assert replayed.status_code == 200, replayed.text
        answer = replayed.json()
        assert answer["status"] == 200 and "again" in answer["response"]
    calls = [c for c in console.calls() if c["entity"] == "desk"]
    assert len(calls) == 2 and calls[1]["operation"] == "Echo"


def test_capture_keeps_within_its_byte_bound(small_capture: RelayThread) -> None:
    relay, console = small_capture, Console(small_capture)
    with desk_host(relay):
        console.post("capture", {"entity": "desk", "on": True})
        for n in range(12):
            assert call(relay, envelope(f"call {n} " + "x" * 400)).status_code == 200
    inspector = relay.server.state.observer.inspector
    assert 0 < inspector.captured_bytes <= 6000
    calls = [c for c in console.calls() if c["entity"] == "desk"]
    assert len(calls) == 12
    assert not calls[0]["captured"] and calls[-1]["captured"]


def test_test_client_loads_the_wsdl_and_invokes(relay: RelayThread) -> None:
    console = Console(relay)
    with desk_host(relay):
        forms = console.get("wsdl?entity=desk")
        echo = next(op for op in forms["operations"] if op["name"] == "Echo")
        assert [f["name"] for f in echo["fields"]] == ["text"]
        answer = console.post("invoke", {"entity": "desk", "operation": "Echo",
                                         "values": {"text": "<b>&amp;</b>"}}).json()
        assert answer["status"] == 200 and "&lt;b&gt;&amp;amp;&lt;/b&gt;" in answer["request"]
        assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in answer["response"]
        faulted = console.post("invoke", {"entity": "desk", "operation": "Echo",
                                          "values": {"text": "fault:closed"}}).json()
    assert faulted["status"] == 500
    assert faulted["fault"] == {"code": "Server.Refused", "string": "closed"}


@pytest.mark.parametrize(("body", "headers", "status"), [
    ({"entity": "http://example.com/", "xml": "<x/>"}, {}, 404),
    ({"entity": "../desk", "xml": "<x/>"}, {}, 404),
    ({"entity": "desk", "xml": "<x/>"}, {"Origin": "http://evil.example"}, 403),
    ({"entity": "desk", "on": "yes"}, {}, 400),
])
def test_console_posts_reach_only_own_entities_from_own_origin(
    relay: RelayThread, body: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    console = Console(relay)
    with desk_host(relay):
        path = "capture" if "on" in body else "invoke"
        assert console.post(path, body, **headers).status_code == status
        plain = requests.post(console.base + "invoke", data="{}", timeout=30,
                              headers={**console.headers, "Content-Type": "text/plain"})
        assert plain.status_code == 400


def test_console_page_is_served_with_a_strict_csp(relay: RelayThread) -> None:
    page = requests.get(f"{relay.base_url}/$console/", timeout=30)
    assert page.status_code == 200 and b"console.js" in page.content
    assert page.headers["Content-Security-Policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "default-src 'none'" in CSP
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = requests.get(f"{relay.base_url}/$console/console.js", timeout=30)
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert b"innerHTML" not in script.content.replace(b"never innerHTML", b"")
    assert requests.get(f"{relay.base_url}/$console/api/calls", timeout=30).status_code == 401


def test_the_inspectors_answer_is_bounded_and_its_cursor_restarts(relay: RelayThread) -> None:
    console = Console(relay)
    with requests.Session() as http:  # 510 quick calls the relay answers itself (no listener)
        for _ in range(510):
            assert http.post(f"{relay.base_url}/nobody", data=b"x", timeout=30).status_code == 404
    page = console.get("calls?after=0")
    assert len(page["calls"]) == 500 and page["trimmed"] is True  # the newest 500
    newest = page["calls"][-1]["seq"]
    assert page["cursor"] == str(newest) and page["calls"][0]["seq"] == newest - 499
    assert console.get(f"calls?after={page['cursor']}")["calls"] == []
    # a cursor from before a restart (past the newest call) starts over
    assert len(console.get(f"calls?after={newest + 100}")["calls"]) == 500
    bad = requests.get(console.base + "calls?after=node0:x", headers=console.headers, timeout=30)
    assert bad.status_code == 400 and "cursor" in bad.text
