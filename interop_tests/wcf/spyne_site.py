"""The Spyne services WCF clients call: hosted by our bindings behind a real relay.

::

    wcf-payroll     PayrollService + EchoService, SOAP 1.1         BasicHttpRelayBinding
    wcf-payroll12   the same, SOAP 1.2 + WS-Addressing 1.0          WS2007HttpRelayBinding
    wcf-timesheet   TimesheetService, one-way                       NetOnewayRelayBinding

``EchoService.Echo`` sends any text back (the 300 KB round trip); the rest is the
payroll sample's own services (:mod:`samples.payroll.services`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from spyne import Application, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11, Soap12

from bindings import (
    BasicHttpRelayBinding,
    NetOnewayRelayBinding,
    RelayBinding,
    RelayServiceHost,
    WS2007HttpRelayBinding,
)
from hc.connection_string import ConnectionString
from interop_tests.payroll_site import TIMEOUT, LineRecorder
from samples.payroll import services
from tests.support.relay import RelayThread, relay_thread

__all__ = ["SpyneSite", "spyne_site"]

#: Twice the 300 KB echo, with room for the envelope: the binding's limit.
MAX_MESSAGE = 2 * 1024 * 1024


class EchoService(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode, _returns=Unicode)
    def Echo(ctx, text):  # type: ignore[no-untyped-def]
        """The text, unchanged."""
        return text


def _payroll_app(soap12: bool) -> Application:
    protocol = Soap12 if soap12 else Soap11
    return Application(
        [services.PayrollService, EchoService], tns=services.TNS,
        name="Payroll12" if soap12 else "Payroll",
        in_protocol=protocol(validator="lxml"), out_protocol=protocol(),
    )


@dataclass
class SpyneSite:
    """The relay and what the one-way service recorded."""

    relay: RelayThread
    timesheets: LineRecorder

    def url(self, entity: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.relay.port}/{entity}"

    def token(self, entity: str) -> str:
        return self.relay.token(entity)


@contextmanager
def spyne_site(ws2007: WS2007HttpRelayBinding | None = None) -> Iterator[SpyneSite]:
    """Start a relay and host the three services; ``ws2007`` replaces the SOAP 1.2 binding."""
    with relay_thread() as relay, ExitStack() as hosts:
        cs = ConnectionString.parse(relay.connection_string)
        site = SpyneSite(relay, LineRecorder())
        plan: list[tuple[str, Application, RelayBinding]] = [
            ("wcf-payroll", _payroll_app(False),
             BasicHttpRelayBinding(max_received_message_size=MAX_MESSAGE)),
            ("wcf-payroll12", _payroll_app(True),
             ws2007 or WS2007HttpRelayBinding(max_received_message_size=MAX_MESSAGE)),
            ("wcf-timesheet", services.timesheet_app(site.timesheets), NetOnewayRelayBinding()),
        ]
        for entity, app, binding in plan:
            hosts.enter_context(RelayServiceHost(
                app, binding=binding, connection_string=cs.with_entity(entity),
                open_timeout=TIMEOUT,
            ))
        yield site
