"""The console's views over a cluster: each node's part merged, each row labelled. No I/O.

The node the console is signed in to has its own part (``relay.observe.snapshot``)
and the other nodes' parts, gathered over NATS (``relay.cluster.console``): a
node that did not answer in time is None here, and shows as *missing* in the
view's ``nodes`` list, never as an error.  A single relay is a cluster of one
node with no name: its views are what they always were, plus a ``node`` of "".

The inspector's cursor names one call number per node, ``node0:12,node1:7``
(a single relay's is the plain number it always was).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "NodeParts", "format_cursor", "merge_calls", "merge_charts", "merge_namespace",
    "node_list", "parse_cursor",
]

#: Each other node's part, by node name: None when it did not answer in time.
NodeParts = Mapping[str, "dict[str, Any] | None"]
#: Presence events the merged view keeps (the newest).
PRESENCE = 200
_CURSOR_ITEM = re.compile(r"^([A-Za-z0-9_-]{1,64}):([0-9]{1,18})$")
_MAX_CURSOR_ITEMS = 1024


class CursorError(ValueError):
    """A cursor that is not ``NODE:SEQ[,NODE:SEQ...]`` nor a number."""


def parse_cursor(text: str, own: str) -> dict[str, int]:
    """``"12"`` (a single relay's, or this node's) or ``"node0:12,node1:7"``."""
    text = text.strip() or "0"
    if text.isdigit() and len(text) <= 18:
        return {own: int(text)}
    items = text.split(",")
    if len(items) > _MAX_CURSOR_ITEMS:
        raise CursorError(f"a cursor names at most {_MAX_CURSOR_ITEMS} nodes")
    cursor: dict[str, int] = {}
    for item in items:
        match = _CURSOR_ITEM.match(item)
        if match is None:
            raise CursorError(f"{item[:40]!r} is not NODE:SEQ")
        cursor[match[1]] = int(match[2])
    return cursor


def format_cursor(cursor: Mapping[str, int]) -> str:
    if set(cursor) <= {""}:
        return str(cursor.get("", 0))
    return ",".join(f"{node}:{seq}" for node, seq in sorted(cursor.items()) if node)


def node_list(own: str, others: NodeParts) -> list[dict[str, str]]:
    """This node ("here"), then the others: "ok" or "missing"."""
    nodes = [{"name": own, "state": "here"}] if own else []
    for name in sorted(others):
        nodes.append({"name": name, "state": "missing" if others[name] is None else "ok"})
    return nodes


def merge_namespace(own: str, local: dict[str, Any], others: NodeParts) -> dict[str, Any]:
    """One entity list (every node's listeners, each with its ``node``), one presence
    history (newest :data:`PRESENCE`, oldest first)."""
    entities: dict[str, dict[str, Any]] = {}
    presence: list[dict[str, Any]] = []
    for node, part in [(own, local), *sorted(others.items())]:
        if part is None:
            continue
        for entity in part["entities"]:
            merged = entities.get(entity["path"])
            if merged is None:
                merged = entities[entity["path"]] = {**entity, "listeners": []}
            merged["listeners"] += [{**info, "node": node} for info in entity["listeners"]]
        presence += [{**event, "node": event.get("node") or node} for event in part["presence"]]
    presence.sort(key=lambda event: str(event.get("time", "")))
    return {"entities": list(entities.values()), "presence": presence[-PRESENCE:],
            "now": local["now"], "nodes": node_list(own, others)}


def merge_charts(own: str, local: dict[str, Any], others: NodeParts) -> dict[str, Any]:
    """Calls and errors per entity, summed slot by slot over the nodes."""
    totals: dict[str, dict[int, list[int]]] = {}
    for part in [local, *others.values()]:
        if part is None:
            continue
        for name, series in part["entities"].items():
            slots = totals.setdefault(name, {})
            for start, calls, errors in series:
                slot = slots.setdefault(start, [0, 0])
                slot[0] += calls
                slot[1] += errors
    entities = {name: [(start, c, e) for start, (c, e) in sorted(slots.items())][-90:]
                for name, slots in totals.items()}
    return {"now": local["now"], "entities": entities, "nodes": node_list(own, others)}


def merge_calls(
    own: str, cursor: Mapping[str, int], local: dict[str, Any], others: NodeParts
) -> dict[str, Any]:
    """Every node's new calls, each with its ``node``, oldest first; the next cursor."""
    calls: list[dict[str, Any]] = []
    after = dict(cursor)
    trimmed = False
    for node, part in [(own, local), *others.items()]:
        if part is None:
            continue
        trimmed = trimmed or bool(part.get("trimmed"))
        rows = [{**row, "node": node} for row in part["calls"]]
        if rows:
            after[node] = max(row["seq"] for row in rows)
        calls += rows
    calls.sort(key=lambda row: row["time"])
    return {"calls": calls, "cursor": format_cursor(after), "trimmed": trimmed,
            "nodes": node_list(own, others)}
