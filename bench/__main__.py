"""``make bench`` / ``python -m bench``: every scenario side by side, one table.

Usage: ``python -m bench [--only s1,s6] [--seconds 5] [--reps 3] [--no-bootstrap] [--no-profile]
[--observe] [--floor] [--compiled]``

Writes ``bench/results/latest.md`` and ``latest.json`` (only for a full run;
a partial run writes ``partial.md``/``partial.json``), and with S1 the py-spy
summary ``bench/results/profile-s1.txt``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bootstrap import bootstrap
from bench.procs import CODE, ROOT
from bench.report import environment, render, verdicts
from bench.stack import Run

SCENARIOS = ("s1", "s2", "s3", "s4", "s5", "s6", "s8")
RESULTS = Path(__file__).resolve().parent / "results"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load point")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--no-bootstrap", action="store_true", help="skip apt/pip installs")
    parser.add_argument("--observe", action="store_true",
                        help="S1 also on three relays alike with metrics and inspector on, off,"
                             " and with body capture on (issue 13: what observing costs)")
    parser.add_argument("--floor", action="store_true",
                        help="S1 also on bench.floor_relay: the relay's socket work with no Python logic"
                             " (what relay CPU / echo CPU a relay could reach on this machine)")
    parser.add_argument("--compiled", action="store_true",
                        help="run every process on a copy of the tree with the hot path compiled by"
                             " mypyc (scripts/compiled_tree.py into build/compiled), as an accelerated"
                             " install (SOAPRELAY_COMPILE=1) runs")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the py-spy profiles of relay and listener (results/profile-s1.txt)")
    return parser.parse_args(argv)


def _use_compiled_tree() -> bool:
    """Builds build/compiled and runs every child process there; False if it cannot."""
    tree = ROOT / "build" / "compiled"
    print("bench: compiling the hot path (scripts/compiled_tree.py build/compiled)", file=sys.stderr)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "compiled_tree.py"), str(tree)],
                          stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        print("bench: --compiled needs mypy (the dev extra) and a C compiler", file=sys.stderr)
        return False
    CODE["root"] = tree
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    chosen = [s.strip().lower() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        print(f"bench: unknown scenario(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    if not args.no_bootstrap:
        bootstrap()
    from bench.scenarios import NOTES, run_scenarios  # after bootstrap: may import uvloop

    if args.compiled and not _use_compiled_tree():
        return 2

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soap-relay-bench-") as tmp:
        run = Run(Path(tmp), seconds=args.seconds, reps=args.reps)
        try:
            results: dict[str, Any] = run_scenarios(run, chosen, observe=args.observe, floor=args.floor)
            if not args.no_profile and "s1" in chosen:
                from bench.profiles import profile_s1

                RESULTS.mkdir(exist_ok=True)
                profile_s1(run, RESULTS / "profile-s1.txt")
        finally:
            run.stop_all()
    document = {
        "environment": environment(),
        "settings": {"seconds_per_point": args.seconds, "repetitions": args.reps, "scenarios": chosen},
        "elapsed_s": round(time.monotonic() - started, 1),
        "relay_loop": run.relay_loop,
        "build": "compiled (mypyc)" if args.compiled else "pure Python",
        "notes": NOTES,
        "results": results,
    }
    document["targets"] = verdicts(results)
    table = render(document)
    print(table)
    stem = "latest" if set(chosen) == set(SCENARIOS) else "partial"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(table)
    (RESULTS / f"{stem}.json").write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    print(f"bench: wrote {RESULTS / (stem + '.md')} and .json in {document['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
