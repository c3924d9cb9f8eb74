"""S1 (c), S3 and S6: our Python listener, an async Handler on RelayServiceHost.

``python -m bench.echo_listener RELAY_BASE ENTITY [MAX_MESSAGE_SIZE]``; prints
``READY`` once the control channel is online.  Routes:

- ``GET .../source?size=N``: N bytes, streamed in 256 KiB chunks (S6 download);
- ``POST .../sink``: reads the body as it streams in, answers its length (S6 upload);
- any other request with a body: the same bytes back with the same Content-Type (S1, S3).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

from bench.aio import run
from bench.keys import KEY, KEY_NAME
from bindings import RelayServiceHost, TokenProvider, WebHttpRelayBinding
from bindings.handler import RelayedRequest, RelayedResponse

_CHUNK = b"\x5a" * (256 * 1024)
_BINARY = (("Content-Type", "application/octet-stream"),)


async def _source(size: int) -> AsyncIterator[bytes]:
    while size > 0:
        chunk = _CHUNK if size >= len(_CHUNK) else _CHUNK[:size]
        size -= len(chunk)
        yield chunk


async def handler(request: RelayedRequest) -> RelayedResponse:
    path = urlsplit(request.target)
    if request.method == "GET" and path.path.endswith("/source"):
        size = int(parse_qs(path.query).get("size", ["0"])[0])
        return RelayedResponse(200, "OK", _BINARY, _source(size))
    if path.path.endswith("/sink"):
        seen = 0
        async for chunk in request.body:
            seen += len(chunk)
        return RelayedResponse(200, "OK", (("Content-Type", "text/plain"),), b"%d\n" % seen)
    body = await request.read()
    content_type = request.header("Content-Type") or "application/octet-stream"
    return RelayedResponse(200, "OK", (("Content-Type", content_type),), body)


async def main(relay_base: str, entity: str, max_size: int) -> None:
    host = RelayServiceHost(
        handler,
        f"{relay_base}/{entity}",
        binding=WebHttpRelayBinding(max_received_message_size=max_size),
        token_provider=TokenProvider.shared_access_key(KEY_NAME, KEY),
    )
    async with host:
        print("READY", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 64 * 1024 * 1024
    run(main(sys.argv[1], sys.argv[2], size))
