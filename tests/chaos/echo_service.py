"""The chaos suite's Spyne service, hosted behind the relay as its own process::

    python -m tests.chaos.echo_service --connection-string CS --name A [--record FILE]

``Echo(id, delay)`` sleeps ``delay`` seconds and answers ``NAME|id``: every answer names
the listener process that ran it and the request it belongs to, so a test can tell a
lost, doubled or misrouted answer.  With ``--record FILE`` each call appends
``NAME id`` when it starts running, so a test can count how often each id ran.

On stdout: ``READY <address>`` once ONLINE, then ``STATUS <status> <last error>`` on
every change of the host's status (with the time the host saw it, for detection
times).  Stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence

from spyne import Application, Double, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11

from bindings import BasicHttpRelayBinding, RelayServiceHost
from bindings.status import HostStatus
from hc.connection_string import ConnectionString

TNS = "urn:soap-relay:chaos"


class _Recorder:
    """Appends one line per call that started running (thread-safe, flushed each time)."""

    def __init__(self, path: str | None) -> None:
        self._file = open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115
        self._lock = threading.Lock()

    def record(self, line: str) -> None:
        if self._file is not None:
            with self._lock:
                self._file.write(line + "\n")


def echo_app(name: str, recorder: _Recorder) -> Application:
    """The Spyne application answering ``NAME|id`` after ``delay`` seconds."""

    class ChaosService(ServiceBase):  # type: ignore[misc]
        @rpc(Unicode, Double, _returns=Unicode)
        def Echo(ctx, id, delay):
            recorder.record(f"{name} {id}")
            if delay:
                time.sleep(min(float(delay), 120.0))
            return f"{name}|{id}"

    return Application([ChaosService], TNS, name="ChaosService",
                       in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())


def _report(host: RelayServiceHost, status: HostStatus) -> None:
    error = " ".join(str(host.last_error or "").split())
    print(f"STATUS {status.name} {time.monotonic():.3f} {error}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.echo_service")
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--record")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    stopping = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)  # taken by sigwait below
    host = RelayServiceHost(echo_app(args.name, _Recorder(args.record)),
                            binding=BasicHttpRelayBinding(),
                            connection_string=ConnectionString.parse(args.connection_string))
    host.add_status_callback(lambda status: _report(host, status))
    host.open()
    print(f"READY {host.public_address}", flush=True)
    try:
        signal.sigwait(stopping)
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
