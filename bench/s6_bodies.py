"""S6 large bodies: 10 MiB and 100 MiB up and down through the relay, streamed.

curl (its own process) sends a file as the request body to our Python listener,
which reads it as it streams in and answers its length (``up``), or asks for N
bytes that the listener produces in 256 KiB chunks (``down``).  The relay's peak
RSS during each transfer comes from ``VmHWM`` after resetting it
(``/proc/PID/clear_refs``); growth = peak - RSS before.  MB/s are 10^6 bytes.
"""

from __future__ import annotations

import subprocess
from typing import Any

from bench import keys
from bench.procs import Proc, python_argv
from bench.stack import Run, med

__all__ = ["ENTITY_MAX", "SIZES", "run_bodies"]

MIB = 1024 * 1024
SIZES = (10 * MIB, 100 * MIB)
#: The S6 entity's and listener's message size limit.
ENTITY_MAX = 256 * MIB


def _curl(argv: list[str], timeout: float) -> tuple[str, str]:
    """Run curl; returns (body, the -w line)."""
    out = subprocess.run(
        ["curl", "-sS", "--max-time", f"{timeout:g}", "-w", "\nCURL %{http_code} %{size_upload} %{size_download} %{time_total}", *argv],
        capture_output=True, text=True, timeout=timeout + 10, check=True,
    ).stdout
    body, _, tail = out.rpartition("\nCURL ")
    return body, tail


def _transfer(url: str, token: str, direction: str, size: int, upload_file: str) -> float:
    """One transfer; returns seconds (curl's total time)."""
    auth = ["-H", f"ServiceBusAuthorization: {token}"]
    if direction == "up":
        body, tail = _curl(
            [*auth, "-H", "Expect:", "-H", "Content-Type: application/octet-stream",
             "-X", "POST", "-T", upload_file, f"{url}/sink"], 120)
        status, sent, _, seconds = tail.split()
        if status != "200" or int(body.strip()) != size or int(sent) != size:
            raise RuntimeError(f"S6 upload of {size} bytes: status {status}, listener saw {body!r}")
    else:
        _, tail = _curl([*auth, "-o", "/dev/null", f"{url}/source?size={size}"], 120)
        status, _, got, seconds = tail.split()
        if status != "200" or int(got) != size:
            raise RuntimeError(f"S6 download of {size} bytes: status {status}, got {got}")
    return float(seconds)


def run_bodies(run: Run, relay: Proc, relay_url: str) -> dict[str, Any]:
    run.start(Proc("big-listener", python_argv("bench.echo_listener", relay_url, "big", str(ENTITY_MAX)),
                   logdir=run.workdir))
    url, token = f"{relay_url}/big", keys.token(relay_url)
    files = {}
    for size in SIZES:
        path = run.workdir / f"body-{size}.bin"
        with open(path, "wb") as f:
            f.write(b"\xa5" * size)
        files[size] = str(path)
    _transfer(url, token, "up", SIZES[0], files[SIZES[0]])  # warm-up
    points: dict[str, list[dict[str, float]]] = {}
    for rep in range(run.reps):
        for size in SIZES:
            for direction in ("up", "down"):
                relay.reset_peak_rss()
                before = relay.rss_kib()
                seconds = _transfer(url, token, direction, size, files[size])
                growth = relay.status_kib("VmHWM") - before
                point = {"mb_s": size / seconds / 1e6, "seconds": seconds, "rss_growth_mib": growth / 1024}
                points.setdefault(f"{direction}_{size // MIB}MiB", []).append(point)
                run.log(f"S6 rep {rep + 1} {direction} {size // MIB} MiB: {point['mb_s']:.0f} MB/s, "
                        f"relay RSS +{point['rss_growth_mib']:.1f} MiB")
    for name in files.values():
        (run.workdir / name).unlink(missing_ok=True)
    return {
        name: {
            "median": {k: med([p[k] for p in reps]) for k in reps[0]},
            "max_rss_growth_mib": max(p["rss_growth_mib"] for p in reps),
            "reps": reps,
        }
        for name, reps in points.items()
    }
