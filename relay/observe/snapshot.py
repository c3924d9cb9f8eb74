"""This relay's part of the console's views, as plain JSON-ready dicts. No I/O.

The console API (``relay.observe.api``) shows them; on a cluster node the same
parts are what the node answers the other nodes' console with over NATS
(``relay.cluster.console``), so each part is bounded in size here: the newest
calls that fit, a captured call's bodies cut to fit.  Nothing here holds a
secret: captured headers and bodies were masked before they were stored
(``relay.observe.inspector``), and a call's detail has them only when capture
was on for its entity.
"""

from __future__ import annotations

import json
from typing import Any

from relay.state import RelayState

__all__ = ["MAX_PART", "call_part", "calls_part", "charts_part", "namespace_part"]

#: Bytes of one node's part, as JSON (a NATS message stays well under its 1 MiB default).
MAX_PART = 256 * 1024
#: Calls one part carries at most (the newest).
MAX_CALLS = 500


def _size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def namespace_part(state: RelayState) -> dict[str, Any]:
    """Entities (with this node's listeners), presence history, capture switches."""
    observer = state.observer
    entities = []
    for entity in state.registry:
        config = entity.config
        entities.append({
            "path": entity.path, "kind": config.kind.value, "dynamic": config.dynamic,
            "capture": observer.captures(entity.path),
            "listeners": [info.as_json() for info in observer.listeners.values()
                          if info.entity == entity.path],
        })
    presence = list(observer.presence)
    part = {"entities": entities, "presence": presence, "now": observer.clock()}
    while _size(part) > MAX_PART and presence:  # presence first, then entities
        del presence[: max(1, len(presence) // 2)]
    while _size(part) > MAX_PART and entities:
        del entities[len(entities) // 2:]
    return part


def charts_part(state: RelayState) -> dict[str, Any]:
    """Calls and errors per entity in 10 s slots over 15 minutes."""
    now = state.observer.clock()
    series = {name: stats.timeline.series(now)
              for name, stats in state.observer.stats.items() if name}
    busy = sorted(series, key=lambda n: -sum(s[1] for s in series[n]))
    part: dict[str, Any] = {"now": now, "entities": series}
    while _size(part) > MAX_PART and series:  # the quietest entities go first
        for name in busy[len(busy) // 2:]:
            series.pop(name, None)
        busy = busy[: len(busy) // 2]
    return part


def calls_part(state: RelayState, after: int) -> dict[str, Any]:
    """The inspector's calls newer than ``after``: the newest that fit; ``trimmed``
    when older ones were left out.  An ``after`` beyond the newest call is a cursor of
    this relay before it restarted: it starts over."""
    inspector = state.observer.inspector
    newest = inspector.rows[-1][0] if inspector.rows else 0
    calls = inspector.summaries(after if after <= newest else 0)
    trimmed = len(calls) > MAX_CALLS
    calls = calls[-MAX_CALLS:]
    while calls and _size(calls) > MAX_PART - 1024:
        calls = calls[len(calls) // 2 + 1:]
        trimmed = True
    return {"calls": calls, "trimmed": trimmed}


def call_part(state: RelayState, seq: int) -> dict[str, Any] | None:
    """One call with its captured (masked) headers and bodies, bodies cut to fit; None
    when it is no longer in the inspector."""
    inspector = state.observer.inspector
    row = inspector.row(seq)
    if row is None:
        return None
    captured = inspector.captured(seq)
    out = row.summary(captured is not None)
    if captured is None:
        return out
    out.update(captured.detail())
    cut = MAX_PART // 2
    while _size(out) > MAX_PART and cut > 64:
        for key in ("requestBody", "responseBody"):
            text = out[key]
            if text is not None and len(text) > cut:
                out[key], out["truncated"] = text[:cut], True
        cut //= 2
    return out if _size(out) <= MAX_PART else {**row.summary(False), "truncated": True}
