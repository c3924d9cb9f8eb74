"""Load a namespace config from TOML into :class:`relay.namespace.NamespaceConfig`.

Example (every key but ``[[entity]].path`` and the rules' ``name``/``key``/``rights``
is optional; the values shown are the defaults where there is one)::

    [namespace]
    name = "contoso"             # shown in the discovery feed; default "soaprelay"
    host = "127.0.0.1"           # listen address
    port = 9350                  # 0 picks a free port
    dynamic_entities = false     # let Manage tokens listen on unconfigured paths
    ping_interval = 5            # seconds of silence before the relay pings a listener
    pong_timeout = 3             # seconds a ping may go unanswered before the listener is dropped
    shutdown_grace = 30          # seconds calls in flight may take to finish on SIGTERM
    header_timeout = 10          # seconds from connection open / first byte to a complete head
    idle_timeout = 15            # seconds a keep-alive connection may wait for its next request
    body_timeout = 10            # seconds a request body may take, plus 1 s per min_body_rate bytes
    min_body_rate = 1000         # bytes/s a request body must keep up, on average
    max_headers = 100            # header fields per request head (more: 431)
    max_connections = 20000      # open connections at once (more: 503 and close)

    [namespace.tls]              # optional; both keys required, paths relative to this file
    cert = "cert.pem"
    key = "key.pem"

    [[rule]]                     # namespace SAS rules, at most 12
    name = "RootManageSharedAccessKey"
    key_env = "SOAPRELAY_ROOT_KEY"   # or: key = "..." (16..256 characters)
    rights = ["Manage", "Listen", "Send"]

    [[entity]]
    path = "payroll"             # letters, digits, '-', '.', '_', '~' in '/'-separated segments
    kind = "request-response"    # | "oneway" | "event"
    requires_client_authorization = true
    discovery = "private"        # | "public"
    max_listeners = 25           # 1..25
    max_message_size = 67108864  # bytes; 64 MiB for request-response, 64 KiB for oneway/event
    timeout = 60                 # seconds a listener has to answer
    cors_origins = []            # e.g. ["https://app.example.com"] or ["*"]: see relay.cors

    [[entity.rule]]              # entity rules, at most 12, same keys as [[rule]]
    name = "payroll-send"
    key = "..."
    rights = ["Send"]

    [admin]                      # optional, like [observe] and [[webhook]]: metrics, events,
    port = 9351                  # the console (relay.observe.settings has every key)

    [cluster]                    # optional: nodes sharing this namespace (docs/cluster.md)
    nats = ["nats://10.0.0.5:4222", "nats://10.0.0.6:4222"]   # or one string
    node_url = "http://10.0.0.11:9350"   # how listeners reach THIS node for rendezvous
    node_name = "relay-1"        # default: host name and port
    creds_file = "nats.creds"    # optional NATS credentials file
    small_requests = "nats"      # | "rendezvous": how <= 64 KiB requests cross nodes
    direct = true                # false: no direct node-to-node links, every ask over NATS

Identity providers whose JWTs are accepted besides SAS tokens are ``[[identity]]``
tables: see :mod:`relay.identity_config`.

Anything else is refused with a :class:`~relay.exceptions.ConfigError` whose
message is ``FILE: KEY-PATH: REASON``, e.g. ``relay.toml: entity[2].kind: unknown
value 'one-way' (expected one of: request-response, oneway, event)``.  Array items
count from 0.  TOML syntax errors carry tomllib's line and column.  Unknown keys
are errors, so a typo never silently falls back to a default.  Entity paths are
stored without leading or trailing ``/``, compared case-insensitively, and may
not nest (``a`` and ``a/b``) because a request to ``/a/b`` would be ambiguous.
"""

from __future__ import annotations

import difflib
import enum
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from hc.entities import Discovery, EntityKind, Rights
from relay.cluster.config import ClusterConfig, Route, parse_nats_urls, parse_node_url
from relay.cors import normalize_origin
from relay.exceptions import ConfigError
from relay.identity_config import identities
from relay.namespace import (
    DEFAULT_MAX_LISTENERS,
    MAX_PATH_LENGTH,
    EntityConfig,
    NamespaceConfig,
    SasRule,
)
from relay.observe.settings import parse_settings

__all__ = ["MAX_RULES", "MIN_KEY_LENGTH", "load_config"]

#: Azure's limit of SAS rules per namespace and per entity.
MAX_RULES = 12
MIN_KEY_LENGTH = 16
MAX_KEY_LENGTH = 256

