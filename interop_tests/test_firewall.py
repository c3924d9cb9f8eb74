"""The firewall proof: a service behind a firewall that lets nothing in is still callable.

The on-premises side runs in a network namespace of its own (``interop_tests/netns.py``),
joined to the relay's side by a veth pair, with an nftables input chain that drops and
counts every inbound connection attempt and has no accept rule for any port. Inside it:

- the payroll service as a plain SOAP server on a real TCP port
  (``python -m interop_tests.legacy_service``), hosted behind the relay by
  ``soaprelay forward`` (entity ``legacy-payroll``);
- ``python -m samples.payroll.listener --service payroll12`` (a ``RelayServiceHost``, which
  has no port at all).

The relay runs in the test process, on the outside end of the veth pair. The test shows:
a direct call from outside to the service's port gets no answer and the drop counter
rises; the same call through the relay succeeds and the counter does not move (the only
connections are the ones the namespace opened itself); the ruleset has no inbound rule.

Needs root (CI runs as root); elsewhere it is skipped with the reason. As root, a
machine that cannot make the namespace, the veth pair or the nftables table fails the
tests instead, so a broken CI environment cannot pass by skipping them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from bindings import WS2007HttpRelayBinding, relay_client
from interop_tests.netns import Namespace, firewalled_namespace, netns_unavailable
from interop_tests.payroll_site import TIMEOUT
from samples.payroll.processes import ROOT, Child
from tests.support.proxies import PROXY_VARIABLES
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, Relays, RelayThread

pytestmark = pytest.mark.root

ENVELOPE = b"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:p="urn:soap-relay:payroll">
  <soap:Body><p:GetSalary><p:employee_id>7</p:employee_id></p:GetSalary></soap:Body>
</soap:Envelope>"""
SOAP11 = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetSalary"'}
#: How long the direct call waits for a SYN-ACK that never comes (SYN retransmits at 1 s).
DIRECT_TIMEOUT = 3.0


@dataclass
class OnPremises:
    namespace: Namespace
    relay: RelayThread
    service_port: int

    @property
    def direct_url(self) -> str:
        return f"http://{self.namespace.inside}:{self.service_port}/"

    @property
    def connection_string(self) -> str:
        return (f"Endpoint=sb://{self.namespace.outside}:{self.relay.port}/;"
                f"SharedAccessKeyName={TEST_KEY_NAME};SharedAccessKey={TEST_KEY};UseTls=false")


def _child_env() -> dict[str, str]:
    """Our environment without proxy settings (nothing here may go through a proxy)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


def _start(name: str, argv: list[str], folder: Path, cleanup: ExitStack) -> Child:
    """Start a child; it is stopped when ``cleanup`` closes, whatever happened."""
    stderr = folder / f"{name}.err"
    with stderr.open("w", encoding="utf-8") as err:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=_child_env(), text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
        )
    child = Child(name, process, stderr)
    pump = threading.Thread(target=child.pump, name=f"{name}-stdout", daemon=True)
    pump.start()
    cleanup.callback(_stop, process, pump)
    return child


def _stop(process: subprocess.Popen[str], pump: threading.Thread) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    pump.join(10)  # stdout reaches end of file once the process is gone
    assert process.stdout is not None
    process.stdout.close()


@pytest.fixture(scope="module")
def onprem(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnPremises]:
    reason = netns_unavailable()
    if reason is not None:
        if os.geteuid() != 0:
            pytest.skip(reason)
        pytest.fail(f"running as root, yet the firewall proof cannot run: {reason}", pytrace=False)
    folder = tmp_path_factory.mktemp("firewall")
    with ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        for variable in PROXY_VARIABLES:  # requests and zeep in this process: no proxy either
            patch.delenv(variable, raising=False)
            patch.delenv(variable.upper(), raising=False)
        namespace = stack.enter_context(firewalled_namespace())
        relay = stack.enter_context(Relays()).in_thread(host=namespace.outside)
        python = [sys.executable, "-m"]
        service = _start("legacy-service", namespace.command(
            [*python, "interop_tests.legacy_service", "--host", "0.0.0.0"]), folder, stack)
        site = OnPremises(namespace, relay, int(service.wait_for("READY ", TIMEOUT)))
        cs = site.connection_string
        forward = _start("forward", namespace.command(
            [*python, "soaprelay", "forward", "--connection-string", cs, "--entity", "legacy-payroll",
             "--to", f"http://127.0.0.1:{site.service_port}"]), folder, stack)
        forward.wait_for("soaprelay: forwarding ", TIMEOUT)
        listener = _start("payroll12", namespace.command(
            [*python, "samples.payroll.listener", "--connection-string", cs,
             "--service", "payroll12"]), folder, stack)
        listener.wait_for("READY ", TIMEOUT)
        yield site


def test_the_namespace_has_no_inbound_rule(onprem: OnPremises) -> None:
    ruleset = onprem.namespace.ruleset()
    assert "policy drop;" in ruleset
    accepts = [line.split(" comment ")[0].strip()
               for line in ruleset.splitlines() if " accept" in line]
    assert accepts == ['ct state established,related accept', 'iif "lo" accept']
    assert "dport" not in ruleset and ruleset.count("table ") == 1


def test_a_direct_call_is_dropped_and_counted(onprem: OnPremises) -> None:
    # Control: inside the namespace the service answers on the very address and port.
    probe = ("import sys, urllib.request; "
             "print(urllib.request.urlopen(sys.argv[1], timeout=10).status)")
    inside = subprocess.run(
        onprem.namespace.command([sys.executable, "-c", probe, f"{onprem.direct_url}?wsdl"]),
        capture_output=True, text=True, env=_child_env(), timeout=TIMEOUT, check=False,
    )
    assert inside.stdout.strip() == "200", inside.stderr

    before = onprem.namespace.drop_count()
    with pytest.raises(requests.exceptions.ConnectTimeout):
        requests.post(onprem.direct_url, data=ENVELOPE, headers=SOAP11,
                      timeout=(DIRECT_TIMEOUT, DIRECT_TIMEOUT))
    assert onprem.namespace.drop_count() > before


def test_the_same_call_through_the_relay_succeeds(onprem: OnPremises) -> None:
    before = onprem.namespace.drop_count()
    reply = requests.post(
        f"{onprem.relay.base_url}/legacy-payroll", data=ENVELOPE,
        headers={**SOAP11, "ServiceBusAuthorization": onprem.relay.token("legacy-payroll")},
        timeout=TIMEOUT,
    )
    assert reply.status_code == 200
    assert b"<tns:GetSalaryResult>5120.50</tns:GetSalaryResult>" in reply.content

    legacy = relay_client(f"{onprem.relay.base_url}/legacy-payroll?wsdl",
                          connection_string=onprem.connection_string, operation_timeout=TIMEOUT)
    assert legacy.service.GetSalary(8) == Decimal("5480.00")
    payroll12 = relay_client(f"{onprem.relay.base_url}/payroll12?wsdl",
                             binding=WS2007HttpRelayBinding(),
                             connection_string=onprem.connection_string,
                             operation_timeout=TIMEOUT)
    assert payroll12.service.GetSalary(12) == Decimal("4975.25")
    assert onprem.namespace.drop_count() == before  # no connection was ever made inwards
