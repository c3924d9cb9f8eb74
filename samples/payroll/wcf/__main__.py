"""A WCF client calls the payroll service through the relay: ``make demo-wcf``.

Needs Mono (Debian: ``apt-get install mono-complete``); ``make demo`` stays
Python only.

1. compiles ``PayrollClient.cs`` with ``mcs`` into a temporary folder;
2. starts a relay on 127.0.0.1 (fresh key, free port) and the ``payroll``
   listener (``PayrollService``, SOAP 1.1, ``BasicHttpRelayBinding``);
3. runs ``mono PayrollClient.exe RELAY_URL TOKEN``: ``GetSalary(7)`` and
   ``GetSalary(99)``, a FaultException ``Client.UnknownEmployee``;
4. stops everything; exits 0 when both calls gave what they should.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bindings.settings import ENV_VAR
from hc.connection_string import ConnectionString
from hc.sas import create_token
from samples.payroll.demo import KEY_NAME, write_config
from samples.payroll.processes import DemoFailure, Processes

SOURCE = Path(__file__).with_name("PayrollClient.cs")
#: What the client must print for the demo to pass.
EXPECTED = ("GetSalary(7)  = 5120.50",
            "GetSalary(99) -> FaultException Client.UnknownEmployee: No employee has the id 99")
TIMEOUT = 60.0


def compile_client(folder: Path) -> Path:
    """``PayrollClient.exe``, built with mcs in ``folder``."""
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        raise DemoFailure("needs Mono's mcs and mono: apt-get install mono-complete")
    program = folder / "PayrollClient.exe"
    argv = ["mcs", "-nologo", "-r:System.ServiceModel", f"-out:{program}", str(SOURCE)]
    built = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if built.returncode != 0:
        raise DemoFailure(f"mcs could not build {SOURCE.name}: {built.stdout}{built.stderr}")
    return program


def run_demo(folder: Path) -> list[str]:
    """Run the demo in ``folder``; the lines the WCF client printed."""
    print("Compiling PayrollClient.cs with mcs ...")
    program = compile_client(folder)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    with Processes(folder) as processes:
        print("Starting the relay and the payroll listener ...")
        base = processes.start_relay(write_config(folder, key))
        cs = ConnectionString.parse(
            f"Endpoint=sb://{base.split('://', 1)[1]}/;SharedAccessKeyName={KEY_NAME};"
            f"SharedAccessKey={key};UseTls=false"
        )
        address = processes.start_listener("payroll", [], {ENV_VAR: str(cs)})
        print(f"  payroll online at {address}")
        print("Calling it with the WCF client (Mono's System.ServiceModel) ...")
        token = create_token(address, KEY_NAME, key, ttl=600)
        called = subprocess.run(["mono", str(program), address, token], capture_output=True,
                                text=True, timeout=TIMEOUT, check=False)
        lines = called.stdout.splitlines()
        for line in lines:
            print(f"  {line}")
        if called.returncode != 0:
            raise DemoFailure(f"the WCF client failed ({called.returncode}): {called.stderr}")
        print("Stopping the listener and the relay ...")
    return lines


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="payroll-wcf-") as tmp:
        try:
            lines = run_demo(Path(tmp))
        except DemoFailure as exc:
            print(f"demo-wcf: FAILED: {exc}", file=sys.stderr)
            return 1
    missing = [line for line in EXPECTED if line not in lines]
    for line in missing:
        print(f"demo-wcf: FAILED: the client did not print {line!r}", file=sys.stderr)
    if missing:
        return 1
    print("Demo OK: a WCF client called the Spyne payroll service through the relay.")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