_TOP_KEYS = ("namespace", "rule", "entity", "admin", "observe", "webhook", "identity", "cluster")
_CLUSTER_KEYS = ("nats", "node_url", "node_name", "creds_file", "small_requests", "direct")
_NAMESPACE_KEYS = (
    "name",
    "host",
    "port",
    "dynamic_entities",
    "ping_interval",
    "pong_timeout",
    "shutdown_grace",
    "header_timeout",
    "idle_timeout",
    "body_timeout",
    "min_body_rate",
    "max_headers",
    "max_connections",
    "tls",
)
#: Upper bounds of the client timeouts: past an hour a slow client is not bounded.
_MAX_CLIENT_TIMEOUT = 3600.0
_TLS_KEYS = ("cert", "key")
_RULE_KEYS = ("name", "key", "key_env", "rights")
_ENTITY_KEYS = (
    "path",
    "kind",
    "requires_client_authorization",
    "discovery",
    "max_listeners",
    "max_message_size",
    "timeout",
    "rule",
    "cors_origins",
)
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_E = TypeVar("_E", bound=enum.Enum)


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> NamespaceConfig:
    """Read and validate a TOML namespace config.

    Args:
        path: the config file.
        environ: where ``key_env`` names are looked up; ``os.environ`` by default.

    Returns:
        The namespace, with TLS paths made relative to the file's directory.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or breaks the schema;
            the message names the file, the key path and the reason.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _Loader(path, os.environ if environ is None else environ).namespace(document)


class _Table:
    """One TOML table being read: typed getters that name the key path in errors."""

    def __init__(self, loader: _Loader, where: str, data: object, keys: tuple[str, ...]) -> None:
        if not isinstance(data, dict):
            raise loader.error(where, f"must be a table, not {_type_name(data)}")
        self.loader, self.where, self.data = loader, where, data
        for key in data:
            if key not in keys:
                close = difflib.get_close_matches(key, keys, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"expected: {', '.join(keys)}"
                raise loader.error(self.path(key), f"unknown key ({hint})")

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, reason: str) -> ConfigError:
        return self.loader.error(self.path(key), reason)

    def get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        """The value at ``key`` (None when absent), checked to be a ``kind``."""
        value = self.data.get(key)
        bad_bool = isinstance(value, bool) and bool not in _as_tuple(kind)
        if value is not None and (bad_bool or not isinstance(value, kind)):
            raise self.error(key, f"must be {what}, not {_type_name(value)}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self.get(key, str, "a string")
        if value is None:
            if default is None:
                raise self.error(key, "is required")
            return default
        if not value.strip() or _CONTROL.search(value):
            raise self.error(key, "must be non-empty text without control characters")
        return str(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, bool, "true or false")
        return default if value is None else bool(value)

    def integer(self, key: str, default: int, low: int, high: int | None = None) -> int:
        value = self.get(key, int, "an integer")
        if value is None:
            return default
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.error(key, f"must be {bounds}, not {value}")
        return int(value)

    def seconds(self, key: str, default: float) -> float:
        value = self.get(key, (int, float), "a number of seconds")
        if value is None:
            return default
        if not 0 < value < float("inf"):
            raise self.error(key, f"must be a positive number of seconds, not {value}")
        return float(value)

    def choice(self, key: str, enum_type: type[_E], default: _E) -> _E:
        value = self.get(key, str, "a string")
        if value is None:
            return default
        try:
            return enum_type(value)
        except ValueError:
            expected = ", ".join(str(member.value) for member in enum_type)
            reason = f"unknown value {value!r} (expected one of: {expected})"
            raise self.error(key, reason) from None

    def tables(self, key: str, keys: tuple[str, ...]) -> list[_Table]:
        """An array of tables (``[[key]]``), each checked for unknown keys."""
        value = self.get(key, list, f"an array of tables ([[{self.path(key)}]])")
        items = enumerate(value or ())
        return [_Table(self.loader, f"{self.path(key)}[{i}]", item, keys) for i, item in items]


class _Loader:
    """Builds the model from a parsed TOML document, one table at a time."""

    def __init__(self, file: Path, environ: Mapping[str, str]) -> None:
        self.file, self.environ = file, environ

    def error(self, where: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.file}: {where}: {reason}")

    def namespace(self, document: dict[str, Any]) -> NamespaceConfig:
        top = _Table(self, "", document, _TOP_KEYS)
        ns = _Table(self, "namespace", document.get("namespace", {}), _NAMESPACE_KEYS)
        cert, key = self.tls(ns)
        entities = tuple(self.entity(t) for t in top.tables("entity", _ENTITY_KEYS))
        self.check_paths(entities)
        return NamespaceConfig(
            name=ns.text("name", NamespaceConfig.name),
            host=self.host(ns),
            port=ns.integer("port", NamespaceConfig.port, 0, 65535),
            tls_cert=cert,
            tls_key=key,
            rules=self.rules(top.tables("rule", _RULE_KEYS), "rule"),
            entities=entities,
            identities=identities(document.get("identity"), self.error),
            dynamic_entities=ns.flag("dynamic_entities", NamespaceConfig.dynamic_entities),
            ping_interval=ns.seconds("ping_interval", NamespaceConfig.ping_interval),
            pong_timeout=ns.seconds("pong_timeout", NamespaceConfig.pong_timeout),
            shutdown_grace=ns.seconds("shutdown_grace", NamespaceConfig.shutdown_grace),
            header_timeout=self.client_timeout(ns, "header_timeout"),
            idle_timeout=self.client_timeout(ns, "idle_timeout"),
            body_timeout=self.client_timeout(ns, "body_timeout"),
            min_body_rate=ns.integer("min_body_rate", NamespaceConfig.min_body_rate, 1),
            max_headers=ns.integer("max_headers", NamespaceConfig.max_headers, 1, 10_000),
            max_connections=ns.integer(
                "max_connections", NamespaceConfig.max_connections, 1, 1_000_000
            ),
            observe=parse_settings(document, self.error),  # [admin], [observe], [[webhook]]
            cluster=self.cluster(document),
        )

    def cluster(self, document: dict[str, Any]) -> ClusterConfig | None:
        """``[cluster]``: relay nodes sharing this namespace over NATS (docs/cluster.md)."""
        if "cluster" not in document:
            return None
        table = _Table(self, "cluster", document["cluster"], _CLUSTER_KEYS)
        nats = table.get("nats", (str, list), 'a URL or an array of URLs ("nats://host:4222")')
        if nats is None:
            raise table.error("nats", 'is required (e.g. "nats://127.0.0.1:4222")')
        urls = [nats] if isinstance(nats, str) else nats
        if not urls or not all(isinstance(u, str) for u in urls):
            raise table.error("nats", "must be a non-empty array of URLs")
        creds = self.existing_file(table, "creds_file", table.text("creds_file")) if (
            "creds_file" in table.data) else None
        try:
            return ClusterConfig(
                parse_nats_urls(",".join(urls)), parse_node_url(table.text("node_url")),
                table.text("node_name", ""), creds,
                table.choice("small_requests", Route, Route.NATS), table.flag("direct", True),
            )
        except ConfigError as exc:
            raise self.error("cluster", str(exc).removeprefix("cluster: ")) from None

    def client_timeout(self, ns: _Table, key: str) -> float:
        """A client timeout in seconds, positive and at most an hour."""
        value = ns.seconds(key, getattr(NamespaceConfig, key))
        if value > _MAX_CLIENT_TIMEOUT:
            raise ns.error(key, f"must be at most {_MAX_CLIENT_TIMEOUT:g} seconds, not {value:g}")
        return value

    def host(self, ns: _Table) -> str:
        host = ns.text("host", NamespaceConfig.host)
        if any(c.isspace() or c in "/?#@" for c in host):
            raise ns.error("host", f"{host!r} is not a host name or IP address")
        return host

    def tls(self, ns: _Table) -> tuple[str | None, str | None]:
        if "tls" not in ns.data:
            return None, None
        tls = _Table(self, ns.path("tls"), ns.data["tls"], _TLS_KEYS)
        names = [tls.text(name) for name in _TLS_KEYS]  # both present before looking at files
        cert, key = (self.existing_file(tls, *pair) for pair in zip(_TLS_KEYS, names, strict=True))
        return cert, key

    def existing_file(self, table: _Table, key: str, name: str) -> str:
        path = self.file.parent / Path(name).expanduser()
        if not path.is_file():
            raise table.error(key, f"file not found: {path}")
        return str(path)

    def rules(self, tables: list[_Table], where: str) -> tuple[SasRule, ...]:
        if len(tables) > MAX_RULES:
            raise self.error(where, f"at most {MAX_RULES} rules are allowed, found {len(tables)}")
        seen: dict[str, str] = {}
        rules = []
        for table in tables:
            rule = self.rule(table)
            if rule.name in seen:
                reason = f"duplicate rule name {rule.name!r} (also {seen[rule.name]})"
                raise table.error("name", reason)
            seen[rule.name] = table.where
            rules.append(rule)
        return tuple(rules)

    def rule(self, table: _Table) -> SasRule:
        name = table.text("name")
        if len(name) > MAX_KEY_LENGTH:
            raise table.error("name", f"must be at most {MAX_KEY_LENGTH} characters")
        return SasRule(name=name, key=self.key(table), rights=self.rights(table))

    def key(self, table: _Table) -> str:
        has_key, has_env = "key" in table.data, "key_env" in table.data
        if has_key == has_env:
            raise table.error("key", "give exactly one of 'key' or 'key_env'")
        if has_key:
            where, key = "key", table.get("key", str, "a string")
        else:
            where, variable = "key_env", table.text("key_env")
            key = self.environ.get(variable, "")
            if not key:
                raise table.error(where, f"environment variable {variable!r} is not set")
        # Never echo the key itself in these messages.
        if not MIN_KEY_LENGTH <= len(key) <= MAX_KEY_LENGTH:
            raise table.error(
                where, f"key must be {MIN_KEY_LENGTH}..{MAX_KEY_LENGTH} characters, not {len(key)}"
            )
        if key != key.strip() or ";" in key or _CONTROL.search(key):
            raise table.error(
                where, "key must not have surrounding whitespace, ';' or control characters"
            )
        return str(key)

    def rights(self, table: _Table) -> Rights:
        names = table.get("rights", list, "an array of strings")
        if names is None:
            raise table.error("rights", 'is required (e.g. ["Listen", "Send"])')
        if not names or not all(isinstance(name, str) for name in names):
            raise table.error("rights", 'must be a non-empty array of "Listen", "Send", "Manage"')
        try:
            return Rights.parse(names)
        except ValueError as exc:
            raise table.error("rights", str(exc)) from None

    def entity(self, table: _Table) -> EntityConfig:
        kind = table.choice("kind", EntityKind, EntityKind.REQUEST_RESPONSE)
        options: dict[str, object] = {
            "requires_client_authorization": table.flag("requires_client_authorization", True),
            "discovery": table.choice("discovery", Discovery, Discovery.PRIVATE),
            "max_listeners": table.integer(
                "max_listeners", DEFAULT_MAX_LISTENERS, 1, DEFAULT_MAX_LISTENERS
            ),
            "timeout": table.seconds("timeout", EntityConfig.timeout),
            "rules": self.rules(table.tables("rule", _RULE_KEYS), table.path("rule")),
            "cors_origins": self.cors_origins(table),
        }
        if "max_message_size" in table.data:
            options["max_message_size"] = table.integer("max_message_size", 0, 1)
        return EntityConfig.for_kind(self.entity_path(table), kind, **options)

    def cors_origins(self, table: _Table) -> tuple[str, ...]:
        """``cors_origins``: origins as browsers send them (``scheme://host[:port]``) or ``*``."""
        values = table.get("cors_origins", list, 'an array of origins (["https://app.example.com"])')
        origins: list[str] = []
        for index, value in enumerate(values or ()):
            where = f"cors_origins[{index}]"
            if not isinstance(value, str):
                raise table.error(where, f"must be a string, not {_type_name(value)}")
            try:
                origin = normalize_origin(value)
            except ValueError as exc:
                raise table.error(where, str(exc)) from None
            if origin not in origins:
                origins.append(origin)
        return tuple(origins)

    def entity_path(self, table: _Table) -> str:
        path = table.text("path").strip("/")
        if not path:
            raise table.error("path", "must name an entity, not the namespace root")
        if len(path) > MAX_PATH_LENGTH:
            raise table.error("path", f"must be at most {MAX_PATH_LENGTH} characters")
        for segment in path.split("/"):
            if segment in ("", ".", ".."):
                raise table.error("path", f"{path!r} has an empty, '.' or '..' segment")
            bad = _SEGMENT.sub("", segment)
            if bad:
                raise table.error(
                    "path",
                    f"{bad[0]!r} is not allowed in {path!r}: segments may contain only"
                    " letters, digits, '-', '.', '_' and '~'",
                )
        return path

    def check_paths(self, entities: tuple[EntityConfig, ...]) -> None:
        """Refuse duplicate and nested entity paths (compared case-insensitively)."""
        seen: dict[str, int] = {}
        for index, entity in enumerate(entities):
            where = f"entity[{index}].path"
            folded = entity.path.lower()
            if folded in seen:
                reason = f"duplicate entity path {entity.path!r} (also entity[{seen[folded]}])"
                raise self.error(where, reason)
            for other, other_index in seen.items():
                if folded.startswith(other + "/") or other.startswith(folded + "/"):
                    raise self.error(
                        where,
                        f"{entity.path!r} and entity[{other_index}] {entities[other_index].path!r}"
                        " nest; a request below the inner one would be ambiguous",
                    )
            seen[folded] = index


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), f"a {type(value).__name__}")
