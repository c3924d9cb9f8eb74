"""Call every payroll service through the relay with zeep, and say what happened.

::

    python -m samples.payroll.client --connection-string CS [--credentials DIR]

The client knows only the relay: WSDLs come through it, calls go through it.
On one-way and event entities only messages are one-way: a WSDL fetch (a GET)
is answered by one listener, so those clients load the contract the same way.
:func:`contract_client` builds a client from the shared contract instead, as WCF
clients of NetOneway/NetEvent bindings may, for when no listener is online yet.

With ``--credentials DIR`` (:mod:`samples.payroll.credentials`) it also calls
``payroll-signed``: a signed ``GetSalary`` whose signed reply it verifies, and
an unsigned one that the service refuses with a WS-Security fault.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import zeep
from spyne import Application

from bindings import (
    BasicHttpRelayBinding,
    NetEventRelayBinding,
    NetOnewayRelayBinding,
    NetTcpRelayBinding,
    RelayBinding,
    WS2007HttpRelayBinding,
    relay_client,
)
from bindings.binding import EndToEndSecurityMode
from bindings.settings import ENV_VAR
from bindings.spyne_host import spyne_wsgi
from hc.connection_string import ConnectionString
from samples.payroll import credentials
from samples.payroll.services import PayrollProgress

#: The signed service's binding, as the listener has it: WS-Security signatures both ways.
SIGNED_BINDING = BasicHttpRelayBinding(security=EndToEndSecurityMode.MESSAGE)


@dataclass
class Report:
    """What the calls returned, for the demo to check."""

    salary: Decimal | None = None
    employees: int = 0
    fault: str = ""
    salary12: Decimal | None = None
    timesheet_status: int = 0
    event_delivered: int = 0
    signed_salary: Decimal | None = None
    unsigned_fault: str = ""
    run_total: Decimal | None = None
    run_progress: list[int] = field(default_factory=list)


class ShowProgress:
    """The client's implementation of the ``PayrollProgress`` callback contract."""

    def __init__(self, report: Report, say: Callable[[str], None]) -> None:
        self.report, self.say = report, say

    def Progress(self, done: int, total: int, employee: str) -> None:
        self.report.run_progress.append(done)
        self.say(f"  progress {done}/{total}: {employee} paid")


def call_payroll_run(cs: ConnectionString, report: Report, say: Callable[[str], None] = print) -> None:
    """A payroll run on a NetTcp session; the service reports progress through callbacks."""
    say("Duplex session (NetTcpRelayBinding) -> /payroll-run")
    run = relay_client(
        f"{cs.http_base}/payroll-run?wsdl",
        binding=NetTcpRelayBinding(),
        connection_string=cs.with_entity("payroll-run"),
        callback=(PayrollProgress, ShowProgress(report, say)),
    )
    try:
        report.run_total = run.service.RunPayroll("2026-11")
        say(f"  RunPayroll('2026-11') = {report.run_total}")
    finally:
        run.transport.close()


def contract_client(
    make_app: Callable[[], Application],
    binding: RelayBinding,
    cs: ConnectionString,
    folder: Path,
) -> zeep.Client:
    """A client from the shared contract, pointed at the relay address of ``cs``'s entity."""
    hosted = spyne_wsgi(make_app(), binding)
    wsdl = folder / f"{cs.entity_path}.wsdl"
    wsdl.write_bytes(hosted.wsdl(f"{cs.http_base}/{cs.entity_path}"))
    hosted.close()
    return relay_client(str(wsdl), binding=binding, connection_string=cs)


def _fault_text(fault: zeep.exceptions.Fault) -> str:
    return f"{str(fault.code).rpartition(':')[2]}: {fault.message}"


