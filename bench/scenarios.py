"""Which processes each scenario needs, started in order, stopped after each group."""

from __future__ import annotations

from typing import Any

from bench.procs import Proc, python_argv
from bench.s1_hop import run_hop
from bench.s2_soap import run_soap
from bench.s4_s5_swarms import run_fanout, run_idle
from bench.s6_bodies import ENTITY_MAX, run_bodies
from bench.s8_nettcp import ENTITIES as S8_ENTITIES
from bench.s8_nettcp import run_nettcp
from bench.stack import Run, start_relay

__all__ = ["NOTES", "run_scenarios"]

#: How the scenarios were run, printed under the table.
NOTES = [
    ("Every server, listener and load generator is its own process on 127.0.0.1; the relay's CPU"
    " is utime+stime from /proc/PID/stat around each load point, divided by the requests served."),
    ("S1 (c) and S3's Python listener: a request_handler on the SDK's HybridConnectionListener (hc.asyncio, one control channel);"
    " the benchmark's own processes (backend, listeners, clients) run on uvloop when installed."),
    "nginx runs one worker process (the relay is one process), with keepalive 64 to the upstream.",
]

#: The main relay's entities: S1/S3 echo, S6 big bodies, S2 payroll.
_MAIN_ENTITIES = [
    {"path": "echo"},
    {"path": "hyco"},
    {"path": "big", "max_message_size": ENTITY_MAX},
    {"path": "payroll"},
    *S8_ENTITIES,
]


def _floor(run: Run) -> dict[str, tuple[Proc, str]]:
    """S1's floor (``bench.floor_relay``): the relay's socket work and nothing else."""
    proc = run.start(Proc("floor-relay", python_argv("bench.floor_relay", "relay"), logdir=run.workdir))
    url, _, lport = proc.ready_line.partition(" ")  # (READY stripped)
    run.start(Proc("floor-listener", python_argv("bench.floor_relay", "listener", lport), logdir=run.workdir))
    return {"relay_floor": (proc, url)}


def run_scenarios(
    run: Run, chosen: list[str], *, observe: bool = False, floor: bool = False
) -> dict[str, Any]:
    """``observe``: S1 also runs three more relays alike (one entity, their own listener),
    with metrics and inspector on, off, and on with body capture.  ``floor``: S1 also
    runs ``bench.floor_relay``, a relay with no Python logic."""
    results: dict[str, Any] = {}
    if {"s1", "s3", "s6", "s2", "s8"} & set(chosen):
        relay, url = start_relay(run, "relay-main", {"entities": _MAIN_ENTITIES})
        others = {
            f"relay_obs_{mode}": start_relay(run, f"relay-obs-{mode}",
                                             {"entities": [{"path": "echo"}], "observe": mode})
            for mode in ("on", "off", "capture")
        } if observe and "s1" in chosen else {}
        if floor and "s1" in chosen:
            others.update(_floor(run))
        if "s1" in chosen or "s3" in chosen:
            results["s1"] = run_hop(run, relay, url, with_hyco="s3" in chosen, others=others)
        if "s2" in chosen:
            results["s2"] = run_soap(run, relay, url)
        if "s6" in chosen:
            results["s6"] = run_bodies(run, relay, url)
        if "s8" in chosen:
            results["s8"] = run_nettcp(run, relay, url)
        run.stop_all()
    if "s5" in chosen:
        results["s5"] = run_fanout(run)
    if "s4" in chosen:
        results["s4"] = run_idle(run)
    return results
