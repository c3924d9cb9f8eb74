"""A firewalled network namespace for the firewall proof (root only).

:func:`firewalled_namespace` creates, for one test, everything it needs and nothing more,
under names unique to the run, and removes it all again (also when the test fails)::

    root namespace ("outside", the relay's side)      namespace NAME ("on-premises")
    ┌───────────────────────────────┐  veth pair      ┌─────────────────────────────────┐
    │ relay on OUTSIDE:port         │─────────────────│ INSIDE, lo                      │
    │ the test's direct calls       │  10.200.N.0/30  │ nftables input: see RULESET     │
    └───────────────────────────────┘                 └─────────────────────────────────┘

The /30 is picked in 10.200.0.0/16 so that it overlaps no address or route the machine
already has; only the two veth ends use it. IPv6 is off on both ends, so no neighbour
discovery traffic reaches the counters.

The namespace's firewall drops every inbound connection attempt and counts them; the
only accept rules are for replies to connections opened from inside, and for its own
loopback. There is no rule for any port.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

__all__ = ["RULESET", "Namespace", "firewalled_namespace", "netns_unavailable"]

TABLE, CHAIN = "soaprelay_fw", "input"
DROP_COMMENT = "inbound connection attempts"
RULESET = f"""
table inet {TABLE} {{
  chain {CHAIN} {{
    type filter hook input priority filter; policy drop;
    ct state established,related accept comment "replies to connections opened from inside"
    iif "lo" accept comment "the namespace's own loopback"
    ct state new counter drop comment "{DROP_COMMENT}"
  }}
}}
"""
_POOL = ipaddress.ip_network("10.200.0.0/16")


def _run(*argv: str, input: str | None = None) -> str:
    """Run a command; its stdout, or an error naming the command and its stderr."""
    done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def netns_unavailable() -> str | None:
    """Why the firewall proof cannot run here, or None when it can.

    It needs root, ``ip`` and ``nft``, and a kernel that lets us create a namespace, move
    one end of a veth pair into it and load an nftables table there: checked by doing
    exactly that once.
    """
    if os.geteuid() != 0:
        return "needs root for network namespaces and nftables (CI runs as root)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (Debian package {package}, in apt-packages.txt)"
    probe = f"srprobe{os.getpid()}{secrets.token_hex(2)}"
    try:
        _run("ip", "netns", "add", probe)
    except RuntimeError as exc:
        return f"network namespaces are not permitted here: {exc}"
    link = f"srp{os.getpid() % 100000}{secrets.token_hex(2)}"
    try:
        _run("ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}p", "netns", probe)
        _run("ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe")
    except RuntimeError as exc:
        return f"veth pairs or nftables do not work in a network namespace here: {exc}"
    finally:
        subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for entry in json.loads(_run("ip", "-j", "-4", "addr")):
        for info in entry.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for route in json.loads(_run("ip", "-j", "-4", "route", "show", "table", "all")):
        dst = route.get("dst", "default")
        if dst != "default":
            used.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    return [net for net in used if isinstance(net, ipaddress.IPv4Network)]


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    candidates = list(_POOL.subnets(new_prefix=30))
    for _ in range(64):
        subnet = candidates[secrets.randbelow(len(candidates))]
        if not any(subnet.overlaps(net) for net in used):
            return subnet
    raise RuntimeError(f"no free /30 in {_POOL} for the veth pair")


def _disable_ipv6(prefix: list[str], interface: str) -> None:
    """Turn IPv6 off on ``interface`` (a kernel without IPv6 needs nothing done)."""
    knob = f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6"
    _run(*prefix, "sh", "-c", f"if [ -e {knob} ]; then echo 1 > {knob}; fi")


@dataclass(frozen=True)
class Namespace:
    """The namespace a test made: its name and the two ends of the veth pair."""

    name: str
    outside: str  # the root namespace's address (where the relay listens)
    inside: str   # the namespace's address

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def drop_count(self) -> int:
        """Packets counted by the drop rule so far."""
        listing = json.loads(_run(*self.command(["nft", "-j", "list", "chain", "inet", TABLE,
                                                 CHAIN])))
        for item in listing["nftables"]:
            rule = item.get("rule")
            if rule and rule.get("comment") == DROP_COMMENT:
                for expr in rule["expr"]:
                    if "counter" in expr:
                        return int(expr["counter"]["packets"])
        raise RuntimeError(f"no counting drop rule in {self.name}")

    def ruleset(self) -> str:
        """The namespace's whole nftables ruleset, as ``nft list ruleset`` prints it."""
        return _run(*self.command(["nft", "list", "ruleset"]))


@contextmanager
def firewalled_namespace() -> Iterator[Namespace]:
    """Create the namespace, veth pair and firewall; remove them on exit."""
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    name, outer, inner = f"soaprelay-fw-{tag}", f"srf{tag}o", f"srf{tag}i"
    subnet = _free_subnet()
    outside, inside = (str(host) for host in subnet.hosts())
    with ExitStack() as cleanup:
        _run("ip", "netns", "add", name)
        cleanup.callback(subprocess.run, ["ip", "netns", "del", name], check=False)
        _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        cleanup.callback(subprocess.run, ["ip", "link", "del", outer], capture_output=True,
                         check=False)
        _run("ip", "link", "set", inner, "netns", name)
        _disable_ipv6([], outer)
        _run("ip", "addr", "add", f"{outside}/30", "dev", outer)
        _run("ip", "link", "set", outer, "up")
        namespace = Namespace(name, outside, inside)
        _disable_ipv6(namespace.command([]), "all")
        _run(*namespace.command(["nft", "-f", "-"]), input=RULESET)
        _run("ip", "-n", name, "addr", "add", f"{inside}/30", "dev", inner)
        _run("ip", "-n", name, "link", "set", inner, "up")
        _run("ip", "-n", name, "link", "set", "lo", "up")
        yield namespace
