"""Microsoft's sender: hyco-ws (on ws 1.1.5) connecting to a Python listener through the relay.

This is the WebSocket accept path (PROTOCOL.md section 4): ``node/ws_sender.js`` connects
with ``sb-hc-action=connect``; the relay hands an ``accept`` to our listener
(the SDK's ``hc.asyncio.HybridConnectionListener``), whose ``accept_connection()`` opens the
accept address and returns the stream, which echoes every message. Checked: the subprotocol both ends agree on, text and
binary messages (one of 200 KB, many frames) echoed byte for byte and in order, the
sender's credentials kept out of what the listener sees, and a clean close: the sender's
close code and reason reach the listener, and the listener's answering close frame reaches
the sender.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hc.asyncio import HybridConnectionListener, TokenProvider
from interop_tests.payroll_site import TIMEOUT
from tests.support.node import NODE_SKIP_REASON, node_available, run_node
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread, relay_thread

pytestmark = [pytest.mark.node, pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON)]

ENTITY = "ws-echo"
BIG = bytes(range(256)) * 800  # 204,800 bytes


@dataclass
class Seen:
    """What the Python listener saw of the one sender it accepted."""

    headers: dict[str, str] = field(default_factory=dict)
    subprotocol: str | None = None
    messages: list[str | bytes] = field(default_factory=list)
    close: tuple[int | None, str | None] = (None, None)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayThread]:
    with relay_thread() as handle:
        yield handle


async def _echoing_listener(relay: RelayThread, seen: Seen) -> HybridConnectionListener:
    """The SDK's listener; the one sender it takes through accept_connection() is echoed."""
    provider = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)
    listener = HybridConnectionListener(f"sb://127.0.0.1:{relay.port}/{ENTITY}", provider)
    await asyncio.wait_for(listener.open(), TIMEOUT)

    async def echo_one() -> None:
        stream = await listener.accept_connection()
        assert stream is not None and stream.accept is not None
        seen.headers = {name.lower(): value for name, value in stream.connect_headers}
        seen.subprotocol = stream.subprotocol
        async for message in stream:
            seen.messages.append(message)
            await stream.write(message)
        seen.close = (stream.close_code, stream.close_reason)
        seen.done.set()

    seen.task = asyncio.get_running_loop().create_task(echo_one())
    return listener


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("token_in", ["header", "query"])
async def test_hyco_ws_sender_echoes_through_a_python_listener(
    relay: RelayThread, token_in: str
) -> None:
    seen = Seen()
    listener = await _echoing_listener(relay, seen)
    stdin = json.dumps({"type": "binary", "data": base64.b64encode(BIG).decode()}) + "\n"
    try:
        done = await asyncio.to_thread(
            run_node, "ws_sender.js", "--relay", f"127.0.0.1:{relay.port}", "--path", ENTITY,
            "--key", TEST_KEY, "--token-in", token_in,
            "--protocol", "payroll.v2", "--protocol", "payroll.v1",
            "--text", "hello relay", "--text", "Grüße ✓",
            "--binary", base64.b64encode(b"\x00\x01\xfe\xff").decode(),
            "--stdin", "--close-code", "1000", "--close-reason", "done",
            input=stdin, timeout=TIMEOUT,
        )
        await asyncio.wait_for(seen.done.wait(), TIMEOUT)
    finally:
        await listener.close()

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "READY protocol=payroll.v2"
    assert _events(done.stdout) == [
        {"type": "text", "data": "hello relay"},
        {"type": "text", "data": "Grüße ✓"},
        {"type": "binary", "data": "AAH+/w=="},
        {"type": "binary", "data": base64.b64encode(BIG).decode()},
        {"type": "close", "code": 1000, "reason": "done", "sentCode": 1000},
    ]
    assert seen.messages == ["hello relay", "Grüße ✓", b"\x00\x01\xfe\xff", BIG]
    assert seen.subprotocol == "payroll.v2"
    assert seen.close == (1000, "done")
    assert "sec-websocket-key" in seen.headers
    assert "servicebusauthorization" not in seen.headers
    assert all("sb-hc-token" not in value for value in seen.headers.values())
