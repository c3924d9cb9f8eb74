"""Microsoft's Node clients (hyco-https, hyco-ws) and node-soap through our relay.

Smoke tests for the scripts in this folder against a real relay (tests/support/relay.py);
what each checks is explained in NOTES.md. Run with ``python -m pytest`` from the repo root.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests

from tests.support.node import NODE_SKIP_REASON, NodeProcess, node_available, run_node
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON),
]


def _args(relay: RelayThread, path: str) -> list[str]:
    return ["--relay", f"127.0.0.1:{relay.port}", "--path", path, "--key", TEST_KEY]


def _auth(relay: RelayThread, path: str) -> dict[str, str]:
    return {"ServiceBusAuthorization": relay.token(path)}


def test_hyco_https_listener_round_trips(relay: RelayThread) -> None:
    base = f"{relay.base_url}/echo"
    with NodeProcess("https_echo_listener.js", *_args(relay, "echo")):
        info = requests.get(
            f"{base}/sub/info?x=1", headers=_auth(relay, "echo"), timeout=30
        )
        assert info.status_code == 200
        seen = info.json()
        assert seen["url"] == "/echo/sub/info?x=1"
        assert "servicebusauthorization" not in seen["headers"]

        posted = requests.post(
            f"{base}/post",
            data=b"<a>hi</a>",
            headers={**_auth(relay, "echo"), "Content-Type": "text/xml; charset=utf-8"},
            timeout=30,
        )
        assert (posted.status_code, posted.content) == (200, b"<a>hi</a>")
        assert posted.headers["Content-Type"] == "text/xml; charset=utf-8"

        no_content = requests.get(
            f"{base}/status/204", headers=_auth(relay, "echo"), timeout=30
        )
        assert no_content.status_code == 204


@pytest.mark.parametrize("query", ["size=70000", "size=200000&chunk=65536"])
def test_hyco_https_big_response_uses_rendezvous(
    relay: RelayThread, query: str
) -> None:
    size = int(query.split("&")[0].removeprefix("size="))
    with NodeProcess("https_echo_listener.js", *_args(relay, "echo")):
        reply = requests.get(
            f"{relay.base_url}/echo/big?{query}",
            headers=_auth(relay, "echo"),
            timeout=30,
        )
    assert reply.status_code == 200
    assert reply.content == bytes(i % 251 for i in range(size))


def test_hyco_https_big_request_body(relay: RelayThread) -> None:
    body = bytes(range(256)) * 400  # 102,400 bytes: address-only request
    with NodeProcess("https_echo_listener.js", *_args(relay, "echo")):
        reply = requests.post(
            f"{relay.base_url}/echo/up",
            data=body,
            headers=_auth(relay, "echo"),
            timeout=30,
        )
    assert (reply.status_code, reply.content) == (200, body)


def test_hyco_ws_sender_and_listener(relay: RelayThread) -> None:
    with NodeProcess("ws_echo_listener.js", *_args(relay, "chat")):
        sender = NodeProcess(
            "ws_sender.js",
            *_args(relay, "chat"),
            "--protocol",
            "chat.v2",
            "--protocol",
            "chat.v1",
            "--text",
            "hello",
            "--binary",
            base64.b64encode(b"\x00\x01\xff").decode(),
            "--close-code",
            "4001",
            "--close-reason",
            "bye",
        ).start()
        assert sender.ready_line == "READY protocol=chat.v2"
        assert sender.wait() == 0
    events = [json.loads(line) for line in sender.lines[1:]]
    assert events == [
        {"type": "text", "data": "hello"},
        {"type": "binary", "data": "AAH/"},
        {"type": "close", "code": 4001, "reason": "bye", "sentCode": 4001},
    ]


def test_ws_sender_reports_a_refused_upgrade(relay: RelayThread) -> None:
    with NodeProcess("ws_echo_listener.js", *_args(relay, "chat")):
        done = run_node(
            "ws_sender.js",
            "--relay",
            f"127.0.0.1:{relay.port}",
            "--path",
            "chat",
            "--key",
            "wrong-key",
            "--text",
            "x",
        )
    assert done.returncode == 2
    failure = json.loads(done.stdout.splitlines()[-1])
    assert failure["type"] == "upgrade-failed"
    assert failure["status"] == 401
    assert "failed: 401" in done.stderr


def test_node_soap_service_through_the_relay(relay: RelayThread) -> None:
    wsdl = f"{relay.base_url}/payroll?wsdl"
    header = f"ServiceBusAuthorization: {relay.token('payroll')}"
    with NodeProcess("soap_listener.js", *_args(relay, "payroll")):
        ok = run_node(
            "soap_client.js", wsdl, "GetSalary", '{"employeeId":7}', "--header", header
        )
        fault = run_node(
            "soap_client.js", wsdl, "GetSalary", '{"employeeId":8}', "--header", header
        )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"fault": False, "result": {"salary": 72000}}
    assert fault.returncode == 0, fault.stderr
    parsed = json.loads(fault.stdout)
    assert parsed["fault"] is True
    assert parsed["faultstring"] == "Unknown employee 8"


def test_token_js_token_is_accepted_by_the_relay(relay: RelayThread) -> None:
    token = run_node(
        "token.js", f"{relay.ws_url}/$hc/echo", TEST_KEY_NAME, TEST_KEY, "300"
    ).stdout.strip()
    with NodeProcess(
        "https_echo_listener.js",
        "--relay",
        f"127.0.0.1:{relay.port}",
        "--path",
        "echo",
        "--token",
        token,
        "--token-in",
        "query",
    ):
        reply = requests.get(
            f"{relay.base_url}/echo/info",
            headers={"ServiceBusAuthorization": token},
            timeout=30,
        )
    assert reply.status_code == 200
