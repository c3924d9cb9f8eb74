"""The proxy proof: an on-premises network whose only way out is an HTTP proxy.

The on-premises side is a network namespace (``interop_tests/netns.py``: nothing may
come in). Here it gets an egress firewall as well: it may open a connection to the
proxy's port on the outside and nowhere else; a connection to the relay's port is
dropped by a rule of its own whose counter the test reads. Squid runs outside, on the
veth's outer address, next to the relay::

    namespace (on-premises)                          root namespace (outside)
    soaprelay forward --proxy http://OUT:SQUID ──┐   squid on OUT:SQUID ──> relay on OUT:RELAY
    payroll listener, HTTP_PROXY=http://OUT:SQUID ┘   the test's calls ───────> relay
    egress: OUT:SQUID accept; OUT:RELAY counter drop; anything else drop

The calls through the relay succeed, squid logged a tunnel to the relay for each
listener, and the relay rule's counter stays at zero; a direct attempt from inside is
dropped and counted (the rule works). Needs root, like ``test_firewall.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal

import pytest
import requests

from bindings import relay_client
from interop_tests.netns import Namespace, firewalled_namespace, netns_unavailable
from interop_tests.payroll_site import TIMEOUT
from tests.support.procs import Children, child_env
from tests.support.proxies import HttpProxy, squid
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, Relays, RelayThread

pytestmark = pytest.mark.root

EGRESS_TABLE = "soaprelay_egress"
TO_RELAY = "direct to the relay"
ENVELOPE = b"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:p="urn:soap-relay:payroll">
  <soap:Body><p:GetSalary><p:employee_id>7</p:employee_id></p:GetSalary></soap:Body>
</soap:Envelope>"""
SOAP11 = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetSalary"'}


def egress_rules(outside: str, proxy_port: int, relay_port: int) -> str:
    """The namespace's way out: the proxy's port, and nothing else."""
    return f"""
table inet {EGRESS_TABLE} {{
  chain output {{
    type filter hook output priority filter; policy drop;
    ct state established,related accept comment "the rest of allowed connections"
    oif "lo" accept comment "the namespace's own loopback"
    ip daddr {outside} tcp dport {proxy_port} accept comment "the proxy"
    ip daddr {outside} tcp dport {relay_port} counter drop comment "{TO_RELAY}"
    counter drop comment "any other way out"
  }}
}}
"""


def rule_packets(namespace: Namespace, comment: str) -> int:
    listing = subprocess.run(namespace.command(["nft", "-j", "list", "chain", "inet", EGRESS_TABLE, "output"]),
                             capture_output=True, text=True, timeout=30, check=True).stdout
    for item in json.loads(listing)["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment") == comment:
            return next(int(expr["counter"]["packets"]) for expr in rule["expr"] if "counter" in expr)
    raise AssertionError(f"no rule {comment!r} in {namespace.name}")


@dataclass
class ProxiedSite:
    namespace: Namespace
    relay: RelayThread
    proxy: HttpProxy

    @property
    def connection_string(self) -> str:
        return (f"Endpoint=sb://{self.namespace.outside}:{self.relay.port}/;"
                f"SharedAccessKeyName={TEST_KEY_NAME};SharedAccessKey={TEST_KEY};UseTls=false")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedSite]:
    reason = netns_unavailable()
    if reason is not None:
        if os.geteuid() != 0:
            pytest.skip(reason)
        pytest.fail(f"running as root, yet the proxy proof cannot run: {reason}", pytrace=False)
    folder = tmp_path_factory.mktemp("proxy-firewall")
    with ExitStack() as stack:
        namespace = stack.enter_context(firewalled_namespace())
        relay = stack.enter_context(Relays()).in_thread(host=namespace.outside)
        proxy = stack.enter_context(squid(folder, host=namespace.outside, allow=f"{namespace.inside}/32"))
        subprocess.run(namespace.command(["nft", "-f", "-"]), check=True, text=True, timeout=30,
                       input=egress_rules(namespace.outside, proxy.port, relay.port))
        site = ProxiedSite(namespace, relay, proxy)
        children = stack.enter_context(Children(folder))
        python = [sys.executable, "-m"]
        service = children.start("legacy-service", namespace.command(
            [*python, "interop_tests.legacy_service", "--host", "127.0.0.1"]))
        service_port = int(service.wait_for("READY ", TIMEOUT).split()[-1])
        forward = children.start("forward", namespace.command(
            [*python, "soaprelay", "forward", "--connection-string", site.connection_string,
             "--entity", "legacy-payroll", "--to", f"http://127.0.0.1:{service_port}",
             "--proxy", proxy.url]))
        forward.wait_for("soaprelay: forwarding ", TIMEOUT)
        listener = children.start("payroll12", namespace.command(
            [*python, "samples.payroll.listener", "--connection-string", site.connection_string,
             "--service", "payroll12"]), env=child_env({"HTTP_PROXY": proxy.url}))
        listener.wait_for("READY ", TIMEOUT)
        yield site


def test_calls_through_the_relay_succeed_and_no_packet_went_around_the_proxy(site: ProxiedSite) -> None:
    assert rule_packets(site.namespace, TO_RELAY) == 0
    relay = site.relay
    reply = requests.post(f"{relay.base_url}/legacy-payroll", data=ENVELOPE, timeout=TIMEOUT,
                          headers={**SOAP11, "ServiceBusAuthorization": relay.token("legacy-payroll")})
    assert reply.status_code == 200, reply.text
    assert b"<tns:GetSalaryResult>5120.50</tns:GetSalaryResult>" in reply.content
    big = requests.get(f"{relay.base_url}/legacy-payroll?wsdl", timeout=TIMEOUT,
                       headers={"ServiceBusAuthorization": relay.token("legacy-payroll")})
    assert big.status_code == 200 and b"definitions" in big.content
    payroll12 = relay_client(f"{relay.base_url}/payroll12?wsdl",
                             connection_string=site.connection_string, operation_timeout=TIMEOUT,
                             proxy=None)
    assert payroll12.service.GetSalary(12) == Decimal("4975.25")
    assert rule_packets(site.namespace, TO_RELAY) == 0  # not one packet went direct
    peers = established_peers(site.namespace)
    assert peers.count(f"{site.namespace.outside}:{site.proxy.port}") >= 2, peers  # two listeners
    assert f"{site.namespace.outside}:{relay.port}" not in peers


def established_peers(namespace: Namespace) -> list[str]:
    """The remote ``address:port`` of every established TCP connection in the namespace."""
    table = subprocess.run(namespace.command(["ss", "-Htn", "state", "established"]),
                           capture_output=True, text=True, timeout=30, check=True).stdout
    return [line.split()[-1] for line in table.splitlines() if line.strip()]


def test_the_rule_drops_and_counts_a_direct_attempt(site: ProxiedSite) -> None:
    before = rule_packets(site.namespace, TO_RELAY)
    probe = ("import socket, sys\n"
             "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n"
             "except OSError as exc:\n    print(type(exc).__name__)\nelse:\n    print('connected')")
    done = subprocess.run(
        site.namespace.command([sys.executable, "-c", probe, site.namespace.outside, str(site.relay.port)]),
        capture_output=True, text=True, env=child_env(), timeout=TIMEOUT, check=False)
    assert done.stdout.strip() in ("TimeoutError", "PermissionError"), done.stderr
    assert rule_packets(site.namespace, TO_RELAY) > before
