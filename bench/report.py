"""The results table (Markdown), the targets of this round, and the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from bench.procs import ROOT

__all__ = ["environment", "render", "verdicts"]

_PACKAGES = ("aiohttp", "websockets", "uvloop", "zeep", "spyne", "waitress", "lxml", "requests")


def _tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "missing"
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        return platform.processor() or "?"


def _hyco_version() -> str:
    package = ROOT / "interop_tests" / "node" / "node_modules" / "hyco-https" / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "missing"


def _git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "relay", "bindings"], cwd=ROOT,
                           capture_output=True, text=True, check=False).stdout.strip()
    return done.stdout.strip() + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": _git_commit(),
        "packages": versions,
        "tools": {
            "nginx": _tool_version(["nginx", "-v"]).rpartition("/")[2],
            "wrk": _tool_version(["wrk", "-v"]).split(" [")[0].removeprefix("wrk "),
            "curl": _tool_version(["curl", "--version"]).split(" (")[0].removeprefix("curl "),
            "node": _tool_version(["node", "--version"]),
            "hyco-https": _hyco_version(),
        },
    }


# -- targets -------------------------------------------------------------------------------


def _get(results: dict[str, Any], *path: str) -> float | None:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _s1(results: dict[str, Any], target: str, c: str, key: str) -> float | None:
    return _get(results, "s1", target, c, "median", key)


def _s8_ratio(results: dict[str, Any], a: str, b: str, c: str) -> float | None:
    return _ratio(_get(results, "s8", a, c, "median", "calls_s"), _get(results, "s8", b, c, "median", "calls_s"))


def derived(results: dict[str, Any]) -> dict[str, float | None]:
    """The figures the targets are about, computed from the medians."""
    s6 = results.get("s6", {})
    big = [v for k, v in s6.items() if k.endswith("_100MiB")]
    p50 = {t: _s1(results, t, "1", "p50_ms") for t in ("direct", "relay")}
    return {
        "s1_relay_direct_c32": _ratio(_s1(results, "relay", "32", "rps"), _s1(results, "direct", "32", "rps")),
        "s1_relay_nginx_c32": _ratio(_s1(results, "relay", "32", "rps"), _s1(results, "nginx", "32", "rps")),
        "s1_nginx_direct_c32": _ratio(_s1(results, "nginx", "32", "rps"), _s1(results, "direct", "32", "rps")),
        "s1_relay_direct_c1": _ratio(_s1(results, "relay", "1", "rps"), _s1(results, "direct", "1", "rps")),
        "s1_relay_nginx_c1": _ratio(_s1(results, "relay", "1", "rps"), _s1(results, "nginx", "1", "rps")),
        "s1_cpu_us_c32": _s1(results, "relay", "32", "relay_cpu_us_per_req"),
        "s1_cpu_us_c1": _s1(results, "relay", "1", "relay_cpu_us_per_req"),
        "s1_cpu_ratio_c32": _ratio(_s1(results, "relay", "32", "relay_cpu_us_per_req"),
                                   _s1(results, "direct", "32", "backend_cpu_us_per_req")),
        "s1_added_ms_c1": (p50["relay"] - p50["direct"])
        if p50["relay"] is not None and p50["direct"] is not None else None,
        "s2_ratio_c1": _ratio(_get(results, "s2", "relay", "1", "median", "calls_s"),
                              _get(results, "s2", "direct", "1", "median", "calls_s")),
        "s2_ratio_c8": _ratio(_get(results, "s2", "relay", "8", "median", "calls_s"),
                              _get(results, "s2", "direct", "8", "median", "calls_s")),
        "s3_ratio_c1": _ratio(_s1(results, "relay", "1", "rps"), _s1(results, "relay_hyco", "1", "rps")),
        "s3_ratio_c32": _ratio(_s1(results, "relay", "32", "rps"), _s1(results, "relay_hyco", "32", "rps")),
        "s8_tcp_basic_c1": _s8_ratio(results, "nettcp", "basichttp", "1"),
        "s8_inline_basic_c1": _s8_ratio(results, "nettcp_inline", "basichttp", "1"),
        "s8_tcp_basic_c8": _s8_ratio(results, "nettcp", "basichttp", "8"),
        "s8_cpu_basic_tcp_c1": _ratio(_get(results, "s8", "basichttp", "1", "median", "total_cpu_us_per_call"),
                                      _get(results, "s8", "nettcp", "1", "median", "total_cpu_us_per_call")),
        "s8_tcp_basic_c1_reps": _get(results, "s8", "ratios", "tcp_basic_c1", "median"),
        "s8_inline_basic_c1_reps": _get(results, "s8", "ratios", "inline_basic_c1", "median"),
        "s8_cpu_basic_tcp_c1_reps": _get(results, "s8", "ratios", "cpu_basic_tcp_c1", "median"),
        "s8_norelay_hybrid_p50": _ratio(_get(results, "s8", "hybrid", "1", "median", "p50_ms"),
                                        _get(results, "s8", "norelay", "1", "median", "p50_ms")),
        "s4_kib_per_listener": _get(results, "s4", "median", "rss_kib_per_listener"),
        "s5_p99_1000": _get(results, "s5", "1000", "median", "p99_ms"),
        "s6_min_mb_s_100": min(v["median"]["mb_s"] for v in big) if big else None,
        "s6_max_rss_mib": max(v["max_rss_growth_mib"] for v in s6.values()) if s6 else None,
    }


_TARGETS: list[tuple[str, str, str, Callable[[float], bool], str]] = [
    ("S1", "relay/direct req/s at c=32", "s1_relay_direct_c32", lambda v: v >= 0.75, ">= 0.75x"),
    ("S1", "relay/nginx req/s at c=32", "s1_relay_nginx_c32", lambda v: v >= 0.45, ">= 0.45x"),
    ("S1", "relay CPU per request / aiohttp echo's (c=32)", "s1_cpu_ratio_c32", lambda v: v <= 1.1, "<= 1.10x"),
    ("S1", "latency the relay adds at c=1 (p50)", "s1_added_ms_c1", lambda v: v <= 0.25, "<= 0.25 ms"),
    ("S2", "relay e2e / direct e2e calls/s, c=1", "s2_ratio_c1", lambda v: v >= 0.9, ">= 0.90x"),
    ("S2", "relay e2e / direct e2e calls/s, c=8", "s2_ratio_c8", lambda v: v >= 0.9, ">= 0.90x"),
    ("S3", "our listener / hyco-https req/s, c=1", "s3_ratio_c1", lambda v: v >= 1.2, ">= 1.20x"),
    ("S3", "our listener / hyco-https req/s, c=32", "s3_ratio_c32", lambda v: v >= 1.2, ">= 1.20x"),
    ("S8", "NetTcp / BasicHttp zeep calls/s, c=1", "s8_tcp_basic_c1", lambda v: v >= 2.0, ">= 2.00x"),
    ("S8", "NetTcp / BasicHttp zeep calls/s, c=1, median of per-repetition ratios", "s8_tcp_basic_c1_reps",
     lambda v: v >= 2.0, ">= 2.00x"),
    ("S8", "NetTcp with inline_calls / BasicHttp zeep calls/s, c=1", "s8_inline_basic_c1",
     lambda v: v >= 2.0, ">= 2.00x"),
    ("S8", "NetTcp with inline_calls / BasicHttp zeep calls/s, c=1, median of per-repetition ratios",
     "s8_inline_basic_c1_reps", lambda v: v >= 2.0, ">= 2.00x"),
    ("S8", "BasicHttp / NetTcp CPU per call, all processes, c=1", "s8_cpu_basic_tcp_c1",
     lambda v: v >= 2.0, ">= 2.00x"),
    ("S8", "BasicHttp / NetTcp CPU per call, all processes, c=1, median of per-repetition ratios",
     "s8_cpu_basic_tcp_c1_reps", lambda v: v >= 2.0, ">= 2.00x"),
    ("S8", "Hybrid direct p50 / no relay p50, c=1", "s8_norelay_hybrid_p50", lambda v: v <= 1.2, "<= 1.20x"),
    ("S4", "relay memory per idle listener", "s4_kib_per_listener", lambda v: v <= 20, "<= 20 KiB"),
    ("S5", "1,000 subscribers, p99 until all acked", "s5_p99_1000", lambda v: v <= 60, "<= 60 ms"),
    ("S6", "100 MiB body, slower direction", "s6_min_mb_s_100", lambda v: v >= 100, ">= 100 MB/s"),
    ("S6", "relay peak RSS growth, any body", "s6_max_rss_mib", lambda v: v <= 32, "<= 32 MiB"),
]

_UNITS = {"s1_cpu_us_c32": " us", "s1_added_ms_c1": " ms", "s4_kib_per_listener": " KiB",
          "s5_p99_1000": " ms", "s6_min_mb_s_100": " MB/s", "s6_max_rss_mib": " MiB"}


def _fmt(key: str, value: float) -> str:
    unit = _UNITS.get(key)
    if unit is None:
        return f"{value:.2f}x"
    return f"{value:.2f}{unit}" if abs(value) < 10 else f"{value:,.0f}{unit}"


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    figures = derived(results)
    out = []
    for scenario, what, key, ok, goal in _TARGETS:
        value = figures.get(key)
        if value is None:
            continue
        out.append({"scenario": scenario, "what": what, "key": key, "goal": goal, "value": value,
                    "shown": _fmt(key, value), "met": ok(value)})
    return out


# -- the table -----------------------------------------------------------------------------


def _n(value: Any, digits: int = 2) -> str:
    if value is None or not isinstance(value, int | float):
        return "-"
    if digits == 0 or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _s1_table(s1: dict[str, Any]) -> list[str]:
    labels = {"direct": "(a) direct to aiohttp echo", "nginx": "(b) nginx hop (keep-alive upstream)",
              "relay": "(c) soap-relay + Python listener", "relay_hyco": "S3: soap-relay + hyco-https listener",
              "relay_obs_on": "(c) one entity, metrics and inspector on",
              "relay_obs_off": "(c) one entity, metrics and inspector off",
              "relay_obs_capture": "(c) one entity, body capture on",
              "relay_floor": "floor: the relay's socket work only (bench.floor_relay)"}
    rows = ["| target | c | req/s | p50 ms | p99 ms | server CPU us/req |", "|---|--:|--:|--:|--:|--:|"]
    for name, label in labels.items():
        for c in ("1", "32"):
            m = s1.get(name, {}).get(c, {}).get("median")
            if m:
                cpu = m.get("relay_cpu_us_per_req", m.get("backend_cpu_us_per_req"))
                rows.append(f"| {label} | {c} | {_n(m['rps'], 0)} | {_n(m['p50_ms'])} | {_n(m['p99_ms'])} | "
                            f"{_n(cpu, 0)} |")
    rows += ["", ("Server CPU: the relay process for (c) and S3; the aiohttp echo backend itself for (a),"
                  " the cost of one plain Python HTTP server answering the same request.")]
    return rows


def _s2_table(s2: dict[str, Any]) -> list[str]:
    rows = ["| path | c | calls/s | p50 ms | p99 ms |", "|---|--:|--:|--:|--:|"]
    labels = {"direct": "zeep -> waitress -> Spyne", "relay": "zeep -> relay -> listener -> Spyne"}
    for name, label in labels.items():
        for c, point in s2.get(name, {}).items():
            m = point["median"]
            rows.append(f"| {label} | {c} | {_n(m['calls_s'], 0)} | {_n(m['p50_ms'])} | {_n(m['p99_ms'])} |")
    return rows


def _s8_table(s8: dict[str, Any]) -> list[str]:
    rows = ["| path | c | calls/s | p50 ms | p99 ms | CPU us/call: client | relay | service | total |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    labels = {"basichttp": "BasicHttp: zeep -> relay (HTTP + rendezvous per call) -> listener",
              "ws2007": "WS2007Http: the same, SOAP 1.2 + WS-Addressing (NetTcp's envelopes)",
              "nettcp": "NetTcp relayed: zeep -> one session through the relay -> host",
              "nettcp_inline": "NetTcp relayed, host with inline_calls=True (no worker thread)",
              "hybrid": "NetTcp Hybrid: the same session, direct",
              "norelay": "no relay: zeep -> waitress -> Spyne (SOAP 1.2)"}
    for name, label in labels.items():
        for c, point in s8.get(name, {}).items():
            m = point["median"]
            cpu = [_n(m.get(f"{k}_cpu_us_per_call"), 0) for k in ("client", "relay", "service", "total")]
            rows.append(f"| {label} | {c} | {_n(m['calls_s'], 0)} | {_n(m['p50_ms'])} | {_n(m['p99_ms'])} | "
                        + " | ".join(cpu) + " |")
    rows += ["", ("Relay CPU on the Hybrid and no-relay paths is the relay's idle cost (keep-alives)"
                  " spread over the calls; the service's CPU includes its listener or session code.")]
    ratios = s8.get("ratios")
    if ratios:
        labels = {"tcp_basic_c1": "NetTcp / BasicHttp calls/s, c=1",
                  "inline_basic_c1": "NetTcp inline / BasicHttp calls/s, c=1",
                  "tcp_basic_c8": "NetTcp / BasicHttp calls/s, c=8",
                  "cpu_basic_tcp_c1": "BasicHttp / NetTcp CPU per call, c=1",
                  "p50_hybrid_norelay_c1": "Hybrid / no relay p50, c=1"}
        rows += ["", "Ratios within each repetition (the paths compared run side by side):", "",
                 "| ratio | per repetition | median |", "|---|---|--:|"]
        for name, label in labels.items():
            ratio = ratios.get(name)
            if ratio:
                reps = ", ".join("-" if r is None else f"{r:.2f}" for r in ratio["reps"])
                rows.append(f"| {label} | {reps} | {_n(ratio['median'])} |")
    return rows


def _s4_table(s4: dict[str, Any]) -> list[str]:
    m = s4["median"]
    return [
        "| listeners | entities x per entity | RSS per listener | time to connect all | relay CPU idle (keep-alive) |",
        "|--:|--:|--:|--:|--:|",
        (f"| {_n(s4['listeners'], 0)} | {s4['entities']} x {s4['per_entity']} | {_n(m['rss_kib_per_listener'], 1)} KiB"
        f" | {_n(m['connect_s'])} s ({_n(m['connects_per_s'], 0)}/s) | {_n(m['idle_cpu_pct'])} % of a core |"),
    ]


def _s5_table(s5: dict[str, Any]) -> list[str]:
    rows = ["| subscribers | events | p50 ms | p99 ms | delivered |", "|--:|--:|--:|--:|--:|"]
    for n, point in s5.items():
        m = point["median"]
        rows.append(f"| {_n(int(n), 0)} | {_n(m['events'], 0)} | {_n(m['p50_ms'])} | {_n(m['p99_ms'])} | "
                    f"{_n(m['delivered'], 0)} |")
    return rows


def _s6_table(s6: dict[str, Any]) -> list[str]:
    rows = ["| body | direction | MB/s | relay peak RSS growth (max of reps) |", "|--:|---|--:|--:|"]
    for name, point in s6.items():
        direction, size = name.split("_", 1)
        label = "request (upload)" if direction == "up" else "response (download)"
        rows.append(f"| {size.replace('MiB', ' MiB')} | {label} | {_n(point['median']['mb_s'], 0)} | "
                    f"{_n(point['max_rss_growth_mib'], 1)} MiB |")
    return rows


def render(document: dict[str, Any]) -> str:
    env, results, settings = document["environment"], document["results"], document["settings"]
    lines = [
        "# soap-relay benchmarks",
        "",
        (f"`make bench` on {env['date']}: {env['cores']} cores ({env['cpu']}), {env['memory_gib']} GiB, "
        f"Linux {env['kernel']}, Python {env['python']}, commit {env['commit']}. "
        f"{settings['repetitions']} interleaved repetitions of {settings['seconds_per_point']:g} s per "
        f"load point; medians. Relay event loop: {document.get('relay_loop', '?')}; "
        f"build: {document.get('build', 'pure Python')}."),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in {**env["packages"], **env["tools"]}.items()) + ".",
        "",
    ]
    sections: list[tuple[str, str, Callable[[dict[str, Any]], list[str]]]] = [
        ("s1", "S1 relay hop and S3 listeners: 1 KiB SOAP POST echoed, wrk", _s1_table),
        ("s2", "S2 end-to-end SOAP: zeep GetSalary(7) on the Spyne payroll service", _s2_table),
        ("s4", "S4 idle listeners", _s4_table),
        ("s5", "S5 event fan-out: one event, time until every subscriber acknowledged", _s5_table),
        ("s6", "S6 large bodies through the relay (curl, streamed)", _s6_table),
        ("s8", "S8 NetTcp sessions: zeep GetSalary(7), one session per client vs HTTP per call", _s8_table),
    ]
    for key, title, table in sections:
        if results.get(key):
            lines += [f"## {title}", "", *table(results[key]), ""]
    if document.get("targets"):
        lines += ["## Targets of this round", "", "| | target | goal | measured | |", "|---|---|--:|--:|---|"]
        for t in document["targets"]:
            lines.append(f"| {t['scenario']} | {t['what']} | {t['goal']} | {t['shown']} | "
                         f"{'met' if t['met'] else '**missed**'} |")
        lines.append("")
    notes = document.get("notes")
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
