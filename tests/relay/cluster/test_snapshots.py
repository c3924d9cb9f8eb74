"""The console's parts over NATS: asks and answers parsed once, everything malformed,
foreign or too large refused with MessageError; the merged views. Pure: no sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.cluster.messages import MessageError
from relay.cluster.snapshots import (
    MAX_MESSAGE,
    PartAnswer,
    PartAsk,
    PartKind,
    parse_part_answer,
    parse_part_ask,
)
from relay.observe.nodes import (
    CursorError,
    format_cursor,
    merge_calls,
    merge_charts,
    merge_namespace,
    parse_cursor,
)

pytestmark = pytest.mark.usefixtures("no_sockets")

ROW = {"seq": 3, "time": 10.0, "entity": "echo", "path": "/echo"}
NS_PART = {"now": 5.0, "presence": [{"time": "2024-01-01T00:00:01.000Z", "node": "n1"}],
           "entities": [{"path": "echo", "kind": "requestresponse", "listeners": [{"id": "L1"}]}]}


def test_asks_round_trip() -> None:
    for ask in (
        PartAsk("test", PartKind.NAMESPACE, "node0"),
        PartAsk("test", PartKind.CALLS, "node0", {"node1": 12, "node2": 0}),
        PartAsk("test", PartKind.CALL, "node0", {}, "node1", 7),
    ):
        assert parse_part_ask(ask.serialize(), "test") == ask


@pytest.mark.parametrize("data", [
    b"not json",
    b'{"v":2,"ns":"test","kind":"calls","origin":"n"}',
    b'{"v":1,"ns":"other","kind":"namespace","origin":"n"}',  # foreign namespace
    b'{"v":1,"ns":"test","kind":"everything","origin":"n"}',
    b'{"v":1,"ns":"test","kind":"namespace","origin":"a.b"}',  # not a node name
    b'{"v":1,"ns":"test","kind":"calls","origin":"n","after":[1]}',
    b'{"v":1,"ns":"test","kind":"calls","origin":"n","after":{"x":-1}}',
    b'{"v":1,"ns":"test","kind":"calls","origin":"n","after":{"a b":1}}',
    b'{"v":1,"ns":"test","kind":"call","origin":"n","seq":1}',  # whose call?
    b'{"v":1,"ns":"test","kind":"namespace","origin":"n"}\nextra',
])
def test_malformed_or_foreign_asks_are_refused(data: bytes) -> None:
    with pytest.raises(MessageError):
        parse_part_ask(data, "test")


def test_answers_round_trip_and_are_checked_per_view() -> None:
    answer = PartAnswer("test", PartKind.CALLS, "node1", {"calls": [ROW], "trimmed": False})
    assert parse_part_answer(answer.serialize(), "test", PartKind.CALLS) == answer
    gone = PartAnswer("test", PartKind.CALL, "node1", None)
    assert parse_part_answer(gone.serialize(), "test", PartKind.CALL) == gone
    bad = [
        PartAnswer("other", PartKind.CALLS, "node1", {"calls": []}),  # foreign namespace
        PartAnswer("test", PartKind.CHARTS, "node1", {"now": 1, "entities": {}}),  # another view
        PartAnswer("test", PartKind.CALLS, "node1", {"calls": [{"seq": "1"}]}),
        PartAnswer("test", PartKind.CALLS, "node1", {"calls": {"seq": 1}}),
        PartAnswer("test", PartKind.CALLS, "node1", None),
        PartAnswer("test", PartKind.NAMESPACE, "node1", {**NS_PART, "entities": [{"path": ""}]}),
        PartAnswer("test", PartKind.NAMESPACE, "node1", {**NS_PART, "presence": "x"}),
    ]
    for message in bad:
        with pytest.raises(MessageError):
            parse_part_answer(message.serialize(), "test", PartKind.CALLS
                              if message.kind is not PartKind.NAMESPACE else PartKind.NAMESPACE)
    charts = PartAnswer("test", PartKind.CHARTS, "n", {"now": 1, "entities": {"e": [[0, 1, -1]]}})
    with pytest.raises(MessageError):
        parse_part_answer(charts.serialize(), "test", PartKind.CHARTS)


def test_an_answer_past_the_bound_is_refused() -> None:
    row = {**ROW, "operation": "x" * 1000}
    big = PartAnswer("test", PartKind.CALLS, "node1", {"calls": [row] * (MAX_MESSAGE // 1000)})
    assert len(big.serialize()) > MAX_MESSAGE
    with pytest.raises(MessageError, match="bytes"):
        parse_part_answer(big.serialize(), "test", PartKind.CALLS)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_message_error(data: bytes) -> None:
    for parse in (lambda: parse_part_ask(data, "test"),
                  lambda: parse_part_answer(data, "test", PartKind.CALLS)):
        try:
            parse()
        except MessageError:
            pass


def test_cursors() -> None:
    assert parse_cursor("12", "") == {"": 12}
    assert parse_cursor("", "node0") == {"node0": 0}
    assert parse_cursor("node0:12,node1:7", "node0") == {"node0": 12, "node1": 7}
    assert format_cursor({"node1": 7, "node0": 12}) == "node0:12,node1:7"
    assert format_cursor({"": 4}) == "4"
    for bad in ("node0:x", "a.b:1", "node0:1,,", ",".join(f"n{i}:1" for i in range(1025))):
        with pytest.raises(CursorError):
            parse_cursor(bad, "node0")


def test_merged_views_label_each_row_and_list_missing_nodes() -> None:
    calls = merge_calls("node0", {"node0": 1, "node2": 9},
                        {"calls": [{**ROW, "time": 12.0}]},
                        {"node1": {"calls": [ROW]}, "node2": None})
    assert [(c["node"], c["time"]) for c in calls["calls"]] == [("node1", 10.0), ("node0", 12.0)]
    assert parse_cursor(calls["cursor"], "node0") == {"node0": 3, "node1": 3, "node2": 9}
    assert calls["nodes"] == [{"name": "node0", "state": "here"}, {"name": "node1", "state": "ok"},
                              {"name": "node2", "state": "missing"}]
    ns = merge_namespace("node0", json.loads(json.dumps(NS_PART)), {"node1": NS_PART, "node2": None})
    assert [entity["path"] for entity in ns["entities"]] == ["echo"]
    assert [(listener["id"], listener["node"]) for listener in ns["entities"][0]["listeners"]] == [
        ("L1", "node0"), ("L1", "node1")]
    charts = merge_charts("node0", {"now": 1, "entities": {"e": [(0, 1, 0), (10, 2, 1)]}},
                          {"node1": {"now": 1, "entities": {"e": [[10, 3, 1]], "f": [[0, 1, 1]]}}})
    assert charts["entities"] == {"e": [(0, 1, 0), (10, 5, 2)], "f": [(0, 1, 1)]}
