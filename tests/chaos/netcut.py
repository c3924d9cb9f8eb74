"""Break the network of a test's own namespace with nftables (no FIN, no RST, no netem).

Everything lives in one table, ``inet soaprelay_chaos``, inside the namespace the test
created (:func:`interop_tests.netns.firewalled_namespace`): the namespace's loopback is
left alone, every other packet in or out is dropped (a silent cut) or dropped at random
(loss).  No pre-existing interface, address or ruleset is touched.
"""

from __future__ import annotations

import subprocess

from interop_tests.netns import Namespace

__all__ = ["cut", "heal", "lossy"]

TABLE = "soaprelay_chaos"


def _apply(namespace: Namespace, drop: str) -> None:
    heal(namespace)
    ruleset = f"""
table inet {TABLE} {{
  chain in {{
    type filter hook input priority -10; policy accept;
    iifname != "lo" {drop}
  }}
  chain out {{
    type filter hook output priority -10; policy accept;
    oifname != "lo" {drop}
  }}
}}
"""
    subprocess.run(namespace.command(["nft", "-f", "-"]), input=ruleset, text=True,
                   check=True, capture_output=True, timeout=30)


def cut(namespace: Namespace) -> None:
    """Drop every packet on the namespace's veth end, both ways."""
    _apply(namespace, "drop")


def lossy(namespace: Namespace, percent: int) -> None:
    """Drop ``percent`` % of the packets on the veth end at random, both ways."""
    _apply(namespace, f"numgen random mod 100 < {percent} drop")


def heal(namespace: Namespace) -> None:
    """Remove the table (whether or not it is there)."""
    subprocess.run(namespace.command(["nft", "delete", "table", "inet", TABLE]),
                   capture_output=True, check=False, timeout=30)
