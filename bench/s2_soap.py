"""S2 end-to-end SOAP: zeep -> relay -> Spyne payroll vs zeep -> waitress -> the same app.

The zeep clients (``bench.zeep_load``) live in two processes of four threads per
path; c=1 runs one thread, c=8 runs four threads in each process.  Each
repetition runs both paths at both concurrencies in turn.
"""

from __future__ import annotations

import json
from statistics import median
from typing import Any

from bench.procs import Proc, free_port, python_argv
from bench.stack import Run, med

__all__ = ["CONCURRENCY", "measure", "run_soap", "start_clients"]

CONCURRENCY = (1, 8)
_PROCS, _THREADS = 2, 4


def _clients(run: Run, name: str, wsdl: str, relayed: bool | str) -> list[Proc]:
    """The load processes of one path; ``relayed``: True (BasicHttp), a zeep_load mode, or False."""
    extra = ["relay"] if relayed is True else [relayed] if relayed else []
    return [
        run.start(Proc(f"zeep-{name}-{i}", python_argv("bench.zeep_load", wsdl, str(_THREADS), *extra),
                       logdir=run.workdir, stdin=True, timeout=120))
        for i in range(_PROCS)
    ]


def _measure(clients: list[Proc], conns: int, seconds: float) -> dict[str, float]:
    busy = clients[:1] if conns == 1 else clients
    per_proc = 1 if conns == 1 else conns // len(clients)
    for proc in busy:
        proc.send(f"run {seconds:g} {per_proc}")
    results = [json.loads(proc.expect("RESULT", seconds + 60)) for proc in busy]
    latencies = sorted(x for r in results for x in r["latency_us"])
    calls = sum(r["calls"] for r in results)
    return {
        "calls_s": calls / seconds,
        "p50_ms": median(latencies) / 1000 if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99)] / 1000 if latencies else float("nan"),
        "calls": calls,
        "errors": sum(r["errors"] for r in results),
    }


def run_soap(run: Run, relay: Proc, relay_url: str) -> dict[str, Any]:
    port = free_port()
    run.start(Proc("payroll-direct", python_argv("bench.payroll_servers", "direct", str(port)), logdir=run.workdir))
    run.start(Proc("payroll-listener", python_argv("bench.payroll_servers", "relay", relay_url, "payroll"),
                   logdir=run.workdir))
    paths = {
        "direct": _clients(run, "direct", f"http://127.0.0.1:{port}/?wsdl", relayed=False),
        "relay": _clients(run, "relay", f"{relay_url}/payroll?wsdl", relayed=True),
    }
    points: dict[str, dict[int, list[dict[str, float]]]] = {p: {c: [] for c in CONCURRENCY} for p in paths}
    for rep in range(run.reps):
        for conns in CONCURRENCY:
            for name, clients in paths.items():
                before = relay.cpu_seconds()
                point = _measure(clients, conns, run.seconds)
                if name == "relay" and point["calls"]:
                    point["relay_cpu_us_per_call"] = (relay.cpu_seconds() - before) / point["calls"] * 1e6
                points[name][conns].append(point)
                run.log(f"S2 rep {rep + 1} c={conns} {name}: {point['calls_s']:,.0f} calls/s "
                        f"p50 {point['p50_ms']:.2f} ms" + (f", {point['errors']} errors" if point["errors"] else ""))
    return summarize(points)


def summarize(points: dict[str, dict[int, list[dict[str, float]]]]) -> dict[str, Any]:
    """Each path's points by concurrency: the repetitions and their medians, key by key."""
    return {
        name: {
            str(c): {"median": {k: med([p[k] for p in reps]) for k in reps[0]}, "reps": reps}
            for c, reps in by_c.items()
        }
        for name, by_c in points.items()
    }


#: Shared with S8 (bench.s8_nettcp).
start_clients, measure = _clients, _measure
