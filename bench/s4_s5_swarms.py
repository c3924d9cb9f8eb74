"""S4 idle listeners and S5 event fan-out, both on swarms of raw listener connections.

S4: a fresh relay with its default liveness settings (it pings a listener silent
for 5 s, drops one that leaves a ping unanswered for 3 s) takes 10,000 control
channels, 400 dynamic entities x 25, opened by four ``bench.swarm`` processes
(which ping every 5 s with a 3 s timeout, like the bindings).  Measured: relay
RSS growth / listeners, time until all are connected, and the relay's CPU over
30 s while idle (answering 2,000 pings a second).

S5: a relay with event entities of 1, 100 and 1,000 subscribers (the namespace
is built in Python: config files cap ``max_listeners`` at 25, Azure's limit).
Subscribers are ``bench.swarm`` connections answering 202 at once (raw
``asyncio.Protocol`` ones, ``bench.swarm_raw``: websockets' cost more CPU than
the relay and ran on the same cores).  A
keep-alive HTTP sender posts one 1 KiB SOAP event at a time and times it until
the relay's 202 (every subscriber acknowledged; ``Relay-Delivered`` is checked).
"""

from __future__ import annotations

import http.client
import json
import time
from statistics import median
from typing import Any

from bench import keys
from bench.procs import Proc, python_argv, raise_nofile
from bench.stack import Run, med, start_relay
from bench.wrk import SOAP_1K

__all__ = ["run_fanout", "run_idle"]

IDLE_ENTITIES, IDLE_PER_ENTITY, IDLE_PROCS = 400, 25, 4
IDLE_WINDOW = 30.0
FANOUT = (1, 100, 1000)
EVENTS = 50


def _swarm(run: Run, name: str, url: str, spec: dict[str, Any]) -> Proc:
    return run.start(Proc(name, python_argv("bench.swarm", url, json.dumps(spec)), logdir=run.workdir,
                          stdin=True, timeout=120))


def _connect(swarms: list[Proc], timeout: float = 300) -> tuple[float, int]:
    started = time.monotonic()
    for proc in swarms:
        proc.send("connect")
    counts = [json.loads(proc.expect("CONNECTED", timeout))["count"] for proc in swarms]
    return time.monotonic() - started, sum(counts)


def _idle_once(run: Run, rep: int) -> dict[str, float]:
    relay, url = start_relay(run, f"relay-s4-{rep}", {"ping_interval": 5, "pong_timeout": 3})
    entities = [f"idle/e{i:03d}" for i in range(IDLE_ENTITIES)]
    share = IDLE_ENTITIES // IDLE_PROCS
    swarms = [
        _swarm(run, f"s4-swarm-{rep}-{i}", url, {"entities": entities[i * share:(i + 1) * share],
                                                "per_entity": IDLE_PER_ENTITY, "ping_interval": 5})
        for i in range(IDLE_PROCS)
    ]
    time.sleep(1.0)
    rss_before = relay.rss_kib()
    seconds, count = _connect(swarms)
    time.sleep(3.0)  # let handshake garbage go
    rss_after = relay.rss_kib()
    cpu_before = relay.cpu_seconds()
    time.sleep(IDLE_WINDOW)
    idle_cpu = relay.cpu_seconds() - cpu_before
    alive = relay.alive() and all(s.alive() for s in swarms)
    run.stop_all()
    return {
        "listeners": count,
        "rss_kib_per_listener": (rss_after - rss_before) / max(count, 1),
        "rss_mib_total": rss_after / 1024,
        "connect_s": seconds,
        "connects_per_s": count / seconds if seconds else 0.0,
        "idle_cpu_pct": idle_cpu / IDLE_WINDOW * 100,
        "all_alive": float(alive),
    }


def run_idle(run: Run) -> dict[str, Any]:
    hard = raise_nofile()  # the children inherit the hard limit and raise to it
    needed = IDLE_ENTITIES * IDLE_PER_ENTITY + 200
    if hard < needed:
        run.log(f"S4 skipped: it needs {needed} open files per process and the hard limit is {hard}")
        return {}
    reps = []
    for rep in range(run.reps):
        point = _idle_once(run, rep)
        reps.append(point)
        run.log(f"S4 rep {rep + 1}: {point['listeners']:,.0f} listeners in {point['connect_s']:.1f} s, "
                f"{point['rss_kib_per_listener']:.1f} KiB each, idle CPU {point['idle_cpu_pct']:.2f} %")
    return {
        "listeners": IDLE_ENTITIES * IDLE_PER_ENTITY,
        "entities": IDLE_ENTITIES,
        "per_entity": IDLE_PER_ENTITY,
        "median": {k: med([p[k] for p in reps]) for k in reps[0]},
        "reps": reps,
    }


def _post_event(conn: http.client.HTTPConnection, path: str, token: str) -> tuple[float, int]:
    started = time.perf_counter()
    conn.request("POST", path, body=SOAP_1K, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:soap-relay:bench/Event"',
        "ServiceBusAuthorization": token})
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 202:
        raise RuntimeError(f"S5 event to {path}: status {response.status}")
    return elapsed, int(response.headers.get("Relay-Delivered", "0"))


def run_fanout(run: Run) -> dict[str, Any]:
    entities = [{"path": f"fan{n}", "kind": "event", "max_listeners": n} for n in FANOUT]
    relay, url = start_relay(run, "relay-s5", {"entities": entities})
    swarms = []
    for n in FANOUT:
        procs = min(4, n)
        swarms += [_swarm(run, f"s5-fan{n}-{i}", url,
                          {"entities": [f"fan{n}"], "per_entity": n // procs, "raw": True})
                   for i in range(procs)]
    _connect(swarms)
    token = keys.token(url)
    host, port = url.split("://", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    for n in FANOUT:  # warm-up
        _post_event(conn, f"/fan{n}", token)
    points: dict[int, list[dict[str, float]]] = {n: [] for n in FANOUT}
    for rep in range(run.reps):
        for n in FANOUT:
            times, delivered = [], []
            before = relay.cpu_seconds()
            for _ in range(EVENTS):
                elapsed, count = _post_event(conn, f"/fan{n}", token)
                times.append(elapsed * 1000)
                delivered.append(count)
            times.sort()
            point = {"events": float(EVENTS), "p50_ms": median(times), "p99_ms": times[int(len(times) * 0.99)],
                     "delivered": float(min(delivered)),
                     "relay_cpu_ms_per_event": (relay.cpu_seconds() - before) / EVENTS * 1000}
            points[n].append(point)
            run.log(f"S5 rep {rep + 1} {n} subscribers: p50 {point['p50_ms']:.1f} ms p99 "
                    f"{point['p99_ms']:.1f} ms, delivered {min(delivered)}")
    conn.close()
    run.stop_all()
    return {str(n): {"median": {k: med([p[k] for p in reps]) for k in reps[0]}, "reps": reps}
            for n, reps in points.items()}
