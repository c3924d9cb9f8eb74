"""S7: relay nodes sharing one namespace over NATS (issue 12); ratios within one run.

``python -m bench.s7_cluster [--seconds 3] [--reps 3] [--only latency,workers,failover,events]``
writes ``bench/results/s7.md`` and ``s7.json``.  Parts, each on processes of its own:

- ``latency``: a 1 KiB SOAP POST at c=1 (wrk) to the listener's own node, and to
  three other nodes that reach it across the cluster: the default (``direct``: the
  request inside an ask over the direct node-to-node link), the same with ``direct =
  false`` (``nats``: the ask inside a NATS request) and ``small_requests =
  "rendezvous"`` (address-only, the listener opens a rendezvous on the sender's
  node).  The cross-node p50 and p99 minus the same-node ones is what a cross-node
  call adds.
- ``workers``: S1's load (1 KiB SOAP POST, one echo listener, wrk c=32) against
  ``soaprelay serve --workers 2`` and ``--workers 1``: requests/s ratio, beside the
  machine's cores (wrk and the listener share them).
- ``failover``: 100 SDK listeners reach node A through haproxy (``balance first``);
  A is SIGKILLed; the time until the other nodes' ``/$health`` count all 100 again.
- ``events``: 1,000 event subscribers, 500 on each of two nodes, an event POSTed to
  one of them at c=1: p50/p99 and ``Relay-Delivered``, against the same 1,000 on
  one node.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import keys
from bench.procs import Proc, free_port, python_argv, wait_port
from bench.report import environment
from bench.stack import Run, med
from bench.wrk import run_wrk, write_script

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("latency", "workers", "failover", "events")
SOAP = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:soap-relay:bench/Echo"'}


# -- the parts' processes ---------------------------------------------------------------

def start_nats(run: Run, count: int = 3) -> list[str]:
    """``count`` nats-server processes meshed by routes; their client URLs."""
    clients = [free_port() for _ in range(count)]
    routes = [free_port() for _ in range(count)]
    for i in range(count):
        others = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(routes) if j != i)
        argv = ["nats-server", "-a", "127.0.0.1", "-p", str(clients[i]), "-n", f"s7-nats{i}",
                "--cluster_name", "s7", "--cluster", f"nats://127.0.0.1:{routes[i]}",
                "--routes", others]
        run.start(Proc(f"nats{i}", argv, logdir=run.workdir, ready=None))
        wait_port(clients[i])
    return [f"nats://127.0.0.1:{p}" for p in clients]


def start_node(run: Run, name: str, nats: list[str], entities: list[dict[str, Any]],
               small_requests: str = "nats", port: int = 0, direct: bool = True) -> tuple[Proc, str]:
    port = port or free_port()
    spec = {"port": port, "entities": entities, "cluster": {
        "nats": nats, "node_url": f"http://127.0.0.1:{port}", "node_name": name,
        "small_requests": small_requests, "direct": direct}}
    proc = run.start(Proc(name, python_argv("bench.cluster_node", json.dumps(spec)), logdir=run.workdir))
    return proc, proc.ready_line


def health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/$health", timeout=5) as reply:
        return dict(json.loads(reply.read()))


def wait_count(bases: list[str], path: str, count: int, timeout: float = 60.0) -> float:
    """Poll until ``bases`` hold ``count`` listeners on ``path`` between them; when (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            here = sum(health(b)["here"].get(path, 0) for b in bases)
        except OSError:
            here = -1
        if here == count:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} listeners on {path} not seen at {bases} (last: {here})")
        time.sleep(0.02)


def script(run: Run, name: str, base: str, path: str, headers: dict[str, str] = SOAP) -> Path:
    auth = {**headers, "ServiceBusAuthorization": keys.token(base, path)}
    return write_script(run.workdir / f"{name}.lua", auth)


def point(result: Any) -> dict[str, float]:
    return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
            "errors": result.errors}


def medians(points: list[dict[str, float]]) -> dict[str, float]:
    return {k: med([p[k] for p in points]) for k in points[0]}


# -- latency -----------------------------------------------------------------------------

#: The cross-node routes measured, as reported.
CROSS = ("cross_node_direct", "cross_node_nats", "cross_node_rendezvous")

