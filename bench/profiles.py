"""Where the relay and our listener spend their time under S1 load (py-spy, sampled).

Runs the S1 relay path (wrk c=32 -> relay -> Python listener) with ``py-spy
record --nonblocking`` attached to the relay and to the listener in turn, and
writes a short text summary per process: the hottest lines (self time) and the
hottest functions including what they call.  Samples in ``Runner.run`` are the
event loop's own C code (uvloop), including waiting and syscalls made there.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

from bench import keys
from bench.procs import Proc, python_argv
from bench.stack import Run, start_relay
from bench.wrk import run_wrk, write_script

__all__ = ["profile_s1"]

_TOP = 25


def _py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def _summary(raw: Path, title: str) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames, samples = stack.split(";"), int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"## {title}: {total} samples", "", "self (the line itself):"]
    lines += [f"  {n / total * 100:5.1f}%  {frame}" for frame, n in own.most_common(_TOP)]
    lines += ["", "inclusive (relay/ and bindings/ functions with what they call):"]
    ours = [(f, n) for f, n in inclusive.most_common() if "relay/" in f or "bindings/" in f]
    lines += [f"  {n / total * 100:5.1f}%  {frame}" for frame, n in ours[:_TOP]]
    return "\n".join(lines) + "\n"


def profile_s1(run: Run, out: Path, seconds: float = 6.0) -> Path | None:
    """Profile relay and listener under S1 c=32; returns the summary file (None without py-spy)."""
    spy = _py_spy()
    if spy is None:
        run.log("py-spy is not installed: no profiles")
        return None
    relay, url = start_relay(run, "relay-profile", {"entities": [{"path": "echo"}]})
    listener = run.start(Proc("listener-profile", python_argv("bench.echo_listener", url, "echo"),
                              logdir=run.workdir))
    script = write_script(run.workdir / "profile.lua", {
        "Content-Type": "text/xml; charset=utf-8", "ServiceBusAuthorization": keys.token(url)})
    run_wrk(f"{url}/echo", script, 8, 1)
    parts = ["# Profiles under S1 (wrk c=32, 1 KiB SOAP echo through the relay)", ""]
    for name, proc in (("relay", relay), ("Python listener", listener)):
        raw = run.workdir / f"profile-{proc.name}.txt"
        spy_run = subprocess.Popen(
            [spy, "record", "--nonblocking", "-r", "250", "-d", f"{seconds:g}", "-f", "raw",
             "-o", str(raw), "-p", str(proc.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = run_wrk(f"{url}/echo", script, 32, seconds + 1)
        spy_run.wait(60)
        if raw.exists():
            parts.append(f"{name}: {result.rps:,.0f} req/s while sampled\n")
            parts.append(_summary(raw, name))
    run.stop_all()
    out.write_text("\n".join(parts))
    return out
