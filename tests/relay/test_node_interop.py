"""The relay against Microsoft's unmodified npm packages, run with node.

hyco-https listeners are covered in interop_tests/node; here: a hyco-ws sender
talking to a Python listener, createRelayToken tokens verified by ``hc.sas``,
and hyco-ws's reconnect storm against a refused token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys

import pytest
import websockets

from hc.entities import Rights
from hc.sas import Resource, SasVerifier
from relay.namespace import SasRule
from tests.relay.test_server_websockets import accepting_listener
from tests.support.node import NODE_DIR, NODE_SKIP_REASON, node_available, run_node
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayHandle

pytestmark = [pytest.mark.node, pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON)]


def test_create_relay_token_verifies_with_our_sas() -> None:
    uri = "http://127.0.0.1:9350/payroll"
    token = run_node("token.js", uri, TEST_KEY_NAME, TEST_KEY, "600", timeout=30).stdout.strip()
    rules = [SasRule(TEST_KEY_NAME, TEST_KEY, Rights.LISTEN)]
    grant = SasVerifier().verify(token, Resource.from_uri("ws://127.0.0.1:1/payroll"), Rights.LISTEN, rules)
    assert grant.key_name == TEST_KEY_NAME
    wrong_key = [SasRule(TEST_KEY_NAME, TEST_KEY[::-1], Rights.LISTEN)]
    with pytest.raises(Exception, match="signature"):
        SasVerifier().verify(token, Resource.from_uri(uri), Rights.LISTEN, wrong_key)


async def _node(*args: str) -> tuple[int, list[dict[str, object]]]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / args[0]), *args[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    sys.stderr.write(err.decode())
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return proc.returncode or 0, lines


async def test_hyco_ws_sender_talks_to_a_python_listener(arelay: RelayHandle) -> None:
    task, seen = await accepting_listener(arelay, "wsecho")
    code, lines = await _node(
        "ws_sender.js", "--relay", f"127.0.0.1:{arelay.port}", "--path", "wsecho", "--key", TEST_KEY,
        "--protocol", "echo.v1", "--text", "hello relay",
        "--binary", base64.b64encode(b"\x00\x01\xfe\xff").decode(),
        "--close-code", "4002", "--close-reason", "done",
    )
    await asyncio.wait_for(task, 10)
    assert code == 0
    assert {"type": "text", "data": "hello relay"} in lines
    assert {"type": "binary", "data": base64.b64encode(b"\x00\x01\xfe\xff").decode()} in lines
    assert seen["subprotocol"] == "echo.v1"
    assert seen["close"] == (4002, "done")
    assert "Sec-WebSocket-Key" in seen["accept"]["connectHeaders"]


async def test_hyco_ws_reconnect_storm_is_throttled(arelay: RelayHandle) -> None:
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "ws_echo_listener.js"), "--relay", f"127.0.0.1:{arelay.port}",
        "--path", "storm", "--key", "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=",
        "--retry", "--max-errors", "100000",
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        errors: list[str] = []
        async with asyncio.timeout(30):  # hyco-ws reports each refusal on stdout
            while "unexpected server response (429)" not in errors:  # refused outright at last
                line = await proc.stdout.readline()
                assert line, f"hyco-ws exited before it was throttled; it saw {set(errors)}"
                event = json.loads(line) if line.startswith(b"{") else {}
                if event.get("event") == "error":
                    errors.append(event["message"])
        assert errors[0] == "unexpected server response (401)"
        good = await websockets.connect(
            f"{arelay.ws_url}/$hc/storm?sb-hc-action=listen",
            additional_headers={"ServiceBusAuthorization": arelay.token("storm")},
        )
        await good.close()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
