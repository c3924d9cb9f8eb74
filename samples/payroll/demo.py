"""The payroll demo in one command: ``python -m samples.payroll.demo`` (``make demo``).

1. starts a relay on 127.0.0.1 with a fresh key and the payroll entities;
2. makes demo key pairs (:mod:`samples.payroll.credentials`) and starts seven
   listeners, each a separate "on-premises" process with only an outbound
   connection to the relay, one of them requiring WS-Security signatures;
3. runs the zeep client (:mod:`samples.payroll.client`) through the relay;
4. stops everything and checks each one-way message and signed call was
   handled exactly once (and the unsigned call never).

Exits 0 on success, 1 with a message saying what went wrong otherwise.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

from bindings.settings import ENV_VAR
from hc.connection_string import ConnectionString
from samples.payroll import client, credentials
from samples.payroll.processes import DemoFailure, Processes

KEY_NAME = "RootManageSharedAccessKey"
ENTITIES = """
[[entity]]
path = "payroll"
discovery = "public"

[[entity]]
path = "payroll12"

[[entity]]
path = "payroll-run"

[[entity]]
path = "payroll-signed"

[[entity]]
path = "timesheet"
kind = "oneway"

[[entity]]
path = "payroll-events"
kind = "event"
discovery = "public"
"""
#: listener --service -> the line its recorder should hold afterwards (None: records nothing)
LISTENERS = {
    "payroll": None,
    "payroll12": None,
    "payroll-run": None,
    "payroll-signed": "salary employee=7 signer=CN=payroll-demo-client",
    "timesheet": "timesheet employee=7 hours=38.5",
    "audit": "audit run=2026-11 total=15575.75",
    "notifications": "notifications run=2026-11 total=15575.75",
}


def write_config(folder: Path, key: str) -> Path:
    """A relay config with the demo's entities, listening on any free port."""
    config = folder / "relay.toml"
    config.write_text(
        '[namespace]\nname = "payroll-demo"\nhost = "127.0.0.1"\nport = 0\n\n'
        f'[[rule]]\nname = "{KEY_NAME}"\nkey = "{key}"\nrights = ["Manage", "Listen", "Send"]\n'
        + ENTITIES,
        encoding="utf-8",
    )
    return config


def check(report: client.Report, folder: Path) -> list[str]:
    """What went wrong, judged after every process stopped (empty when all is well)."""
    problems = []
    if report.salary is None or report.salary12 is None or report.employees != 3:
        problems.append("request/response calls returned unexpected results")
    if "UnknownEmployee" not in report.fault:
        problems.append(f"expected a Client.UnknownEmployee fault, got {report.fault!r}")
    if report.timesheet_status != 202:
        problems.append(f"one-way call answered {report.timesheet_status}, not 202")
    if report.run_total != Decimal("15575.75") or report.run_progress != [1, 2, 3]:
        problems.append(
            f"payroll run returned {report.run_total} after progress {report.run_progress}"
        )
    if report.event_delivered != 2:
        problems.append(f"event delivered to {report.event_delivered} subscribers, not 2")
    if report.signed_salary is None or "InvalidSecurity" not in report.unsigned_fault:
        problems.append(
            f"signed call returned {report.signed_salary}, unsigned one {report.unsigned_fault!r}"
        )
    for service, expected in LISTENERS.items():
        if expected is None:
            continue
        path = folder / f"{service}.log"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if lines != [expected]:
            problems.append(f"{service} handled {lines!r}, expected exactly [{expected!r}]")
    return problems


def run_demo(folder: Path) -> list[str]:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    with Processes(folder) as processes:
        print("Starting the relay ...")
        base = processes.start_relay(write_config(folder, key))
        print(f"  relay listening on {base}")
        cs = ConnectionString.parse(
            f"Endpoint=sb://{base.split('://', 1)[1]}/;SharedAccessKeyName={KEY_NAME};"
            f"SharedAccessKey={key};UseTls=false"
        )
        env = {ENV_VAR: str(cs)}  # the key travels in the environment, not on command lines
        keys = credentials.write_demo_credentials(folder / "credentials")
        print("Starting the on-premises listeners (outbound connections only) ...")
        for service, records in LISTENERS.items():
            args = ["--record", str(folder / f"{service}.log")] if records else []
            if service == "payroll-signed":
                args += ["--credentials", str(keys)]
            address = processes.start_listener(service, args, env)
            print(f"  {service:<14} online at {address}")
        print("Calling the services through the relay with zeep ...")
        report = client.run(cs, say=lambda line: print(f"  {line}"), credentials_dir=keys)
        print("Stopping the listeners and the relay ...")
    return check(report, folder)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="payroll-demo-") as tmp:
        try:
            problems = run_demo(Path(tmp))
        except KeyboardInterrupt:
            print("demo: interrupted; everything was stopped", file=sys.stderr)
            return 130
        except DemoFailure as exc:
            print(f"demo: FAILED: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - the demo says what went wrong, in one line
            print(f"demo: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    if problems:
        for problem in problems:
            print(f"demo: FAILED: {problem}", file=sys.stderr)
        return 1
    print("Demo OK: SOAP 1.1 and 1.2 calls, a fault, a signed call (and a refused unsigned")
    print("one), a payroll run on a NetTcp session with progress callbacks, a one-way call")
    print("and an event to two subscribers all went through the relay; each message was")
    print("handled exactly once.")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
