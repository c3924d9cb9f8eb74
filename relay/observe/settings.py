"""What the operator configures for observability: plain frozen dataclasses. No I/O.

TOML (``relay.config`` hands these tables to :func:`parse_settings`)::

    [admin]                      # a second address for /$metrics and /$console
    host = "127.0.0.1"           # default loopback only
    port = 9351                  # required to open the admin address
    require_token = false        # true: a Manage token is asked there too

    [observe]
    inspector_calls = 1000       # calls the inspector remembers (a ring buffer)
    capture = ["payroll"]        # entities whose bodies the inspector keeps (off by default)
    capture_bytes = 4194304      # bytes of captured bodies kept at once, all entities
    capture_body_limit = 65536   # bytes kept of one body (the rest is cut off)
    node = ""                    # the node label of every metric (clusters); "" = none

    [[webhook]]                  # presence events POSTed as JSON
    url = "http://127.0.0.1:8080/presence"
    events = ["ListenerConnected", "ListenerDisconnected"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from relay.observe.names import EVENT_NAMES

__all__ = ["AdminSettings", "ObserveSettings", "WebhookSettings", "parse_settings"]

#: The presence events a webhook gets when its ``events`` are not given.
PRESENCE_EVENTS = ("ListenerConnected", "ListenerDisconnected")
Fail = Callable[[str, str], Exception]


@dataclass(frozen=True)
class AdminSettings:
    """The separate admin address; ``port`` None: none (the main port, with a token)."""

    host: str = "127.0.0.1"
    port: int | None = None
    require_token: bool = False


@dataclass(frozen=True)
class WebhookSettings:
    """One receiver of presence events."""

    url: str
    events: tuple[str, ...] = PRESENCE_EVENTS


@dataclass(frozen=True)
class ObserveSettings:
    """Metrics, inspector and event settings of one relay."""

    inspector_calls: int = 1000
    capture: frozenset[str] = frozenset()
    capture_bytes: int = 4 * 1024 * 1024
    capture_body_limit: int = 64 * 1024
    node: str = ""
    #: False: no metrics, no inspector (the bench's "off"); events still flow.
    enabled: bool = True
    admin: AdminSettings = field(default_factory=AdminSettings)
    webhooks: tuple[WebhookSettings, ...] = ()
    #: Webhook deliveries waiting at once, and tries of one delivery.
    webhook_queue: int = 1000
    webhook_tries: int = 5
    #: Seconds before a delivery's second try (doubling after, at most 30 s).
    webhook_backoff: float = 0.5


_ADMIN_KEYS = {"host": str, "port": int, "require_token": bool}
_OBSERVE_KEYS = {
    "inspector_calls": int, "capture": list, "capture_bytes": int,
    "capture_body_limit": int, "node": str, "enabled": bool,
}
_WEBHOOK_KEYS = {"url": str, "events": list}


def parse_settings(document: Mapping[str, Any], fail: Fail) -> ObserveSettings:
    """The ``[admin]``, ``[observe]`` and ``[[webhook]]`` tables of a config document.

    ``fail(key_path, reason)`` makes the config error to raise.
    """
    admin = _table(document, "admin", _ADMIN_KEYS, fail)
    observe = _table(document, "observe", _OBSERVE_KEYS, fail)
    hooks = document.get("webhook", [])
    if not isinstance(hooks, list):
        raise fail("webhook", "must be an array of tables ([[webhook]])")
    port = admin.get("port")
    if port is not None and not 0 <= port <= 65535:
        raise fail("admin.port", f"must be 0..65535, not {port}")
    settings = ObserveSettings(
        admin=AdminSettings(
            host=admin.get("host", "127.0.0.1"), port=port,
            require_token=admin.get("require_token", False),
        ),
        webhooks=tuple(_webhook(h, f"webhook[{i}]", fail) for i, h in enumerate(hooks)),
    )
    return _observe(settings, observe, fail)


def _observe(settings: ObserveSettings, table: dict[str, Any], fail: Fail) -> ObserveSettings:
    options: dict[str, Any] = {}
    for key in ("inspector_calls", "capture_bytes", "capture_body_limit"):
        if key in table:
            if table[key] < 0:
                raise fail(f"observe.{key}", f"must be 0 or more, not {table[key]}")
            options[key] = table[key]
    if "capture" in table:
        paths = table["capture"]
        if not all(isinstance(p, str) for p in paths):
            raise fail("observe.capture", "must be an array of entity paths")
        options["capture"] = frozenset(p.strip("/").lower() for p in paths)
    for key in ("node", "enabled"):
        if key in table:
            options[key] = table[key]
    return ObserveSettings(**{**settings.__dict__, **options})


def _table(document: Mapping[str, Any], name: str, keys: Mapping[str, type], fail: Fail) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise fail(name, f"must be a table ([{name}])")
    for key, value in table.items():
        if key not in keys:
            raise fail(f"{name}.{key}", f"unknown key (expected: {', '.join(keys)})")
        wanted = keys[key]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise fail(f"{name}.{key}", f"must be {wanted.__name__}, not {type(value).__name__}")
    return table


def _webhook(table: object, where: str, fail: Fail) -> WebhookSettings:
    if not isinstance(table, dict):
        raise fail(where, "must be a table")
    checked = _table({where: table}, where, _WEBHOOK_KEYS, fail)
    url = checked.get("url")
    if url is None:
        raise fail(f"{where}.url", "is required")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(f"{where}.url", f"{url!r} is not an http(s) URL")
    events = tuple(checked.get("events", PRESENCE_EVENTS))
    unknown = [e for e in events if e not in EVENT_NAMES]
    if unknown:
        raise fail(f"{where}.events", f"unknown event {unknown[0]!r} (expected: {', '.join(EVENT_NAMES)})")
    return WebhookSettings(url, events)
