"""Hybrid mode across a real network boundary: the NetTcp host runs in a network namespace
of its own (``interop_tests/netns.py``), the relay and the zeep client outside.

- direct path allowed (the namespace's firewall accepts connections from outside): the
  session moves onto the direct connection, and the calls' bytes no longer cross the
  relay -- counted by nftables on the host's connection to the relay;
- direct path blocked (the firewall drops inbound connections, as on-premises): the
  attempt fails, the session stays relayed and works, and the bytes go through the relay.

Needs root (CI runs as root); elsewhere skipped with the reason, and as root a machine that
cannot make the namespace fails instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bindings import ConnectionMode, NetTcpRelayBinding, relay_client
from interop_tests.netns import TABLE, Namespace, firewalled_namespace, netns_unavailable
from interop_tests.test_firewall import _start
from tests.support.proxies import PROXY_VARIABLES
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, Relays, RelayThread

pytestmark = pytest.mark.root

COUNTERS = "soaprelay_hybrid_count"
#: Each call carries this much text each way.
PAYLOAD = "x" * 20_000
CALLS = 20
HYBRID = NetTcpRelayBinding(connection_mode=ConnectionMode.HYBRID)


@dataclass
class Site:
    namespace: Namespace
    relay: RelayThread

    @property
    def connection_string(self) -> str:
        return (f"Endpoint=sb://{self.namespace.outside}:{self.relay.port}/;"
                f"SharedAccessKeyName={TEST_KEY_NAME};SharedAccessKey={TEST_KEY};UseTls=false")

    def relay_bytes(self) -> int:
        """Bytes on the host's connections to the relay, both ways, counted in the namespace."""
        listing = json.loads(subprocess.run(
            self.namespace.command(["nft", "-j", "list", "table", "inet", COUNTERS]),
            capture_output=True, text=True, check=True, timeout=30).stdout)
        return sum(expr["counter"]["bytes"] for item in listing["nftables"]
                   if "rule" in item for expr in item["rule"]["expr"] if "counter" in expr)


def _count_relay_traffic(site: Site) -> None:
    port, outside = site.relay.port, site.namespace.outside
    ruleset = f"""
table inet {COUNTERS} {{
  chain out {{
    type filter hook output priority filter; policy accept;
    ip daddr {outside} tcp dport {port} counter
  }}
  chain in {{
    type filter hook input priority filter - 10; policy accept;
    ip saddr {outside} tcp sport {port} counter
  }}
}}
"""
    subprocess.run(site.namespace.command(["nft", "-f", "-"]), input=ruleset, text=True,
                   check=True, timeout=30)


@pytest.fixture
def site(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    reason = netns_unavailable()
    if reason is not None:
        if os.geteuid() != 0:
            pytest.skip(reason)
        pytest.fail(f"running as root, yet the namespace cannot be made: {reason}", pytrace=False)
    with ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        for variable in PROXY_VARIABLES:
            patch.delenv(variable, raising=False)
            patch.delenv(variable.upper(), raising=False)
        namespace = stack.enter_context(firewalled_namespace())
        if request.param == "allowed":
            subprocess.run(namespace.command(
                ["nft", "insert", "rule", "inet", TABLE, "input", "ip", "saddr", namespace.outside,
                 "ct", "state", "new", "accept", "comment", '"the direct path, allowed"']),
                check=True, timeout=30)
        relay = stack.enter_context(Relays()).in_thread(host=namespace.outside)
        here = Site(namespace, relay)
        _count_relay_traffic(here)
        host = _start("nettcp-host", namespace.command(
            [sys.executable, "-m", "tests.bindings.nettcp.host_process", "--connection-string",
             here.connection_string, "--entity", "hybrid", "--hybrid-host", namespace.inside]),
            tmp_path, stack)
        host.wait_for("READY ", 60)
        yield here


def _client(site: Site) -> Any:
    client = relay_client(f"{site.relay.base_url}/hybrid?wsdl", binding=HYBRID,
                          connection_string=site.connection_string)
    assert client.service.Echo("hello") == "hello"
    session = client.transport.nettcp
    client.transport.background.run(asyncio.wait_for(session.hybrid_settled.wait(), 15))
    return client


def _calls(client: Any) -> None:
    for _ in range(CALLS):
        assert client.service.Echo(PAYLOAD) == PAYLOAD


@pytest.mark.parametrize("site", ["allowed"], indirect=True)
def test_with_the_direct_path_allowed_the_calls_leave_the_relay(site: Site) -> None:
    client = _client(site)
    try:
        assert client.transport.nettcp.path == "direct"
        before = site.relay_bytes()
        _calls(client)
        moved = site.relay_bytes() - before
        assert moved < len(PAYLOAD)  # keep-alives at most: not one call's worth
        assert client.transport.nettcp.channel.sent["direct"] >= CALLS
    finally:
        client.transport.close()


@pytest.mark.parametrize("site", ["blocked"], indirect=True)
def test_with_the_direct_path_blocked_the_session_stays_relayed(site: Site) -> None:
    dropped = site.namespace.drop_count()
    client = _client(site)
    try:
        assert client.transport.nettcp.path == "relayed"
        assert site.namespace.drop_count() > dropped  # the attempt was made, and dropped
        before = site.relay_bytes()
        _calls(client)
        assert site.relay_bytes() - before > 2 * CALLS * len(PAYLOAD)  # both ways, relayed
        assert client.transport.nettcp.sessions_opened == 1
    finally:
        client.transport.close()
