"""The payroll service as a plain SOAP 1.1 server on a TCP port (the firewall proof's service).

::

    python -m interop_tests.legacy_service [--host 0.0.0.0] [--port 0]

Serves :func:`samples.payroll.services.payroll_app` with Spyne's WSGI server under
waitress, prints ``READY <port>`` once the socket is listening, and runs until it is
terminated. It knows nothing about the relay: ``soaprelay forward`` puts it behind one.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from spyne.server.wsgi import WsgiApplication
from waitress.server import create_server

from samples.payroll.services import payroll_app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interop_tests.legacy_service")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    args = parser.parse_args(argv)
    logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)
    server = create_server(WsgiApplication(payroll_app()), host=args.host, port=args.port)
    print(f"READY {server.effective_port}", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
