"""S7 failover: COUNT SDK listeners (they reconnect by themselves) on one entity.

``python -m bench.s7_listeners RELAY_BASE ENTITY COUNT``: prints ``READY`` once all
are online, then keeps them (reconnecting after a drop) until SIGTERM.  Each answers
requests with an empty 200.  Where they are is read from the nodes' ``/$health``.
"""

from __future__ import annotations

import asyncio
import sys

from bench.aio import run
from bench.keys import KEY, KEY_NAME
from bench.procs import raise_nofile
from hc.asyncio import HybridConnectionListener, RelayedHttpListenerContext, TokenProvider


async def _ok(context: RelayedHttpListenerContext) -> None:
    await context.request.read()


async def main(base: str, entity: str, count: int) -> None:
    raise_nofile()
    provider = TokenProvider.create_shared_access_signature_token_provider(KEY_NAME, KEY)
    listeners = []
    for _ in range(count):
        listener = HybridConnectionListener(f"{base}/{entity}", provider)
        listener.request_handler = _ok
        listeners.append(listener)
    await asyncio.gather(*(listener.open() for listener in listeners))
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