def call_signed(
    cs: ConnectionString, folder: Path, report: Report, say: Callable[[str], None] = print
) -> None:
    """A signed GetSalary (its reply's signature checked) and an unsigned one (refused)."""
    say("Signed, WS-Security (BasicHttpRelayBinding, security=MESSAGE) -> /payroll-signed")
    entity, url = cs.with_entity("payroll-signed"), f"{cs.http_base}/payroll-signed?wsdl"
    signed = relay_client(
        url,
        binding=SIGNED_BINDING,
        connection_string=entity,
        message_security=credentials.client_security(folder),
    )
    report.signed_salary = signed.service.GetSalary(7)
    say(f"  GetSalary(7) signed   = {report.signed_salary} (the reply's signature verified)")
    unsigned = relay_client(url, connection_string=entity)
    try:
        unsigned.service.GetSalary(7)
    except zeep.exceptions.Fault as fault:
        report.unsigned_fault = _fault_text(fault)
        say(f"  GetSalary(7) unsigned -> SOAP Fault {report.unsigned_fault}")


def run(
    cs: ConnectionString, say: Callable[[str], None] = print, credentials_dir: Path | None = None
) -> Report:
    """Make every call once; return what came back.

    Args:
        cs: The relay connection string (its key signs the relay tokens).
        say: Where the lines saying what happened go.
        credentials_dir: The demo credentials; None skips the signed service.
    """
    report = Report()
    base = cs.http_base

    say("SOAP 1.1 (BasicHttpRelayBinding) -> /payroll")
    payroll = relay_client(f"{base}/payroll?wsdl", connection_string=cs.with_entity("payroll"))
    report.salary = payroll.service.GetSalary(7)
    say(f"  GetSalary(7)       = {report.salary}")
    employees = payroll.service.ListEmployees()
    report.employees = len(employees)
    say(f"  ListEmployees()    = {', '.join(e.name for e in employees)}")
    try:
        payroll.service.GetSalary(99)
    except zeep.exceptions.Fault as fault:
        report.fault = _fault_text(fault)
        say(f"  GetSalary(99)      -> SOAP Fault {report.fault}")

    say("SOAP 1.2 + WS-Addressing (WS2007HttpRelayBinding) -> /payroll12")
    payroll12 = relay_client(
        f"{base}/payroll12?wsdl",
        binding=WS2007HttpRelayBinding(),
        connection_string=cs.with_entity("payroll12"),
    )
    report.salary12 = payroll12.service.GetSalary(8)
    say(f"  GetSalary(8)       = {report.salary12}")

    call_payroll_run(cs, report, say)

    if credentials_dir is not None:
        call_signed(cs, credentials_dir, report, say)

    say("One-way (NetOnewayRelayBinding) -> /timesheet")
    timesheets = relay_client(
        f"{base}/timesheet?wsdl",
        binding=NetOnewayRelayBinding(),
        connection_string=cs.with_entity("timesheet"),
    )
    with timesheets.settings(raw_response=True):
        reply = timesheets.service.SubmitTimesheet(7, Decimal("38.5"))
    report.timesheet_status = reply.status_code
    say(f"  SubmitTimesheet(7, 38.5) -> HTTP {reply.status_code}, handled by the listener")

    say("Event (NetEventRelayBinding) -> /payroll-events")
    events = relay_client(
        f"{base}/payroll-events?wsdl",
        binding=NetEventRelayBinding(),
        connection_string=cs.with_entity("payroll-events"),
    )
    with events.settings(raw_response=True):
        reply = events.service.PayrollRunCompleted("2026-11", Decimal("15575.75"))
    report.event_delivered = int(reply.headers.get("Relay-Delivered", "0"))
    say(
        f"  PayrollRunCompleted('2026-11', 15575.75) -> HTTP {reply.status_code},"
        f" delivered to {report.event_delivered} subscribers"
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samples.payroll.client", description=__doc__)
    parser.add_argument("--connection-string", metavar="CS", help=f"default: ${ENV_VAR}")
    parser.add_argument(
        "--credentials", metavar="DIR", type=Path,
        help="also call payroll-signed, with client.key, client.crt and service.crt from DIR",
    )  # fmt: skip
    args = parser.parse_args(argv)
    text = args.connection_string or os.environ.get(ENV_VAR, "")
    if not text:
        parser.error(f"give --connection-string or set {ENV_VAR}")
    run(ConnectionString.parse(text), credentials_dir=args.credentials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
