"""S7's cross-node latency, two source trees alternated in one run (A B A B...).

``python -m bench.s7_ab OLD_TREE NEW_TREE [--seconds 3] [--rounds 3]``: for each
tree a set of three meshed nats-servers (its own: on shared ones each tree's via
node would ask either tree's home node), a listener's node ("home", one
``bench.echo_listener``) and a node asking across the cluster ("via",
``small_requests = "nats"``), each process run from its tree (``PYTHONPATH``).  A
tree given as ``PATH:nats`` runs with ``direct = false`` (no direct node-to-node
link; trees before it ignore the key).  Per round and tree: wrk c=1, 1 KiB SOAP
POST, to home (same node) and to via (cross node); the CPU per call of each node
process and of the NATS servers together over each point (``/proc``: utime+stime
over requests), their context switches per call (all threads: how often each was
woken), the load-independent measures, and the asks the via node sent over a
direct link (its ``/$health``).  Prints one JSON line per point.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import Proc, python_argv
from bench.s7_cluster import _wait_routed, health, script, start_nats, wait_count
from bench.stack import Run
from bench.wrk import run_wrk


def _node(run: Run, tree: Path, name: str, nats: list[str], direct: bool) -> tuple[Proc, str]:
    from bench.procs import free_port

    port = free_port()
    cluster: dict[str, Any] = {"nats": nats, "node_url": f"http://127.0.0.1:{port}", "node_name": name,
                               "small_requests": "nats"}
    if not direct:
        cluster["direct"] = False
    spec = {"port": port, "entities": [{"path": "echo"}], "cluster": cluster}
    proc = run.start(Proc(name, python_argv("bench.cluster_node", json.dumps(spec)), logdir=run.workdir,
                          env={"PYTHONPATH": str(tree)}, cwd=tree))
    return proc, proc.ready_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("trees", nargs=2, help="PATH, or PATH:nats for direct = false")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    run = Run(Path(tempfile.mkdtemp(prefix="s7ab-")), seconds=args.seconds)
    try:
        sides: dict[str, dict[str, Any]] = {}
        for label, given in zip(("old", "new"), args.trees, strict=True):
            path, _, mode = given.partition(":")
            tree, direct = Path(path), mode != "nats"
            # NATS of its own per tree: on one NATS both trees' home nodes would be in
            # the entity's queue group, and each via node would ask either of them
            first = len(run.procs)
            nats = start_nats(run, int(os.environ.get("S7_NATS", "3")))
            nats_procs = run.procs[first:]
            home_proc, home = _node(run, tree, f"{label}-home", nats, direct)
            via_proc, via = _node(run, tree, f"{label}-via", nats, direct)
            run.start(Proc(f"{label}-listener", python_argv("bench.echo_listener", home, "echo"),
                           logdir=run.workdir, env={"PYTHONPATH": str(tree)}, cwd=tree))
            wait_count([home], "echo", 1)
            _wait_routed(via)
            scripts = {"same": script(run, f"{label}-same", home, "echo"),
                       "cross": script(run, f"{label}-cross", via, "echo")}
            sides[label] = {"home": (home_proc, home), "via": (via_proc, via), "scripts": scripts,
                            "nats": nats_procs}
            for where, base in (("same", home), ("cross", via)):
                run_wrk(f"{base}/echo", scripts[where], 1, 1)  # warm up
        for rnd in range(args.rounds):
            for label, side in sides.items():
                out: dict[str, Any] = {"round": rnd + 1, "tree": label, "load": os.getloadavg()[0]}
                for where, key in (("same", "home"), ("cross", "via")):
                    base = side[key][1]
                    procs = [side["home"][0], side["via"][0], *side["nats"]]
                    cpu = [p.cpu_seconds() for p in procs]
                    switches = [p.switches() for p in procs]
                    asks = _direct_asks(side["via"][1])
                    result = run_wrk(f"{base}/echo", side["scripts"][where], 1, args.seconds)
                    spent = [p.cpu_seconds() - c for p, c in zip(procs, cpu, strict=True)]
                    woken = [p.switches() - c for p, c in zip(procs, switches, strict=True)]
                    calls = max(result.requests, 1)
                    out[where] = {"rps": round(result.rps), "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
                                  "errors": result.errors,
                                  "cpu_us_home": round(spent[0] / calls * 1e6),
                                  "cpu_us_via": round(spent[1] / calls * 1e6),
                                  "cpu_us_nats": round(sum(spent[2:]) / calls * 1e6),
                                  "cs_home": round(woken[0] / calls, 2), "cs_via": round(woken[1] / calls, 2),
                                  "cs_nats": round(sum(woken[2:]) / calls, 2),
                                  "direct_share": round((_direct_asks(side["via"][1]) - asks) / calls, 2)}
                out["added_p50_ms"] = round(out["cross"]["p50_ms"] - out["same"]["p50_ms"], 3)
                out["added_p99_ms"] = round(out["cross"]["p99_ms"] - out["same"]["p99_ms"], 3)
                print(json.dumps(out), flush=True)
    finally:
        run.stop_all()


def _direct_asks(via: str) -> int:
    """Asks the via node sent over a direct link so far (0 for a tree without them)."""
    view = health(via).get("direct")
    return int(view["asks"]) if isinstance(view, dict) else 0


if __name__ == "__main__":
    main()
