"""The payroll services behind a real relay on 127.0.0.1, as the Python-side peers see them.

:func:`payroll_site` starts a relay (``tests/support/relay.py``) and hosts every payroll
service from :mod:`samples.payroll.services` through it with our bindings, each on its
usual entity::

    payroll          PayrollService, SOAP 1.1          BasicHttpRelayBinding
    payroll12        PayrollService, SOAP 1.2 + WS-A   WS2007HttpRelayBinding
    timesheet        TimesheetService, one-way         NetOnewayRelayBinding
    payroll-events   audit + notifications, events     NetEventRelayBinding (two hosts)

The foreign clients then call those entities; one-way and event handlers write to
:class:`LineRecorder` objects that the tests wait on (no sleeps).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from bindings import (
    BasicHttpRelayBinding,
    NetEventRelayBinding,
    NetOnewayRelayBinding,
    RelayServiceHost,
    WS2007HttpRelayBinding,
)
from hc.connection_string import ConnectionString
from samples.payroll import services
from tests.support.relay import RelayThread, relay_thread

__all__ = ["TIMEOUT", "LineRecorder", "PayrollSite", "payroll_site"]

#: Seconds any single interop step may take (start-up, a call, a recorded line).
TIMEOUT = 30.0


class LineRecorder(services.Recorder):
    """A recorder a test can wait on for one particular line."""

    def wait_for_line(self, line: str, timeout: float = TIMEOUT) -> bool:
        """True once ``line`` was recorded; False when ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: line in self.lines, timeout)


@dataclass
class PayrollSite:
    """A running relay with the payroll services online behind it."""

    relay: RelayThread
    cs: ConnectionString
    timesheets: LineRecorder
    audit: LineRecorder
    notifications: LineRecorder

    def url(self, entity: str) -> str:
        """The relay address senders call, e.g. ``http://127.0.0.1:PORT/payroll``."""
        return f"{self.relay.base_url}/{entity}"

    def wsdl(self, entity: str) -> str:
        return f"{self.url(entity)}?wsdl"

    def token(self, entity: str) -> str:
        """A Send-capable SAS token for ``entity``."""
        return self.relay.token(entity)

    def entity_cs(self, entity: str) -> ConnectionString:
        return self.cs.with_entity(entity)


@contextmanager
def payroll_site() -> Iterator[PayrollSite]:
    """Start the relay and host all payroll services; stop everything on exit."""
    with relay_thread() as relay, ExitStack() as hosts:
        cs = ConnectionString.parse(relay.connection_string)
        site = PayrollSite(relay, cs, LineRecorder(), LineRecorder(), LineRecorder())
        plan = [
            ("payroll", services.payroll_app(), BasicHttpRelayBinding()),
            ("payroll12", services.payroll12_app(), WS2007HttpRelayBinding()),
            ("timesheet", services.timesheet_app(site.timesheets), NetOnewayRelayBinding()),
            ("payroll-events", services.audit_app(site.audit), NetEventRelayBinding()),
            ("payroll-events", services.notifications_app(site.notifications),
             NetEventRelayBinding()),
        ]
        for entity, app, binding in plan:
            host = RelayServiceHost(
                app, binding=binding, connection_string=cs.with_entity(entity),
                open_timeout=TIMEOUT,
            )
            hosts.enter_context(host)
        yield site
