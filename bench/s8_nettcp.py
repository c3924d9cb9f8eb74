"""S8 NetTcp: zeep calls on one persistent session against one HTTP request per call.

The same Spyne payroll ``GetSalary(7)`` six ways, each repetition running every path at
c=1 and c=8 in turn (``bench.zeep_load``: two processes of four threads, one zeep client
per thread; a NetTcp client holds one session):

- ``basichttp``: zeep -> relay -> BasicHttpRelayBinding listener (SOAP 1.1), an HTTP
  request and a rendezvous per call;
- ``ws2007``: the same over WS2007HttpRelayBinding (SOAP 1.2 + WS-Addressing, as NetTcp's
  envelopes): HTTP per call, the envelope cost of NetTcp;
- ``nettcp``: zeep -> relay -> NetTcpRelayBinding host (SOAP 1.2), calls on the session's
  relayed WebSocket;
- ``nettcp_inline``: the same with ``NetTcpRelayBinding(inline_calls=True)`` on the host
  (GetSalary never blocks: calls run in the listener's loop, no worker thread);
- ``hybrid``: the same NetTcp session moved onto its direct connection (127.0.0.1);
- ``norelay``: zeep -> waitress -> the SOAP 1.2 service, no relay at all.

Within a repetition the paths run one after the other at c=1, then at c=8, BasicHttp next
to NetTcp and NetTcp inline, the order reversed every other repetition (``ORDER``): a
load swing on the shared machine then lands on the paths compared rather than on one of
them, and each repetition's ratios (``ratios``: NetTcp / BasicHttp calls/s and so on, with
their median beside the ratio of the medians) compare runs a few seconds apart.

Besides calls/s and latency, each point records the CPU per call of every process on the
path (the zeep clients, the relay, the service's process), from ``/proc/PID/stat``: on a
shared, loaded machine the wall-clock figures swing by tens of percent between
repetitions, the CPU a call costs much less.
"""

from __future__ import annotations

import math
from typing import Any

from bench.procs import Proc, free_port, python_argv
from bench.s2_soap import CONCURRENCY, measure, start_clients, summarize
from bench.stack import Run, med

__all__ = ["ENTITIES", "ORDER", "RATIOS", "rep_ratios", "run_nettcp"]

ENTITIES = [{"path": "s8-basic"}, {"path": "s8-ws2007"}, {"path": "s8-tcp"}, {"path": "s8-tcp-inline"},
            {"path": "s8-hybrid"}]


#: The paths in a repetition's order (reversed every other repetition): the ones compared
#: side by side first.
ORDER = ("basichttp", "nettcp", "nettcp_inline", "ws2007", "hybrid", "norelay")

#: Ratios taken within each repetition: name -> (path, over path, key, concurrency).
RATIOS: dict[str, tuple[str, str, str, int]] = {
    "tcp_basic_c1": ("nettcp", "basichttp", "calls_s", 1),
    "inline_basic_c1": ("nettcp_inline", "basichttp", "calls_s", 1),
    "tcp_basic_c8": ("nettcp", "basichttp", "calls_s", 8),
    "cpu_basic_tcp_c1": ("basichttp", "nettcp", "total_cpu_us_per_call", 1),
    "p50_hybrid_norelay_c1": ("hybrid", "norelay", "p50_ms", 1),
}


def rep_ratios(points: dict[str, dict[int, list[dict[str, float]]]]) -> dict[str, dict[str, Any]]:
    """Each of ``RATIOS`` per repetition (None where a point has no figure) and the median
    of those that have one."""
    out: dict[str, dict[str, Any]] = {}
    for name, (a, b, key, conns) in RATIOS.items():
        pairs = zip(points.get(a, {}).get(conns, []), points.get(b, {}).get(conns, []), strict=False)
        reps = [p[key] / q[key] if _figure(p, key) and _figure(q, key) else None for p, q in pairs]
        known = [r for r in reps if r is not None]
        out[name] = {"reps": reps, "median": med(known) if known else None}
    return out


