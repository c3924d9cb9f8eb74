"""A NetTcp host in a process of its own: ``python -m tests.bindings.nettcp.host_process``.

::

    python -m tests.bindings.nettcp.host_process --connection-string CS --entity hybrid \
        --hybrid-host 10.200.1.2

Hosts the NetTcp test service (``tests/bindings/nettcp/services.py``) with
``connection_mode=HYBRID`` (its direct endpoint on ``--hybrid-host``) and
``concurrency_mode=MULTIPLE``; prints ``READY <relay address>`` once online, ``SLEEPING``
when a ``Sleep`` call starts, and stops on SIGTERM (the network-namespace tests, and the
test that kills it with calls in flight).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from bindings import ConcurrencyMode, ConnectionMode, NetTcpRelayBinding, RelayServiceHost
from tests.bindings.nettcp.services import session_app


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bindings.nettcp.host_process")
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--entity", required=True)
    parser.add_argument("--hybrid-host", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    stopping = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)  # taken by sigwait below
    binding = NetTcpRelayBinding(connection_mode=ConnectionMode.HYBRID,
                                 concurrency_mode=ConcurrencyMode.MULTIPLE,
                                 hybrid_host=args.hybrid_host)
    cs = args.connection_string + f";EntityPath={args.entity}"
    host = RelayServiceHost(session_app(), binding=binding, connection_string=cs)
    host.open()
    print(f"READY {host.public_address}", flush=True)
    try:
        signal.sigwait(stopping)
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