def part_latency(run: Run) -> dict[str, Any]:
    nats = start_nats(run, int(os.environ.get("S7_NATS", "3")))
    echo = [{"path": "echo"}]
    _, via_direct = start_node(run, "s7-a", nats, echo, "nats")
    _, home = start_node(run, "s7-b", nats, echo)
    _, via_rv = start_node(run, "s7-c", nats, echo, "rendezvous")
    _, via_nats = start_node(run, "s7-d", nats, echo, "nats", direct=False)
    run.start(Proc("s7-listener", python_argv("bench.echo_listener", home, "echo"), logdir=run.workdir))
    for base in (via_direct, via_nats, via_rv):
        wait_count([home], "echo", 1)
        _wait_routed(base)
    targets = {"same_node": home, "cross_node_direct": via_direct, "cross_node_nats": via_nats,
               "cross_node_rendezvous": via_rv}
    scripts = {name: script(run, name, base, "echo") for name, base in targets.items()}
    for name, base in targets.items():  # warm up
        run_wrk(f"{base}/echo", scripts[name], 1, 1)
    reps: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for _ in range(run.reps):
        for name, base in targets.items():
            reps[name].append(point(run_wrk(f"{base}/echo", scripts[name], 1, run.seconds)))
    result: dict[str, Any] = {name: {"median": medians(p), "reps": p} for name, p in reps.items()}
    same = result["same_node"]["median"]
    for name in CROSS:
        cross = result[name]["median"]
        result[name]["added_p50_ms"] = cross["p50_ms"] - same["p50_ms"]
        result[name]["added_p99_ms"] = cross["p99_ms"] - same["p99_ms"]
    run.stop_all()
    return result


def _wait_routed(base: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{base}/echo", data=b"<x/>", method="POST",
                                     headers={**SOAP, "ServiceBusAuthorization": keys.token(base, "echo")})
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


# -- workers -----------------------------------------------------------------------------

WORKERS_CONFIG = f"""
[namespace]
name = "bench"
dynamic_entities = true

[[rule]]
name = "{keys.KEY_NAME}"
key = "{keys.KEY}"
rights = ["Manage", "Listen", "Send"]

[[entity]]
path = "echo"
"""


def part_workers(run: Run) -> dict[str, Any]:
    config = run.workdir / "workers.toml"
    config.write_text(WORKERS_CONFIG)
    bases, relays = {}, {}
    for count in (1, 2):
        argv = python_argv("soaprelay", "serve", "--config", str(config), "--port", "0",
                           "--log-level", "WARNING", "--workers", str(count))
        proc = relays[count] = run.start(Proc(f"workers{count}", argv, logdir=run.workdir,
                                              ready="soaprelay: listening on"))
        bases[count] = proc.ready_line
        run.start(Proc(f"workers{count}-listener", python_argv("bench.echo_listener", bases[count], "echo"),
                       logdir=run.workdir))
        _wait_routed(bases[count])
    scripts = {n: script(run, f"workers{n}", b, "echo") for n, b in bases.items()}
    for n, base in bases.items():
        run_wrk(f"{base}/echo", scripts[n], 32, 1)
    result: dict[str, Any] = {"cores": os.cpu_count()}
    for listeners in (1, 3):
        if listeners == 3:  # one more on each worker's own port: every call stays on its worker
            for n, base in bases.items():
                for i, url in enumerate(_worker_urls(base, n)):
                    run.start(Proc(f"workers{n}-listener{i}", python_argv("bench.echo_listener", url, "echo"),
                                   logdir=run.workdir))
                if n == 1:
                    run.start(Proc("workers1-listener-extra", python_argv("bench.echo_listener", base, "echo"),
                                   logdir=run.workdir))
        reps: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for _ in range(run.reps):
            for n, base in bases.items():
                before = relays[n].tree_cpu_seconds()
                result_n = run_wrk(f"{base}/echo", scripts[n], 32, run.seconds)
                reps[n].append({**point(result_n), **_cpu_per_request(before, relays[n].tree_cpu_seconds(),
                                                                      result_n.requests)})
        one, two = medians(reps[1]), medians(reps[2])
        result[f"listeners_{listeners}"] = {
            "workers_1": {"median": one, "reps": reps[1]}, "workers_2": {"median": two, "reps": reps[2]},
            "ratio_rps": two["rps"] / one["rps"] if one["rps"] else float("nan"),
            # each relay process on a core of its own, wrk and the listeners elsewhere: one
            # process tops out at 1 / its CPU per request; --workers 2 at 2 cores / all its
            # processes' CPU, and no faster than its busiest process allows
            "ratio_own_cores": min(2 * one["cpu_us"] / two["cpu_us"], one["cpu_us"] / two["cpu_us_busiest"])
            if two["cpu_us"] and two["cpu_us_busiest"] else float("nan"),
        }
    run.stop_all()
    return result


