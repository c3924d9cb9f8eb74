"""Host one payroll service behind the relay, the way it runs "on-premises".

::

    python -m samples.payroll.listener --connection-string CS --service payroll
    python -m samples.payroll.listener --service timesheet --record timesheets.log

The connection string defaults to ``$SOAPRELAY_CONNECTION_STRING``. The process
opens an outbound connection to the relay only, prints ``READY <relay address>``
once the service is online, and stops cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spyne import Application

from bindings import (
    BasicHttpRelayBinding,
    NetEventRelayBinding,
    NetOnewayRelayBinding,
    RelayBinding,
    RelayServiceHost,
    WS2007HttpRelayBinding,
)
from bindings.connection_string import ENV_VAR, ConnectionString
from bindings.exceptions import BindingError
from samples.payroll import services


@dataclass(frozen=True)
class Service:
    """What ``--service NAME`` hosts, where, and with which binding."""

    entity: str
    binding: RelayBinding
    make_app: Callable[[services.Recorder], Application]
    discovery: str = "private"


SERVICES = {
    "payroll": Service("payroll", BasicHttpRelayBinding(), lambda r: services.payroll_app()),
    "payroll12": Service("payroll12", WS2007HttpRelayBinding(), lambda r: services.payroll12_app()),
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
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        cs = ConnectionString.parse(text).with_entity(args.entity or service.entity)
        host = RelayServiceHost(
            service.make_app(services.Recorder(args.record)),
            binding=service.binding,
            connection_string=cs,
            discovery=service.discovery,
        )
        host.open()
    except BindingError as exc:
        print(f"listener: {args.service}: {exc}", file=sys.stderr)
        return 1
    print(f"READY {host.public_address}", flush=True)
    try:
        stop.wait()
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
