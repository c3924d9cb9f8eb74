"""S1 (a): the direct target, an aiohttp server answering a POST with the same bytes.

``python -m bench.echo_backend PORT``; prints ``READY`` once listening.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from bench.aio import run


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=body, content_type=request.content_type, charset=request.charset)


async def main(port: int) -> None:
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
