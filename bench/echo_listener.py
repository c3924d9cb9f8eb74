"""S1 (c), S3 and S6: our Python listener, on the SDK's HybridConnectionListener (hc.asyncio).

``python -m bench.echo_listener RELAY_BASE ENTITY [MAX_MESSAGE_SIZE]``; prints
``READY`` once the control channel is online.  Routes:

- ``GET .../source?size=N``: N bytes, streamed in 256 KiB chunks (S6 download);
- ``POST .../sink``: reads the body as it streams in, answers its length (S6 upload);
- any other request with a body: the same bytes back with the same Content-Type (S1, S3).
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

from bench.aio import run
from bench.keys import KEY, KEY_NAME
from hc.asyncio import HybridConnectionListener, RelayedHttpListenerContext, TokenProvider

_CHUNK = b"\x5a" * (256 * 1024)


async def handler(context: RelayedHttpListenerContext) -> None:
    request, response = context.request, context.response
    path = urlsplit(request.target)
    if request.method == "GET" and path.path.endswith("/source"):
        size = int(parse_qs(path.query).get("size", ["0"])[0])
        response.headers.append(("Content-Type", "application/octet-stream"))
        while size > 0:
            chunk = _CHUNK if size >= len(_CHUNK) else _CHUNK[:size]
            size -= len(chunk)
            await response.write(chunk)
        return
    if path.path.endswith("/sink"):
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
        response.headers.append(("Content-Type", "text/plain"))
        await response.write(b"%d\n" % seen)
        return
    body = await request.read()
    content_type = request.header("Content-Type") or "application/octet-stream"
    response.headers.append(("Content-Type", content_type))
    await response.write(body)


async def main(relay_base: str, entity: str, max_size: int) -> None:
    provider = TokenProvider.create_shared_access_signature_token_provider(KEY_NAME, KEY)
    listener = HybridConnectionListener(
        f"{relay_base}/{entity}", provider, max_message_size=max_size,
        options=(("sb-relay-max-message-size", str(max_size)),),
    )
    listener.request_handler = handler
    async with listener:
        print("READY", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 64 * 1024 * 1024
    run(main(sys.argv[1], sys.argv[2], size))
