"""S3 under the microscope: how each listener's traffic meets the relay and the kernel.

``python -m bench.s3_wire [--seconds S] [--reps N] [--conns 1,32] [--strace] [--trace]
[--floor] [--listener NAME=TREE[:VAR=VALUE,...] ...] [--relay-tree TREE]``

One relay (``bench.relay_proc``, run from ``--relay-tree``, this tree by default), Microsoft's
hyco-https listener (entity ``hyco``) and one Python listener (``bench.echo_listener``) per
``--listener NAME=TREE`` (entity NAME, run from TREE: old and new code side by side on the
same relay; default ``ours=`` this tree); ``--floor`` adds ``bench.floor_listener``
(entity ``floor``), a listener that costs almost nothing: the most any listener could
get out of this relay and wrk.  wrk loads each listener in turn, every
repetition, at each concurrency, and for each run this prints:

- req/s; the relay's and the listener's CPU per request (``/proc/PID/stat``);
- their voluntary context switches per request (``/proc/PID/status``): how often each
  process went to sleep, i.e. loop wake-ups that found nothing ready;
- ``--strace``: a second wrk run under ``strace -c -f`` on the relay and the listener,
  syscalls per request by name (strace slows both: only the counts mean anything);
- ``--trace``: a third wrk run under ``strace -e read,write,...`` on both: per syscall kind,
  calls and bytes per request on the control channel's socket, so bytes per read and
  per write say how many requests or answers one syscall carries.

Every number is per request served in that run, so the machine's load changes the
req/s column but hardly the counts.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from bench import keys
from bench.procs import ROOT, Proc, python_argv
from bench.s1_hop import _SOAP_HEADERS
from bench.wrk import WrkResult, run_wrk, write_script

_TRACED = "read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg,epoll_wait,epoll_pwait,epoll_pwait2"
_LINE = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\((\d+),.*\)\s+=\s+(-?\d+)")


def _ctx(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def _strace_counts(path: Path) -> dict[str, int]:
    """``strace -c`` output: syscall name -> calls."""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            try:
                counts[parts[-1]] = int(parts[3])  # % time, seconds, usecs/call, calls
            except ValueError:
                continue
    return counts


def _trace_fds(path: Path) -> dict[tuple[str, int], list[int]]:
    """``strace -e ...`` output: (syscall, fd) -> the results (bytes) of each call."""
    seen: dict[tuple[str, int], list[int]] = collections.defaultdict(list)
    for line in path.read_text().splitlines():
        match = _LINE.match(line)
        if match:
            seen[(match.group(1), int(match.group(2)))].append(int(match.group(3)))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--conns", default="1,32")
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--no-hyco", action="store_true")
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--listener", action="append", default=[])
    parser.add_argument("--relay-tree", default=str(ROOT))
    args = parser.parse_args()
    conns = [int(c) for c in args.conns.split(",")]
    python = {name: Path(tree or ROOT) for name, _, tree in (x.partition("=") for x in args.listener or ["ours="])}
    workdir = Path(tempfile.mkdtemp(prefix="s3wire-"))
    procs: list[Proc] = []
    try:
        entities = [{"path": name} for name in [*python, "hyco", "floor"]]
        relay = Proc("relay", python_argv("bench.relay_proc", json.dumps({"port": 0, "entities": entities})),
                     logdir=workdir, cwd=Path(args.relay_tree))
        procs.append(relay)
        url = relay.ready_line.split()[0]
        listeners: dict[str, Proc] = {}
        for name, tree in python.items():
            root, _, assigned = str(tree).partition(":")  # TREE[:VAR=VALUE,...]
            env = dict(pair.split("=", 1) for pair in assigned.split(",") if pair)
            listeners[name] = Proc(f"py-{name}", python_argv("bench.echo_listener", url, name),
                                   logdir=workdir, cwd=Path(root), env=env)
            procs.append(listeners[name])
        if not args.no_hyco:
            listeners["hyco"] = Proc("hyco", ["node", str(ROOT / "bench" / "node" / "hyco_echo_listener.js"),
                                              url.split("://", 1)[1], "hyco", keys.KEY_NAME, keys.KEY],
                                     logdir=workdir)
            procs.append(listeners["hyco"])
        if args.floor:
            listeners["floor"] = Proc("floor", python_argv("bench.floor_listener", url, "floor"),
                                      logdir=workdir)
            procs.append(listeners["floor"])
        script = write_script(workdir / "soap.lua",
                              {**_SOAP_HEADERS, "ServiceBusAuthorization": keys.token(url)})
        for name in listeners:
            run_wrk(f"{url}/{name}/echo", script, 8, 1)
        for rep in range(args.reps):
            for c in conns:
                for name, listener in listeners.items():
                    target = f"{url}/{name}/echo"
                    r0, l0 = relay.cpu_seconds(), listener.cpu_seconds()
                    rc0, lc0 = _ctx(relay.pid), _ctx(listener.pid)
                    result = run_wrk(target, script, c, args.seconds)
                    n = max(result.requests, 1)
                    print(f"rep {rep + 1} c={c} {name}: {result.rps:,.0f} req/s p50 {result.p50_ms:.2f} ms;"
                          f" CPU us/req relay {(relay.cpu_seconds() - r0) / n * 1e6:.1f}"
                          f" listener {(listener.cpu_seconds() - l0) / n * 1e6:.1f};"
                          f" sleeps/req relay {(_ctx(relay.pid) - rc0) / n:.2f}"
                          f" listener {(_ctx(listener.pid) - lc0) / n:.2f}", flush=True)
                    if args.strace:
                        _straced(workdir, relay, listener, target, script, c, args.seconds, name)
                    if args.trace:
                        _traced(workdir, relay, listener, target, script, c, args.seconds, name)
    finally:
        for proc in reversed(procs):
            proc.stop()


def _attach(pid: int, out: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["strace", "-f", "-qq", "-o", str(out), *extra, "-p", str(pid)],
                            stderr=subprocess.DEVNULL)


def _stop(tracer: subprocess.Popen[bytes]) -> None:
    tracer.send_signal(2)
    tracer.wait(10)


def _wrk_under(tracers: list[subprocess.Popen[bytes]], target: str, script: Path, c: int,
               seconds: float) -> WrkResult:
    """One wrk run while ``tracers`` (strace, just attached) watch; they stop after it."""
    time.sleep(0.5)  # strace's attach takes a moment and prints no sign of it
    result = run_wrk(target, script, c, seconds)
    for tracer in tracers:
        _stop(tracer)
    return result


def _straced(workdir: Path, relay: Proc, listener: Proc, target: str, script: Path, c: int,
             seconds: float, name: str) -> None:
    outs = {who: workdir / f"strace-c-{who}-{name}-{c}.txt" for who in ("relay", "listener")}
    tracers = [_attach(relay.pid, outs["relay"], ["-c"]), _attach(listener.pid, outs["listener"], ["-c"])]
    result = _wrk_under(tracers, target, script, c, seconds)
    n = max(result.requests, 1)
    for who, out in outs.items():
        counts = _strace_counts(out)
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
        print(f"    strace c={c} {name} {who}: {result.requests} req; per req: "
              + ", ".join(f"{k} {v / n:.2f}" for k, v in top), flush=True)


def _traced(workdir: Path, relay: Proc, listener: Proc, target: str, script: Path, c: int,
            seconds: float, name: str) -> None:
    outs = {who: workdir / f"trace-{who}-{name}-{c}.txt" for who in ("relay", "listener")}
    tracers = [_attach(proc.pid, outs[who], ["-e", f"trace={_TRACED}", "-s", "0"])
               for who, proc in (("relay", relay), ("listener", listener))]
    result = _wrk_under(tracers, target, script, c, seconds)
    n = max(result.requests, 1)
    for who, out in outs.items():
        calls = _trace_fds(out)
        rows = sorted(calls.items(), key=lambda kv: -len(kv[1]))[:10]
        print(f"    trace c={c} {name} {who}: {result.requests} req; (call, fd): calls/req, bytes/call", flush=True)
        for (call, fd), results in rows:
            good = [r for r in results if r > 0]
            mean = sum(good) / len(good) if good else 0.0
            print(f"      {call}({fd}): {len(results) / n:.2f}/req, {mean:,.0f} B/call", flush=True)


if __name__ == "__main__":
    main()
