"""S2 load generator: zeep clients calling GetSalary(7), in threads, driven from stdin.

``python -m bench.zeep_load WSDL_URL THREADS [relay|ws2007|nettcp|hybrid]`` loads one zeep
client per thread (``relay``: bindings.relay_client with the bench key; ``nettcp``: the
same on a NetTcp session each; ``hybrid``: NetTcp sessions moved onto their direct
connection before ``READY``; else a plain ``zeep.Client``), prints ``READY``, then for each stdin line ``run SECONDS N``
runs N threads for SECONDS and prints ``RESULT {"calls", "errors", "latency_us": [...]}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from decimal import Decimal
from typing import Any

import zeep

from bench.keys import KEY, KEY_NAME

EXPECTED = Decimal("5120.50")


def _client(wsdl: str, mode: str) -> Any:
    if not mode:
        return zeep.Client(wsdl)
    from bindings import (
        ConnectionMode,
        NetTcpRelayBinding,
        TokenProvider,
        WS2007HttpRelayBinding,
        relay_client,
    )

    binding = {"ws2007": WS2007HttpRelayBinding(), "nettcp": NetTcpRelayBinding(),
               "hybrid": NetTcpRelayBinding(connection_mode=ConnectionMode.HYBRID)}.get(mode)
    return relay_client(wsdl, binding=binding,
                        token_provider=TokenProvider.shared_access_key(KEY_NAME, KEY))


def _direct(client: Any) -> None:
    """Wait until a Hybrid client's session went direct (or say that it did not)."""
    import asyncio

    session = client.transport.nettcp
    client.transport.background.run(asyncio.wait_for(session.hybrid_settled.wait(), 15))
    if session.path != "direct":
        print(f"zeep_load: a Hybrid session stayed {session.path}", file=sys.stderr, flush=True)


def _loop(client: Any, until: float, out: list[int], errors: list[int]) -> None:
    service = client.service
    while True:
        start = time.perf_counter()
        if start >= until:
            return
        try:
            ok = service.GetSalary(7) == EXPECTED
        except Exception:  # noqa: BLE001 - a failed call is counted, the load goes on
            ok = False
        out.append(int((time.perf_counter() - start) * 1e6))
        if not ok:
            errors.append(1)


def main() -> None:
    wsdl, threads, mode = sys.argv[1], int(sys.argv[2]), (sys.argv[3:] or [""])[0]
    clients = [_client(wsdl, mode) for _ in range(threads)]
    for client in clients:  # warm: connection, caches (a session: opened)
        client.service.GetSalary(7)
        if mode == "hybrid":
            _direct(client)
    print("READY", flush=True)
    for line in sys.stdin:
        _, seconds, count = line.split()
        until = time.perf_counter() + float(seconds)
        latencies: list[list[int]] = [[] for _ in range(int(count))]
        errors: list[int] = []
        workers = [threading.Thread(target=_loop, args=(clients[i], until, latencies[i], errors))
                   for i in range(int(count))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        merged = [x for part in latencies for x in part]
        print("RESULT " + json.dumps({"calls": len(merged), "errors": len(errors), "latency_us": merged}),
              flush=True)


if __name__ == "__main__":
    main()
