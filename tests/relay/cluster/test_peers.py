"""The peer table: what other nodes' heartbeats said, forgotten when they fall silent.
Pure: an injected clock, no sockets."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from hc.entities import Discovery
from relay.cluster.messages import EntityFact, Heartbeat
from relay.cluster.peers import MAX_PEERS, PEER_TTL, PeerTable
from tests.support.clock import ManualClock

pytestmark = pytest.mark.usefixtures("no_sockets")


def beat(node: str, *facts: EntityFact, leaving: bool = False) -> Heartbeat:
    return Heartbeat("ns", node, f"http://{node}:1", facts, leaving)


def test_counts_sum_over_nodes_and_silent_nodes_are_forgotten() -> None:
    clock = ManualClock()
    table = PeerTable("me", clock)
    table.heard(beat("a", EntityFact("pay", 2), EntityFact("ev", 1, discovery=Discovery.PUBLIC)))
    clock.advance(PEER_TTL / 2)
    table.heard(beat("b", EntityFact("pay", 3)))
    assert table.listeners("pay") == 5
    assert sorted(table.holders("pay")) == ["a", "b"]
    assert table.facts()["pay"].listeners == 5
    clock.advance(PEER_TTL / 2 + 0.01)
    assert table.listeners("pay") == 3 and table.holders("ev") == []
    assert [p.name for p in table] == ["b"]


def test_own_heartbeats_and_leaving_nodes() -> None:
    table = PeerTable("me", ManualClock())
    assert not table.heard(beat("me", EntityFact("pay", 9)))
    table.heard(beat("a", EntityFact("pay", 1)))
    table.heard(beat("a", leaving=True))
    assert len(table) == 0 and table.fact("pay") is None


def test_the_table_is_bounded() -> None:
    clock = ManualClock()
    table = PeerTable("me", clock)
    for i in range(MAX_PEERS):
        assert table.heard(beat(f"n{i}"))
    assert not table.heard(beat("one-too-many"))
    assert table.heard(beat("n0"))  # a known node is still heard
    clock.advance(PEER_TTL + 1)
    assert table.heard(beat("one-too-many"))  # room again once the silent ones went


def test_dynamic_entities_of_other_nodes_resolve_by_longest_prefix() -> None:
    table = PeerTable("me", ManualClock())
    table.heard(beat("a", EntityFact("made", 1, dynamic=True, requires_client_authorization=False,
                                     max_message_size=1000, timeout=7.0),
                     EntityFact("configured", 2)))
    found = table.dynamic_entity("/made/op/x")
    assert found is not None
    config, rest = found
    assert (config.path, rest, config.dynamic, config.requires_client_authorization) == (
        "made", "op/x", True, False)
    assert (config.max_message_size, config.timeout, config.rules) == (1000, 7.0, ())
    assert table.dynamic_entity("configured/op") is None  # a configured entity is every node's own
    assert table.dynamic_entity("other") is None


def test_pick_chooses_a_holder_weighted_by_its_listeners() -> None:
    table = PeerTable("me", ManualClock())
    table.heard(Heartbeat("ns", "few", "http://few:1", (EntityFact("pay", 1),), ticket="t1"))
    table.heard(Heartbeat("ns", "many", "http://many:1", (EntityFact("pay", 9),), ticket="t2"))
    table.heard(beat("none", EntityFact("pay", 0)))
    rng = random.Random(7)
    picked = Counter(peer.name for peer in (table.pick("pay", rng) for _ in range(2000)) if peer)
    assert set(picked) == {"few", "many"}
    assert 0.05 < picked["few"] / 2000 < 0.15  # 1 in 10
    assert table.pick("other", rng) is None
    only = table.pick("pay", random.Random(1))
    assert only is not None and only.ticket in ("t1", "t2") and only.ticket not in repr(only)
