"""The payroll demo's Spyne services: what runs "on-premises" behind the relay.

- ``PayrollService``: ``GetSalary`` and ``ListEmployees``, request/response, served
  as SOAP 1.1 (:func:`payroll_app`, BasicHttp) and SOAP 1.2 (:func:`payroll12_app`, WS2007Http).
- ``TimesheetService.SubmitTimesheet``: one-way (NetOneway), answered 202 at once.
- ``PayrollRunCompleted``: an event (NetEvent) two subscribers handle, audit and notifications.
- ``PayrollRunService.RunPayroll``: a long payroll run over a NetTcp session
  (:func:`payroll_run_app`, NetTcpRelayBinding) that reports its progress to the
  caller through the ``PayrollProgress`` callback contract, then returns the total.
- ``SignedPayrollService.GetSalary``: the same salary, only for a signed request
  (:func:`signed_payroll_app`, hosted with ``security=MESSAGE``): the binding's
  WS-Security middleware checks the signature before Spyne runs, and the
  operation itself refuses a request that did not come through that check.

One-way and event handlers, and the signed ``GetSalary``, write a line to a
:class:`Recorder`, so the demo and the tests can check that each message was
handled exactly once (and a refused one never).
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

from spyne import (
    Application,
    Array,
    ComplexModel,
    Fault,
    Integer,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne import Decimal as XsDecimal
from spyne.protocol.soap import Soap11, Soap12

from bindings.nettcp import session_of
from bindings.oneway import oneway
from bindings.wsgi_security import ENVIRON_KEY
from soap.security import SecurityResult

__all__ = [
    "EMPLOYEES",
    "TNS",
    "PayrollProgress",
    "Recorder",
    "audit_app",
    "notifications_app",
    "payroll12_app",
    "payroll_app",
    "payroll_run_app",
    "signed_payroll_app",
    "timesheet_app",
]

TNS = "urn:soap-relay:payroll"


class Employee(ComplexModel):  # type: ignore[misc]
    __namespace__ = TNS
    id = Integer
    name = Unicode
    department = Unicode


#: id -> (name, department, monthly salary)
EMPLOYEES: dict[int, tuple[str, str, Decimal]] = {
    7: ("Ada Lovelace", "Engineering", Decimal("5120.50")),
    8: ("Grace Hopper", "Engineering", Decimal("5480.00")),
    12: ("Edsger Dijkstra", "Research", Decimal("4975.25")),
}


def _salary(employee_id: int) -> Decimal:
    if employee_id not in EMPLOYEES:
        raise Fault("Client.UnknownEmployee", f"No employee has the id {employee_id}")
    return EMPLOYEES[employee_id][2]


class PayrollService(ServiceBase):  # type: ignore[misc]
    @rpc(Integer, _returns=XsDecimal)
    def GetSalary(ctx, employee_id):  # type: ignore[no-untyped-def]
        """Monthly salary of one employee."""
        return _salary(employee_id)

    @rpc(_returns=Array(Employee))
    def ListEmployees(ctx):  # type: ignore[no-untyped-def]
        """Everyone on the payroll."""
        return [Employee(id=i, name=n, department=d) for i, (n, d, _) in EMPLOYEES.items()]


class PayrollProgress(ServiceBase):  # type: ignore[misc]
    """The callback contract of a payroll run: the *client* implements it (NetTcp duplex)."""

    __namespace__ = f"{TNS}:progress"

    @oneway(Integer, Integer, Unicode)
    def Progress(ctx, done, total, employee):  # type: ignore[no-untyped-def]
        """``done`` of ``total`` employees paid, the last one ``employee`` (one-way)."""


class PayrollRunService(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode, _returns=XsDecimal)
    def RunPayroll(ctx, run_id):  # type: ignore[no-untyped-def]
        """Pay everyone, telling the caller after each employee; the run's total."""
        progress = session_of(ctx).callback(PayrollProgress)
        total = Decimal(0)
        for done, (name, _, salary) in enumerate(EMPLOYEES.values(), start=1):
            total += salary
            progress.Progress(done, len(EMPLOYEES), name)
        return total


