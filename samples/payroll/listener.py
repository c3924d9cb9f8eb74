"""Host one payroll service behind the relay, the way it runs "on-premises".

::

    python -m samples.payroll.listener --connection-string CS --service payroll
    python -m samples.payroll.listener --service timesheet --record timesheets.log
    python -m samples.payroll.listener --service payroll-signed --credentials DIR

The connection string defaults to ``$SOAPRELAY_CONNECTION_STRING``. The process
opens an outbound connection to the relay only, prints ``READY <relay address>``
once the service is online, and stops cleanly on SIGTERM or Ctrl-C.
``payroll-signed`` requires signed requests and signs its replies, with the
keys and certificates in ``--credentials DIR`` (see :mod:`samples.payroll.credentials`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from spyne import Application

from bindings import (
    BasicHttpRelayBinding,
    NetEventRelayBinding,
    NetOnewayRelayBinding,
    NetTcpRelayBinding,
    RelayBinding,
    RelayServiceHost,
    WS2007HttpRelayBinding,
)
from bindings.binding import EndToEndSecurityMode
from bindings.exceptions import BindingError
from bindings.settings import ENV_VAR
from hc.connection_string import ConnectionString
from samples.payroll import credentials, services
from soap.exceptions import SoapError


@dataclass(frozen=True)
class Service:
    """What ``--service NAME`` hosts, where, and with which binding."""

    entity: str
    binding: RelayBinding
    make_app: Callable[[services.Recorder], Application]
    discovery: str = "private"
    signed: bool = False


SERVICES = {
    "payroll": Service("payroll", BasicHttpRelayBinding(), lambda r: services.payroll_app()),
    "payroll12": Service("payroll12", WS2007HttpRelayBinding(), lambda r: services.payroll12_app()),
    "payroll-run": Service(
        "payroll-run", NetTcpRelayBinding(), lambda r: services.payroll_run_app()
    ),
    "payroll-signed": Service(
        "payroll-signed",
        BasicHttpRelayBinding(security=EndToEndSecurityMode.MESSAGE),
        services.signed_payroll_app,
        signed=True,
    ),
    "timesheet": Service("timesheet", NetOnewayRelayBinding(), services.timesheet_app),
    "audit": Service("payroll-events", NetEventRelayBinding(), services.audit_app, "public"),
    "notifications": Service(
        "payroll-events", NetEventRelayBinding(), services.notifications_app, "public"
    ),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m samples.payroll.listener", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--connection-string", metavar="CS", help=f"default: ${ENV_VAR}")
    parser.add_argument("--service", required=True, choices=sorted(SERVICES))
    parser.add_argument("--entity", help="entity path (default: the service's usual one)")
    parser.add_argument("--record", metavar="FILE", help="append handled one-way messages here")
    parser.add_argument(
        "--credentials", metavar="DIR", type=Path,
        help="payroll-signed: folder with service.key, service.crt and client.crt",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    # An unknown employee is the caller's mistake: no server-side traceback for it.
    logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)
    text = args.connection_string or os.environ.get(ENV_VAR, "")
    if not text:
        print(f"listener: give --connection-string or set {ENV_VAR}", file=sys.stderr)
        return 2
    service = SERVICES[args.service]
    if service.signed and args.credentials is None:
        print(f"listener: {args.service} needs --credentials DIR", file=sys.stderr)
        return 2
    # SIGTERM/SIGINT are blocked in every thread (the host's threads inherit the mask)
    # and taken with sigwait() below: a handler would only run in the main thread, and
    # the kernel may deliver the signal to the host's event-loop thread instead.
    stopping = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    try:
        cs = ConnectionString.parse(text).with_entity(args.entity or service.entity)
        security = credentials.service_security(args.credentials) if service.signed else None
        host = RelayServiceHost(
            service.make_app(services.Recorder(args.record)),
            binding=service.binding,
            connection_string=cs,
            discovery=service.discovery,
            message_security=security,
        )
        host.open()
    except (BindingError, SoapError, OSError) as exc:
        print(f"listener: {args.service}: {exc}", file=sys.stderr)
        return 1
    print(f"READY {host.public_address}", flush=True)
    try:
        signal.sigwait(stopping)
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
