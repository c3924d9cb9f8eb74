"""The stand-in for another node's listeners (relay.cluster.remote), without NATS."""

from __future__ import annotations

import dataclasses

from hc.messages import RequestCommand
from relay.cluster.config import Route
from relay.cluster.remote import RemoteListener


def _never(*args: object) -> object:
    raise AssertionError("not asked")


async def test_a_request_keeps_every_field_and_gets_the_nodes_prefix() -> None:
    remote = RemoteListener("pay", "node-a-1f", "ns", _never, _never, Route.NATS, 30.0)  # type: ignore[arg-type]
    command = RequestCommand("ws://h/$hc/pay?sb-hc-action=request&sb-hc-id=9", "9", "/pay?x=1", "PUT",
                             (("A", "1"), ("B", "2")), True, ("10.0.0.1", 4000))
    pending = remote.new_request(command, b"body")
    assert pending.command == dataclasses.replace(command, id="node-a-1f.9")
    assert pending.id == "node-a-1f.9"
