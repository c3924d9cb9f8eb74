"""Pure routing decisions: entity lookup, quota, choice, rendezvous ids, flood limiter."""

from __future__ import annotations

import random

import pytest

from hc.entities import EntityKind
from relay.exceptions import BadRequest, ListenerQuotaExceeded, NoListener, RendezvousRejected
from relay.namespace import EntityConfig, NamespaceConfig
from relay.routing import EntityRegistry, FailureLimiter, RendezvousTable, normalize_path

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def registry(*paths: str) -> EntityRegistry[str]:
    return EntityRegistry(NamespaceConfig(entities=tuple(EntityConfig(p) for p in paths)))


def test_longest_prefix_on_segment_boundaries() -> None:
    reg = registry("pay", "pay/roll", "payroll")
    assert _resolved(reg, "/pay/roll/GetSalary") == ("pay/roll", "GetSalary")
    assert _resolved(reg, "/pay/x") == ("pay", "x")
    assert _resolved(reg, "/payroll") == ("payroll", "")
    assert reg.resolve("/paycheck") is None


def _resolved(reg: EntityRegistry[str], path: str) -> tuple[str, str]:
    found = reg.resolve(path)
    assert found is not None
    return found[0].path, found[1]


@pytest.mark.parametrize("bad", ["", "/", "a//b", "a/../b", "a/./b", "a b", "a?b"])
def test_malformed_paths(bad: str) -> None:
    with pytest.raises(BadRequest):
        normalize_path(bad)


def test_quota_and_random_choice() -> None:
    state = registry("e").get("e")
    assert state is not None
    with pytest.raises(NoListener, match="No service is hosted"):
        state.choose(random.Random(1))
    for name in "abc":
        state.add(name)
    picks = {state.choose(random.Random(seed)) for seed in range(30)}
    assert picks == {"a", "b", "c"}
    small = EntityRegistry[str](NamespaceConfig(entities=(EntityConfig("s", max_listeners=1),))).get("s")
    assert small is not None
    small.add("one")
    with pytest.raises(ListenerQuotaExceeded, match="at most 1 listeners"):
        small.add("two")


def test_dynamic_entity_lives_while_it_has_listeners() -> None:
    reg: EntityRegistry[str] = registry()
    state = reg.create_dynamic(EntityConfig.for_kind("dyn", EntityKind.ONEWAY, dynamic=True))
    assert state.config.max_message_size == 64 * 1024
    state.add("l1")
    reg.release(state)
    assert reg.get("dyn") is state
    state.remove("l1")
    reg.release(state)
    assert reg.get("dyn") is None


def test_rendezvous_single_use_and_expiry() -> None:
    clock = Clock()
    table: RendezvousTable[str] = RendezvousTable(30, clock=clock)
    ident = table.issue("request-1")
    assert len(ident) >= 22
    assert table.take(ident) == "request-1"
    with pytest.raises(RendezvousRejected):
        table.take(ident)
    late = table.issue("request-2")
    clock.now += 31
    with pytest.raises(RendezvousRejected):
        table.take(late)
    with pytest.raises(BadRequest):
        table.take("bad id\x00")
    with pytest.raises(BadRequest):
        table.take(None)


def test_expired_ids_are_swept_at_most_once_a_second() -> None:
    clock = Clock()
    table: RendezvousTable[str] = RendezvousTable(30, clock=clock)
    table.issue("a")  # sweeps (nothing to do); the next sweep is due a second later
    clock.now += 0.5
    b = table.issue("b")
    clock.now += 29.7  # "a" expired
    table.issue("c")  # sweeps: "a" goes
    assert len(table) == 2
    clock.now += 0.4  # "b" expired, but the next sweep is not due yet
    table.issue("d")
    assert len(table) == 3
    with pytest.raises(RendezvousRejected):  # an expired id is refused all the same
        table.take(b)
    clock.now += 0.7
    table.issue("e")  # sweeps again
    assert len(table) == 3


def test_ids_are_unguessable() -> None:
    table: RendezvousTable[int] = RendezvousTable()
    ids = {table.issue(i) for i in range(1000)}
    assert len(ids) == 1000


def test_failure_limiter_only_counts_failures_per_client() -> None:
    clock = Clock()
    limiter = FailureLimiter(burst=5, per_second=1, clock=clock)
    for _ in range(5):
        assert limiter.allowed("flooder")
        limiter.record_failure("flooder")
    assert not limiter.allowed("flooder")
    assert limiter.allowed("someone-else")
    clock.now += 1.0
    assert limiter.allowed("flooder")