def _cpu_per_request(before: dict[int, float], after: dict[int, float], requests: int) -> dict[str, float]:
    """The relay's CPU per request over a point (us): all its processes, and its busiest."""
    used = [seconds - before.get(pid, 0.0) for pid, seconds in after.items()]
    per = 1e6 / requests if requests else float("nan")
    return {"cpu_us": sum(used) * per, "cpu_us_busiest": max(used, default=0.0) * per}


def _worker_urls(base: str, count: int, timeout: float = 20.0) -> list[str]:
    """Each worker's own URL, as new connections to the shared port meet them."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        view = health(base)
        seen[view.get("node", "single")] = view.get("url", base)
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every worker of {base} answered")
    return sorted(seen.values())


# -- failover ----------------------------------------------------------------------------

HAPROXY = """
defaults
    mode http
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    retries 3
    option redispatch
frontend relay
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance first
    option httpchk GET /$health
{servers}
"""


def part_failover(run: Run, listeners: int = 100) -> dict[str, Any]:
    nats = start_nats(run)
    entity = [{"path": "fo", "max_listeners": listeners}]
    nodes = [start_node(run, f"s7-f{i}", nats, entity) for i in range(3)]
    bases = [base for _, base in nodes]
    lb = free_port()
    servers = "\n".join(
        f"    server n{i} {base.removeprefix('http://')} check inter 250 fall 2 rise 2 maxconn 5000"
        for i, base in enumerate(bases))
    cfg = run.workdir / "haproxy.cfg"
    cfg.write_text(HAPROXY.format(port=lb, servers=servers))
    run.start(Proc("haproxy", ["haproxy", "-db", "-f", str(cfg)], logdir=run.workdir, ready=None))
    wait_port(lb)
    run.start(Proc("s7-listeners", python_argv("bench.s7_listeners", f"http://127.0.0.1:{lb}", "fo",
                                               str(listeners)), logdir=run.workdir, timeout=120))
    times = []
    for rep in range(run.reps):
        wait_count(bases, "fo", listeners)
        holder = max(range(3), key=lambda i: health(bases[i])["here"].get("fo", 0))
        held = health(bases[holder])["here"].get("fo", 0)
        proc = nodes[holder][0]
        killed = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)
        back = wait_count([b for i, b in enumerate(bases) if i != holder], "fo", listeners)
        times.append({"held": held, "seconds": back - killed})
        run.log(f"failover {rep + 1}: {held} listeners back in {back - killed:.2f} s")
        proc.popen.wait(5)
        port = int(bases[holder].rsplit(":", 1)[1])  # the same port: haproxy names it
        nodes[holder] = start_node(run, f"s7-f{holder}", nats, entity, port=port)
    run.stop_all()
    return {"listeners": listeners, "reps": times,
            "median_s": med([t["seconds"] for t in times]), "max_s": max(t["seconds"] for t in times)}


# -- events ------------------------------------------------------------------------------

def part_events(run: Run, subscribers: int = 1000) -> dict[str, Any]:
    nats = start_nats(run)
    entity = [{"path": "ev", "kind": "event", "max_listeners": subscribers}]
    _, one = start_node(run, "s7-e1", nats, entity)
    _, two = start_node(run, "s7-e2", nats, entity)
    half = subscribers // 2
    swarm_a = _swarm(run, "swarm-a", one, half)
    swarm_b = _swarm(run, "swarm-b", two, half)
    wait_count([one, two], "ev", subscribers)
    wait_count([one], "ev", half)
    ev = script(run, "events", one, "ev")
    result: dict[str, Any] = {"subscribers": subscribers}
    result["two_nodes"] = _event_points(run, one, ev, subscribers)
    swarm_b.stop()
    swarm_a2 = _swarm(run, "swarm-c", one, subscribers - half)
    wait_count([one], "ev", subscribers)
    result["one_node"] = _event_points(run, one, ev, subscribers)
    for proc in (swarm_a, swarm_a2):
        proc.stop()
    run.stop_all()
    return result


def _swarm(run: Run, name: str, base: str, count: int) -> Proc:
    spec = {"entities": ["ev"], "per_entity": count, "parallel": 32, "ping_interval": 60}
    proc = run.start(Proc(name, python_argv("bench.swarm", base, json.dumps(spec)),
                          logdir=run.workdir, stdin=True))
    proc.send("connect")
    proc.expect("CONNECTED", 120)
    return proc


def _event_points(run: Run, base: str, ev: Path, subscribers: int) -> dict[str, Any]:
    request = urllib.request.Request(f"{base}/ev", data=b"<x/>", method="POST",
                                     headers={**SOAP, "ServiceBusAuthorization": keys.token(base, "ev")})
    with urllib.request.urlopen(request, timeout=30) as reply:
        delivered = int(reply.headers["Relay-Delivered"])
    reps = [point(run_wrk(f"{base}/ev", ev, 1, run.seconds)) for _ in range(run.reps)]
    return {"delivered": delivered, "expected": subscribers, "median": medians(reps), "reps": reps}


# -- the report --------------------------------------------------------------------------

def render(doc: dict[str, Any]) -> str:
    r, lines = doc["results"], ["# S7: relay nodes sharing one namespace over NATS", ""]
    env = doc["environment"]
    lines.append(f"Machine: {env.get('cpu', '?')}, {os.cpu_count()} cores shared with the load "
                 f"generator and listeners; {doc['settings']}.")
    lines.append("")
    if "latency" in r:
        lat = r["latency"]
        lines += ["## Cross-node latency (1 KiB SOAP POST, c=1, medians of reps)", "",
                  "| target | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms |",
                  "|---|---|---|---|---|---|"]
        for name in ("same_node", *CROSS):
            if name not in lat:  # a run from before the direct links
                continue
            m = lat[name]["median"]
            added = (f"{lat[name]['added_p50_ms']:+.3f} | {lat[name]['added_p99_ms']:+.3f}"
                     if "added_p50_ms" in lat[name] else "- | -")
            lines.append(f"| {name} | {m['rps']:.0f} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {added} |")
        lines.append("")
    if "workers" in r:
        w = r["workers"]
        lines += ["## --workers 2 against one process (S1's load: 1 KiB SOAP POST, c=32)", "",
                  "| listeners | relay | req/s | p50 ms | p99 ms | relay CPU us/req: all processes | busiest |",
                  "|---|---|---|---|---|---|---|"]
        for listeners in ("listeners_1", "listeners_3"):
            for name in ("workers_1", "workers_2"):
                m = w[listeners][name]["median"]
                lines.append(f"| {listeners[-1]} | {name} | {m['rps']:.0f} | {m['p50_ms']:.2f} "
                             f"| {m['p99_ms']:.2f} | {m.get('cpu_us', float('nan')):.0f} "
                             f"| {m.get('cpu_us_busiest', float('nan')):.0f} |")
        ratio = (f"Ratio (2 / 1): **{w['listeners_1']['ratio_rps']:.2f}x** with S1's one listener "
                 f"(half the calls cross workers), **{w['listeners_3']['ratio_rps']:.2f}x** with a "
                 f"listener on each worker; {w['cores']} cores shared with wrk and the listeners.")
        lines += ["", ratio, ""]
        if "ratio_own_cores" in w["listeners_1"]:
            lines += [(f"From the CPU per request, with each relay process on a core of its own and wrk "
                      f"and the listeners elsewhere (one process: 1 / its CPU per request; two workers: "
                      f"2 cores / their processes' CPU, and no more than their busiest allows): "
                      f"**{w['listeners_1']['ratio_own_cores']:.2f}x** with one listener, "
                      f"**{w['listeners_3']['ratio_own_cores']:.2f}x** with a listener on each worker."),
                      ""]
    if "failover" in r:
        f = r["failover"]
        lines += ["## Failover after SIGKILL of the node holding the listeners", "",
                  f"{f['listeners']} SDK listeners through haproxy: all online on the other nodes "
                  f"after **{f['median_s']:.2f} s** (median), {f['max_s']:.2f} s at most; reps: "
                  + ", ".join(f"{t['seconds']:.2f} s ({t['held']} held)" for t in f["reps"]), ""]
    if "events" in r:
        e = r["events"]
        lines += [f"## Event fan-out to {e['subscribers']} subscribers (c=1)", "",
                  "| subscribers on | delivered | req/s | p50 ms | p99 ms |", "|---|---|---|---|---|"]
        for name in ("two_nodes", "one_node"):
            m = e[name]["median"]
            lines.append(f"| {name} | {e[name]['delivered']} | {m['rps']:.1f} | {m['p50_ms']:.1f} "
                         f"| {m['p99_ms']:.1f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s7_cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    runners = {"latency": part_latency, "workers": part_workers, "failover": part_failover,
               "events": part_events}
    results: dict[str, Any] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soap-relay-s7-") as tmp:
        run = Run(Path(tmp), seconds=args.seconds, reps=args.reps)
        try:
            for part in chosen:
                run.log(f"S7 {part}")
                results[part] = runners[part](run)
        finally:
            run.stop_all()
    doc = {"environment": environment(), "settings": {"seconds": args.seconds, "reps": args.reps,
                                                      "parts": chosen},
           "elapsed_s": round(time.monotonic() - started, 1), "results": results}
    table = render(doc)
    print(table)
    stem = "s7" if set(chosen) == set(PARTS) else "s7-partial"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(table)
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