class Recorder:
    """Appends one line per handled message to a file (or keeps them in memory).

    Args:
        path: The file to append to; None keeps lines in :attr:`lines` only.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def record(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(line + "\n")
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` lines were recorded; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.lines) >= count, timeout)


def _recorder(ctx: object) -> Recorder:
    recorder: Recorder = ctx.app.recorder  # type: ignore[attr-defined]
    return recorder


class TimesheetService(ServiceBase):  # type: ignore[misc]
    @oneway(Integer, XsDecimal)
    def SubmitTimesheet(ctx, employee_id, hours):  # type: ignore[no-untyped-def]
        """Book hours; nothing is sent back."""
        _recorder(ctx).record(f"timesheet employee={employee_id} hours={hours}")


class AuditService(ServiceBase):  # type: ignore[misc]
    @oneway(Unicode, XsDecimal)
    def PayrollRunCompleted(ctx, run_id, total):  # type: ignore[no-untyped-def]
        _recorder(ctx).record(f"audit run={run_id} total={total}")


class NotificationService(ServiceBase):  # type: ignore[misc]
    @oneway(Unicode, XsDecimal)
    def PayrollRunCompleted(ctx, run_id, total):  # type: ignore[no-untyped-def]
        _recorder(ctx).record(f"notifications run={run_id} total={total}")


def _verified_signer(ctx: object) -> str:
    """The subject of the certificate that signed this request, as WS-Security verified it.

    Raises:
        Fault: ``Client.SignatureRequired`` when the request was not checked
            (the service is hosted without ``security=MESSAGE``).
    """
    result = ctx.transport.req_env.get(ENVIRON_KEY)  # type: ignore[attr-defined]
    if not isinstance(result, SecurityResult) or result.signer is None:
        raise Fault("Client.SignatureRequired", "GetSalary needs a signed request")
    return str(result.signer.subject.rfc4514_string())


class SignedPayrollService(ServiceBase):  # type: ignore[misc]
    @rpc(Integer, _returns=XsDecimal)
    def GetSalary(ctx, employee_id):  # type: ignore[no-untyped-def]
        """Monthly salary of one employee, for a caller whose signature verified."""
        signer = _verified_signer(ctx)
        salary = _salary(employee_id)
        _recorder(ctx).record(f"salary employee={employee_id} signer={signer}")
        return salary


def _app(
    service: type, name: str, soap12: bool = False, recorder: Recorder | None = None
) -> Application:
    protocol = Soap12 if soap12 else Soap11
    app = Application(
        [service], tns=TNS, name=name,
        in_protocol=protocol(validator="lxml"), out_protocol=protocol(),
    )
    app.recorder = recorder or Recorder()
    return app


def payroll_app() -> Application:
    """PayrollService over SOAP 1.1 (BasicHttpRelayBinding)."""
    return _app(PayrollService, "Payroll")


def payroll12_app() -> Application:
    """PayrollService over SOAP 1.2 (WS2007HttpRelayBinding)."""
    return _app(PayrollService, "Payroll12", soap12=True)


def payroll_run_app() -> Application:
    """PayrollRunService over SOAP 1.2 with progress callbacks (NetTcpRelayBinding)."""
    return _app(PayrollRunService, "PayrollRun", soap12=True)


def signed_payroll_app(recorder: Recorder | None = None, *, soap12: bool = False) -> Application:
    """SignedPayrollService: host it with ``security=MESSAGE`` and MessageSecurity settings."""
    name = "SignedPayroll12" if soap12 else "SignedPayroll"
    return _app(SignedPayrollService, name, soap12=soap12, recorder=recorder)


def timesheet_app(recorder: Recorder | None = None) -> Application:
    """TimesheetService, one-way (NetOnewayRelayBinding)."""
    return _app(TimesheetService, "Timesheets", recorder=recorder)


def audit_app(recorder: Recorder | None = None) -> Application:
    """The audit subscriber of PayrollRunCompleted (NetEventRelayBinding)."""
    return _app(AuditService, "PayrollAudit", recorder=recorder)


def notifications_app(recorder: Recorder | None = None) -> Application:
    """The notifications subscriber of PayrollRunCompleted (NetEventRelayBinding)."""
    return _app(NotificationService, "PayrollNotifications", recorder=recorder)
