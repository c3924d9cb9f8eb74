"""A bare NATS request/reply between two processes: nats-py against the cluster's own client.

The floor a cross-node call stands on (bench/results/issue12-speed.md): one
requester asks, one responder (queue group, as a listener's node) answers, 1 KiB
each way, c=1, uvloop in both.  Prints p50/p99 and the requester's and the
responder's CPU per request (``/proc``-free: each process's ``time.process_time``).

    python -m bench.nats_rr --url nats://127.0.0.1:4222 --client ours --n 5000
    python -m bench.nats_rr ... --ab 3      # ours and nats-py alternated, 3 rounds each
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

SUBJECT = "bench.rr"


async def _ours_pair(url: str) -> tuple[Any, Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    from relay.cluster.natsclient import ClientState, NatsClient

    up = asyncio.Event()
    client = NatsClient([url], on_state=lambda s: up.set() if s is ClientState.CONNECTED else None)
    client.start()
    await up.wait()
    return client, client.subscribe, client.publish, client.new_inbox


async def responder(url: str, kind: str) -> None:
    cpu = time.process_time()
    count = 0
    if kind == "ours":
        _, subscribe, publish, _ = await _ours_pair(url)

        def answer(msg: Any) -> None:
            nonlocal count
            count += 1
            publish(msg.reply, msg.data)

        subscribe(SUBJECT, answer, "listeners")
    else:
        import nats

        nc = await nats.connect(url)

        async def answer_py(msg: Any) -> None:
            nonlocal count
            count += 1
            await nc.publish(msg.reply, msg.data)

        await nc.subscribe(SUBJECT, queue="listeners", cb=answer_py)
        await nc.flush()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print(json.dumps({"cpu": time.process_time() - cpu, "count": count}), flush=True)


async def requester(url: str, kind: str, n: int, size: int) -> dict[str, float]:
    payload = b"x" * size
    times: list[float] = []
    if kind == "ours":
        _, subscribe, publish, inbox = await _ours_pair(url)
        mux = inbox()
        waiter: list[asyncio.Future[Any]] = []
        subscribe(f"{mux}.*", lambda msg: waiter[0].set_result(msg.data))
        loop = asyncio.get_running_loop()

        async def ask(i: int) -> None:
            waiter[:] = [loop.create_future()]
            publish(SUBJECT, payload, f"{mux}.{i}")
            await waiter[0]
    else:
        import nats

        nc = await nats.connect(url)

        async def ask(i: int) -> None:
            await nc.request(SUBJECT, payload, timeout=5)

    for i in range(200):
        await ask(i)
    cpu = time.process_time()
    for i in range(n):
        start = time.perf_counter()
        await ask(i)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    times.sort()
    return {"p50_ms": statistics.median(times) * 1e3, "p99_ms": times[int(len(times) * 0.99)] * 1e3,
            "cpu_us": cpu / n * 1e6}


def _event_loop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def point(url: str, kind: str, n: int, size: int) -> dict[str, float]:
    """One measurement: a responder process, then this process's requests."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.nats_rr", "--url", url, "--client", kind,
                             "--role", "responder"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        result = asyncio.run(requester(url, kind, n, size))
        proc.stdin.write("\n")
        proc.stdin.flush()
        other = json.loads(proc.stdout.readline())
        result["responder_cpu_us"] = other["cpu"] / max(other["count"], 1) * 1e6
    finally:
        proc.kill()
        proc.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--client", choices=["ours", "natspy"], default="ours")
    parser.add_argument("--role", choices=["requester", "responder"], default="requester")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--ab", type=int, default=0, help="rounds of ours and nats-py alternated")
    args = parser.parse_args()
    _event_loop()
    if args.role == "responder":
        asyncio.run(responder(args.url, args.client))
        return
    kinds = ["natspy", "ours"] * args.ab if args.ab else [args.client]
    for kind in kinds:
        result = point(args.url, kind, args.n, args.size)
        print(json.dumps({"client": kind, **{k: round(v, 3) for k, v in result.items()}}), flush=True)


if __name__ == "__main__":
    main()