def _figure(point: dict[str, float], key: str) -> bool:
    """Whether ``point`` has a usable, non-zero ``key`` (not missing, zero or NaN)."""
    value = point.get(key)
    return bool(value) and not math.isnan(value)  # type: ignore[arg-type]


def _servers(run: Run, relay_url: str) -> tuple[int, dict[str, Proc]]:
    """The four services: waitress's port, and each path's service process."""
    port = free_port()
    servers = {"norelay": run.start(Proc("s8-norelay", python_argv("bench.payroll_servers", "direct12",
                                                                   str(port)), logdir=run.workdir))}
    for path, mode, entity in (("basichttp", "relay", "s8-basic"), ("ws2007", "ws2007", "s8-ws2007"),
                               ("nettcp", "nettcp", "s8-tcp"),
                               ("nettcp_inline", "nettcp-inline", "s8-tcp-inline"),
                               ("hybrid", "hybrid", "s8-hybrid")):
        servers[path] = run.start(Proc(f"s8-host-{mode}", python_argv("bench.payroll_servers", mode,
                                                                      relay_url, entity), logdir=run.workdir))
    return port, servers


def _cpu(procs: list[Proc]) -> float:
    return sum(proc.cpu_seconds() for proc in procs)


def run_nettcp(run: Run, relay: Proc, relay_url: str) -> dict[str, Any]:
    port, servers = _servers(run, relay_url)
    paths = {
        "basichttp": start_clients(run, "s8-basic", f"{relay_url}/s8-basic?wsdl", True),
        "ws2007": start_clients(run, "s8-ws2007", f"{relay_url}/s8-ws2007?wsdl", "ws2007"),
        "nettcp": start_clients(run, "s8-tcp", f"{relay_url}/s8-tcp?wsdl", "nettcp"),
        "nettcp_inline": start_clients(run, "s8-tcp-inline", f"{relay_url}/s8-tcp-inline?wsdl", "nettcp"),
        "hybrid": start_clients(run, "s8-hybrid", f"{relay_url}/s8-hybrid?wsdl", "hybrid"),
        "norelay": start_clients(run, "s8-norelay", f"http://127.0.0.1:{port}/?wsdl", False),
    }
    assert set(paths) == set(ORDER)
    points: dict[str, dict[int, list[dict[str, float]]]] = {p: {c: [] for c in CONCURRENCY} for p in ORDER}
    for rep in range(run.reps):
        order = ORDER if rep % 2 == 0 else ORDER[::-1]
        for conns in CONCURRENCY:
            for name in order:
                clients = paths[name]
                before = relay.cpu_seconds(), _cpu([servers[name]]), _cpu(clients)
                point = measure(clients, conns, run.seconds)
                if point["calls"]:
                    after = relay.cpu_seconds(), _cpu([servers[name]]), _cpu(clients)
                    relay_us, service_us, client_us = ((a - b) / point["calls"] * 1e6
                                                       for a, b in zip(after, before, strict=True))
                    point["relay_cpu_us_per_call"] = relay_us
                    point["service_cpu_us_per_call"] = service_us
                    point["client_cpu_us_per_call"] = client_us
                    point["total_cpu_us_per_call"] = relay_us + service_us + client_us
                points[name][conns].append(point)
                run.log(f"S8 rep {rep + 1} c={conns} {name}: {point['calls_s']:,.0f} calls/s "
                        f"p50 {point['p50_ms']:.2f} ms" + (f", {point['errors']} errors" if point["errors"] else ""))
    summary = summarize(points)
    summary["ratios"] = rep_ratios(points)
    for name, ratio in summary["ratios"].items():
        run.log(f"S8 {name} per repetition: "
                + ", ".join("-" if r is None else f"{r:.2f}" for r in ratio["reps"])
                + ("" if ratio["median"] is None else f" (median {ratio['median']:.2f})"))
    return summary
