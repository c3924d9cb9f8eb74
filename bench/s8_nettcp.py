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

Besides calls/s and latency, each point records the CPU per call of every process on the
path (the zeep clients, the relay, the service's process), from ``/proc/PID/stat``: on a
shared, loaded machine the wall-clock figures swing by tens of percent between
repetitions, the CPU a call costs much less.
"""

from __future__ import annotations

from typing import Any

from bench.procs import Proc, free_port, python_argv
from bench.s2_soap import CONCURRENCY, measure, start_clients, summarize
from bench.stack import Run

__all__ = ["ENTITIES", "run_nettcp"]

ENTITIES = [{"path": "s8-basic"}, {"path": "s8-ws2007"}, {"path": "s8-tcp"}, {"path": "s8-tcp-inline"},
            {"path": "s8-hybrid"}]


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
    points: dict[str, dict[int, list[dict[str, float]]]] = {p: {c: [] for c in CONCURRENCY} for p in paths}
    for rep in range(run.reps):
        for conns in CONCURRENCY:
            for name, clients in paths.items():
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
    return summarize(points)
