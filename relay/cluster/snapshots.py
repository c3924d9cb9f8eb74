"""What crosses NATS for the console: a node asks, each node answers with its part. No I/O.

On ``soaprelay.<ns>.console`` (every node subscribes, no queue group)::

    {"v":1,"ns":"test","kind":"calls","origin":"node0","after":{"node1":12}}
    {"v":1,"ns":"test","kind":"calls","node":"node1","part":{"calls":[...],"trimmed":false}}

``kind`` is one of the console's views (:class:`PartKind`); a ``call`` ask names
the one node (``node``) that holds the call number ``seq``.  Parts are the
console's own JSON (``relay.observe.snapshot``): bounded there, refused here
past :data:`MAX_MESSAGE` bytes, and checked for the fields the merging reads
(``relay.observe.nodes``), so a malformed or foreign answer is dropped (and
logged by the caller), never shown.  No secret is in any of them: captured
headers and bodies are masked before they are stored, and exist only where
capture is on.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relay.cluster.messages import MessageError, _count, _head, _namespace, _split, _text

__all__ = ["MAX_MESSAGE", "PartAnswer", "PartAsk", "PartKind", "parse_part_answer",
           "parse_part_ask"]

#: Bytes of one answer at most (a part is bounded at 256 KiB by its node).
MAX_MESSAGE = 300 * 1024
_NODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_CURSOR = 1024


class PartKind(enum.Enum):
    """Which view's part is asked for."""

    NAMESPACE = "namespace"
    CHARTS = "charts"
    CALLS = "calls"
    CALL = "call"


def _node(obj: Mapping[str, Any], key: str) -> str:
    name = _text(obj, key)
    if not _NODE.match(name):
        raise MessageError(f"{key!r} is not a node name")
    return name


@dataclass(frozen=True)
class PartAsk:
    """A node's console asks the others for their part of view ``kind``.

    ``after``: per node, the newest call number already shown (``calls``);
    ``node`` and ``seq``: the node that holds call ``seq`` (``call``).
    """

    namespace: str
    kind: PartKind
    origin: str
    after: Mapping[str, int] = field(default_factory=dict)
    node: str = ""
    seq: int = 0

    def serialize(self) -> bytes:
        fields: dict[str, Any] = {"ns": self.namespace, "kind": self.kind.value,
                                  "origin": self.origin}
        if self.kind is PartKind.CALLS:
            fields["after"] = dict(self.after)
        if self.kind is PartKind.CALL:
            fields["node"], fields["seq"] = self.node, self.seq
        return _head(fields, None)


def parse_part_ask(data: bytes, namespace: str) -> PartAsk:
    obj, rest = _split(data)
    _namespace(obj, namespace)
    if rest:
        raise MessageError("bytes after an ask for a console part")
    try:
        kind = PartKind(obj.get("kind"))
    except ValueError as exc:
        raise MessageError(str(exc)) from exc
    after: dict[str, int] = {}
    if kind is PartKind.CALLS:
        given = obj.get("after")
        if not isinstance(given, dict) or len(given) > _MAX_CURSOR:
            raise MessageError(f"'after' must be an object of at most {_MAX_CURSOR} nodes")
        after = {_node({"n": n}, "n"): _count(given, n) for n in given}
    node, seq = "", 0
    if kind is PartKind.CALL:
        node, seq = _node(obj, "node"), _count(obj, "seq")
    return PartAsk(namespace, kind, _node(obj, "origin"), after, node, seq)


@dataclass(frozen=True)
class PartAnswer:
    """Node ``node``'s part of view ``kind`` (``part`` None: a call it no longer has)."""

    namespace: str
    kind: PartKind
    node: str
    part: dict[str, Any] | None

    def serialize(self) -> bytes:
        return _head({"ns": self.namespace, "kind": self.kind.value, "node": self.node,
                      "part": self.part}, None)


def parse_part_answer(data: bytes, namespace: str, kind: PartKind) -> PartAnswer:
    """An answer of view ``kind`` for ``namespace``, with the fields the merging reads."""
    if len(data) > MAX_MESSAGE:
        raise MessageError(f"a console part of {len(data)} bytes (at most {MAX_MESSAGE})")
    obj, rest = _split(data)
    _namespace(obj, namespace)
    if rest or obj.get("kind") != kind.value:
        raise MessageError(f"not an answer of a {kind.value} part")
    part = obj.get("part")
    if part is None and kind is PartKind.CALL:
        return PartAnswer(namespace, kind, _node(obj, "node"), None)
    if not isinstance(part, dict):
        raise MessageError("'part' must be an object")
    _CHECKS[kind](part)
    return PartAnswer(namespace, kind, _node(obj, "node"), part)


def _objects(value: object, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise MessageError(f"{what} must be a list of objects")
    return value


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_namespace(part: dict[str, Any]) -> None:
    if not _number(part.get("now")):
        raise MessageError("'now' must be a time")
    for entity in _objects(part.get("entities"), "'entities'"):
        _text(entity, "path")
        _objects(entity.get("listeners"), "an entity's 'listeners'")
    _objects(part.get("presence"), "'presence'")


def _check_charts(part: dict[str, Any]) -> None:
    entities = part.get("entities")
    if not _number(part.get("now")) or not isinstance(entities, dict):
        raise MessageError("a charts part needs 'now' and 'entities'")
    for series in entities.values():
        if not isinstance(series, list) or not all(
            isinstance(s, list) and len(s) == 3 and all(_count({"c": c}, "c") >= 0 for c in s)
            for s in series
        ):
            raise MessageError("a chart's series must be [start, calls, errors] counts")


def _check_calls(part: dict[str, Any]) -> None:
    for row in _objects(part.get("calls"), "'calls'"):
        _check_row(row)


def _check_row(row: dict[str, Any]) -> None:
    _count(row, "seq")
    if not _number(row.get("time")) or not isinstance(row.get("entity"), str):
        raise MessageError("a call needs its 'seq', 'time' and 'entity'")


_CHECKS = {
    PartKind.NAMESPACE: _check_namespace,
    PartKind.CHARTS: _check_charts,
    PartKind.CALLS: _check_calls,
    PartKind.CALL: _check_row,
}
