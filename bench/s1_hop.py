"""S1 relay hop and S3 listener implementations, measured in one interleaved loop.

Targets, all answering a fixed 1 KiB SOAP POST with the same bytes:

- ``direct``: wrk -> aiohttp echo backend;
- ``nginx``: wrk -> nginx (keep-alive upstream) -> the same backend;
- ``relay``: wrk -> soap-relay -> our Python listener (an async Handler on
  RelayServiceHost, one control channel) -- S1 (c) and S3's "ours";
- ``relay_hyco``: wrk -> soap-relay -> Microsoft's hyco-https listener (S3).

Each repetition runs every target at c=1 and c=32 in turn, so drift on a
shared machine hits them alike; the relay's CPU time comes from its own
``/proc/PID/stat`` around each wrk run.
"""

from __future__ import annotations

from typing import Any

from bench import keys
from bench.nginx import start_nginx
from bench.procs import ROOT, Proc, free_port, python_argv
from bench.stack import Run, med
from bench.wrk import WrkResult, run_wrk, write_script

__all__ = ["CONCURRENCY", "run_hop"]

CONCURRENCY = (1, 32)
_SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:soap-relay:bench/Echo"'}


def _point(result: WrkResult, relay_cpu: float | None, backend_cpu: float | None = None,
           listener_cpu: float | None = None) -> dict[str, float]:
    point = {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "requests": result.requests,
        "errors": result.errors,
    }
    if relay_cpu is not None and result.requests:
        point["relay_cpu_us_per_req"] = relay_cpu / result.requests * 1e6
    if backend_cpu is not None and result.requests:
        point["backend_cpu_us_per_req"] = backend_cpu / result.requests * 1e6
    if listener_cpu is not None and result.requests:
        point["listener_cpu_us_per_req"] = listener_cpu / result.requests * 1e6
    return point


def _summary(points: list[dict[str, float]]) -> dict[str, Any]:
    keys_ = points[0].keys()
    return {"median": {k: med([p[k] for p in points]) for k in keys_}, "reps": points}


def run_hop(
    run: Run, relay: Proc, relay_url: str, with_hyco: bool,
    others: dict[str, tuple[Proc, str]] | None = None,
) -> dict[str, Any]:
    """Run S1 (and S3 when ``with_hyco``) against the started relay; ``others``: more
    relays (target name -> process and URL, names starting ``relay_``), each with a
    Python listener of its own, measured in the same interleaved loop (``--observe``)."""
    backend_port, nginx_port = free_port(), free_port()
    backend = run.start(
        Proc("echo-backend", python_argv("bench.echo_backend", str(backend_port)), logdir=run.workdir)
    )
    run.start(start_nginx(run.workdir, nginx_port, backend_port))
    listeners = {"relay": run.start(
        Proc("py-listener", python_argv("bench.echo_listener", relay_url, "echo"), logdir=run.workdir))}
    targets = {
        "direct": f"http://127.0.0.1:{backend_port}/echo",
        "nginx": f"http://127.0.0.1:{nginx_port}/echo",
        "relay": f"{relay_url}/echo",
    }
    if with_hyco:
        relay_hostport = relay_url.split("://", 1)[1]
        listeners["relay_hyco"] = run.start(Proc(
            "hyco-listener",
            ["node", str(ROOT / "bench" / "node" / "hyco_echo_listener.js"), relay_hostport, "hyco",
             keys.KEY_NAME, keys.KEY],
            logdir=run.workdir,
        ))
        targets["relay_hyco"] = f"{relay_url}/hyco"
    relays = {name: relay for name in targets}
    for name, (proc, url) in (others or {}).items():
        if name != "relay_floor":  # bench.floor_relay brings its own listener
            run.start(Proc(f"py-listener-{name}", python_argv("bench.echo_listener", url, "echo"),
                           logdir=run.workdir))
        targets[name], relays[name] = f"{url}/echo", proc
    plain = write_script(run.workdir / "soap1k.lua", _SOAP_HEADERS)
    signed = write_script(
        run.workdir / "soap1k-token.lua",
        {**_SOAP_HEADERS, "ServiceBusAuthorization": keys.token(relay_url)},
    )
    scripts = {name: (signed if name.startswith("relay") else plain) for name in targets}

    for name, url in targets.items():  # warm-up: connections, caches, JIT-less but lazy imports
        run_wrk(url, scripts[name], 8, 1)
    points: dict[str, dict[int, list[dict[str, float]]]] = {n: {c: [] for c in CONCURRENCY} for n in targets}
    for rep in range(run.reps):
        for conns in CONCURRENCY:
            for name, url in targets.items():
                server = relays[name]
                listener = listeners.get(name)  # S3's two listeners: their CPU too
                before, backend_before = server.cpu_seconds(), backend.cpu_seconds()
                listener_before = listener.cpu_seconds() if listener else 0.0
                result = run_wrk(url, scripts[name], conns, run.seconds)
                cpu = server.cpu_seconds() - before if name.startswith("relay") else None
                # The reference: what one aiohttp server spends per request on its own.
                backend_cpu = backend.cpu_seconds() - backend_before if name == "direct" else None
                listener_cpu = listener.cpu_seconds() - listener_before if listener else None
                points[name][conns].append(_point(result, cpu, backend_cpu, listener_cpu))
                run.log(f"S1 rep {rep + 1} c={conns} {name}: {result.rps:,.0f} req/s "
                        f"p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms"
                        + (f", relay {cpu / max(result.requests, 1) * 1e6:.0f} us/req" if cpu else "")
                        + (f", listener {listener_cpu / max(result.requests, 1) * 1e6:.0f} us/req"
                           if listener_cpu else "")
                        + (f", {result.errors} errors" if result.errors else ""))
    return {name: {str(c): _summary(points[name][c]) for c in CONCURRENCY} for name in targets}
