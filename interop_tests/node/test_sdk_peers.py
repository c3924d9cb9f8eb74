"""The Python SDK (hc.asyncio) with peers nobody here wrote, through our relay.

- our ``HybridConnectionClient`` to Microsoft's hyco-ws listener (``ws_echo_listener.js``);
- curl to our ``HybridConnectionListener``'s ``request_handler`` (inline and by rendezvous).

(Microsoft's hyco-ws sender to our ``accept_connection()``: interop_tests/test_microsoft_sender.py.)
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hc.asyncio import (
    HybridConnectionClient,
    HybridConnectionListener,
    RelayedHttpListenerContext,
    TokenProvider,
)
from tests.support.node import NODE_SKIP_REASON, NodeProcess, node_available
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread, relay_thread

TOKENS = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)
BIG = bytes(range(256)) * 800  # 204,800 bytes: many frames


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayThread]:
    with relay_thread() as handle:
        yield handle


@pytest.mark.node
@pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON)
async def test_our_client_talks_to_microsofts_hyco_ws_listener(relay: RelayThread) -> None:
    args = ["--relay", f"127.0.0.1:{relay.port}", "--path", "sdk-chat", "--key", TEST_KEY]
    with NodeProcess("ws_echo_listener.js", *args) as listener:
        client = HybridConnectionClient(f"{relay.base_url}/sdk-chat", TOKENS)
        stream = await client.create_connection(subprotocols=("chat.v2", "chat.v1"))
        await stream.write("hello ✓")
        assert await asyncio.wait_for(stream.receive(), 10) == "hello ✓"
        await stream.write(BIG)
        assert await asyncio.wait_for(stream.receive(), 10) == BIG
        await stream.close(4001, "bye")
        assert (stream.close_code, stream.close_reason) == (4001, "bye")  # ws 1.1.5 echoes both
        closed = listener.wait_for_line(lambda line: '"event":"close"' in line, timeout=10)
    assert stream.subprotocol == "chat.v2"
    assert json.loads(closed)["code"] == 4001 and json.loads(closed)["reason"] == "bye"


async def shout(context: RelayedHttpListenerContext) -> None:
    request, response = context.request, context.response
    body = await request.read()
    response.status_code, response.status_description = 201, "Made"
    response.headers.append(("Content-Type", request.header("Content-Type") or "text/plain"))
    response.headers.append(("X-Seen", f"{request.method} {request.target} {len(body)}"))
    await response.write(body.upper())


@pytest.fixture
async def listener(relay: RelayThread) -> AsyncIterator[HybridConnectionListener]:
    listener = HybridConnectionListener(f"{relay.base_url}/sdk-http", TOKENS)
    listener.request_handler = shout
    await listener.open()
    yield listener
    await listener.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (apt-packages.txt)")
@pytest.mark.parametrize("size", [5, 300_000])
async def test_curl_reaches_our_request_handler(
    relay: RelayThread, listener: HybridConnectionListener, tmp_path: Path, size: int
) -> None:
    body = (b"abcdefghij" * (size // 10 + 1))[:size]
    (tmp_path / "body").write_bytes(body)
    process = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--show-error", "--max-time", "20", "--include",
        "-H", f"ServiceBusAuthorization: {relay.token('sdk-http')}",
        "-H", "Content-Type: text/x-sdk", "--data-binary", f"@{tmp_path / 'body'}",
        f"{relay.base_url}/sdk-http/path?q=1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    head, _, answer = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert lines[0].startswith("HTTP/1.1 201")
    assert headers["x-seen"] == f"POST /sdk-http/path?q=1 {size}"
    assert headers["content-type"] == "text/x-sdk"
    assert answer == body.upper()
