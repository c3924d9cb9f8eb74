"""The host's process dies with calls in flight: every call fails at once with a clear error,
and the client opens a new session once a host is back."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path

import pytest

from bindings import NetTcpRelayBinding, relay_client
from bindings.nettcp.errors import SessionClosed
from samples.payroll.processes import ROOT, Child
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread


def start_host(relay: RelayThread, folder: Path, stack: ExitStack) -> Child:
    cs = (f"Endpoint=sb://127.0.0.1:{relay.port}/;SharedAccessKeyName={TEST_KEY_NAME};"
          f"SharedAccessKey={TEST_KEY};UseTls=false")
    stderr = folder / "host.err"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.bindings.nettcp.host_process", "--connection-string", cs,
             "--entity", "dies", "--hybrid-host", "127.0.0.1"],
            cwd=ROOT, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    child = Child("host", process, stderr)
    stack.callback(lambda: (process.kill(), process.wait(10), process.stdout and process.stdout.close()))
    threading.Thread(target=child.pump, daemon=True).start()
    child.wait_for("READY ", 60)
    return child


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as opened:
        yield opened


def test_calls_in_flight_fail_together_when_the_host_dies(
        relay: RelayThread, tmp_path: Path, stack: ExitStack) -> None:
    host = start_host(relay, tmp_path, stack)
    client = relay_client(f"{relay.base_url}/dies?wsdl", binding=NetTcpRelayBinding(),
                          connection_string=f"Endpoint=sb://127.0.0.1:{relay.port}/;"
                          f"SharedAccessKeyName={TEST_KEY_NAME};SharedAccessKey={TEST_KEY};UseTls=false")
    stack.callback(client.transport.close)
    assert client.service.Echo("up") == "up"
    with ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(client.service.Sleep, 30_000) for _ in range(3)]
        for _ in calls:
            host.wait_for("SLEEPING", 20)
        host.process.send_signal(signal.SIGKILL)
        started = time.monotonic()
        done, _ = wait(calls, timeout=20)
        assert len(done) == 3
        assert time.monotonic() - started < 10  # at once: not after the 30 s the calls needed
    errors = [call.exception() for call in calls]
    assert all(isinstance(error, SessionClosed) for error in errors)
    assert len({str(error) for error in errors}) == 1
    start_host(relay, tmp_path, stack)  # a host is back: the next call opens a new session
    assert client.service.Echo("again") == "again"
    assert client.transport.nettcp.sessions_opened == 2
