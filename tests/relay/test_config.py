"""Loading the TOML namespace config: the good file, and every class of bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from hc.entities import Discovery, EntityKind, Rights
from relay.config import load_config
from relay.exceptions import ConfigError
from relay.namespace import (
    DEFAULT_EVENT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    NamespaceConfig,
)

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

KEY = "k" * 44
ENV = {"ROOT_KEY": "r" * 44}

GOOD = f"""
[namespace]
name = "contoso"
host = "0.0.0.0"
port = 9443
dynamic_entities = true
ping_interval = 12.5

[namespace.tls]
cert = "certs/cert.pem"
key = "certs/key.pem"

[[rule]]
name = "RootManageSharedAccessKey"
key_env = "ROOT_KEY"
rights = ["Manage", "Listen", "Send"]

[[rule]]
name = "listen-only"
key = "{KEY}"
rights = ["listen"]

[[entity]]
path = "/payroll/"
requires_client_authorization = false
discovery = "public"
max_listeners = 3
timeout = 5
  [[entity.rule]]
  name = "payroll-send"
  key = "{KEY}"
  rights = ["Send"]
  [[entity.rule]]
  name = "listen-only"      # the same name as a namespace rule is fine
  key = "{"p" * 20}"
  rights = ["Listen"]

[[entity]]
path = "hr/timesheets"
kind = "oneway"

[[entity]]
path = "events"
kind = "event"
max_message_size = 1024

[[entity]]
path = "Big.Files_v2~x"
max_message_size = 1
"""


def _write(tmp_path: Path, text: str, name: str = "relay.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _tls_files(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    for name in ("cert.pem", "key.pem"):
        (tmp_path / "certs" / name).write_text("pem")


def test_good_config(tmp_path: Path) -> None:
    _tls_files(tmp_path)

    config = load_config(_write(tmp_path, GOOD), environ=ENV)

    assert (config.name, config.host, config.port) == ("contoso", "0.0.0.0", 9443)
    assert config.dynamic_entities is True
    assert config.ping_interval == 12.5
    assert config.tls_cert == str(tmp_path / "certs" / "cert.pem")
    assert config.tls_key == str(tmp_path / "certs" / "key.pem")
    root, listen = config.rules
    assert (root.name, root.key, root.rights) == (
        "RootManageSharedAccessKey",
        ENV["ROOT_KEY"],
        Rights.MANAGE | Rights.LISTEN | Rights.SEND,
    )
    assert listen.rights == Rights.LISTEN
    payroll, timesheets, events, big = config.entities
    assert payroll.path == "payroll"
    assert payroll.kind is EntityKind.REQUEST_RESPONSE
    assert payroll.requires_client_authorization is False
    assert payroll.discovery is Discovery.PUBLIC
    assert (payroll.max_listeners, payroll.timeout) == (3, 5.0)
    assert payroll.max_message_size == DEFAULT_MAX_MESSAGE_SIZE
    assert [r.name for r in payroll.rules] == ["payroll-send", "listen-only"]
    assert timesheets.kind is EntityKind.ONEWAY
    assert timesheets.max_message_size == DEFAULT_EVENT_MAX_MESSAGE_SIZE
    assert timesheets.discovery is Discovery.PRIVATE
    assert timesheets.requires_client_authorization is True
    assert (events.kind, events.max_message_size) == (EntityKind.EVENT, 1024)
    assert big.max_message_size == 1


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")) == NamespaceConfig()


def test_keys_never_show_in_repr(tmp_path: Path) -> None:
    _tls_files(tmp_path)

    config = load_config(_write(tmp_path, GOOD), environ=ENV)

    assert KEY not in repr(config)
    assert ENV["ROOT_KEY"] not in repr(config)


def _rule(name: str = "r", key: str = KEY, rights: str = '["Send"]', table: str = "rule") -> str:
    return f'[[{table}]]\nname = "{name}"\nkey = "{key}"\nrights = {rights}\n'


BAD = {
    # (config text, key path, reason fragment)
    "unknown-top": ("[namespase]\nport = 1\n", "namespase", "did you mean 'namespace'"),
    "unknown-ns": ("[namespace]\nprot = 1\n", "namespace.prot", "did you mean 'port'"),
    "unknown-entity": (
        '[[entity]]\npath = "a"\nmax_listener = 2\n',
        "entity[0].max_listener",
        "did you mean 'max_listeners'",
    ),
    "unknown-rule": (_rule() + "right = []\n", "rule[0].right", "unknown key"),
    "bad-kind": (
        '[[entity]]\npath = "a"\n[[entity]]\npath = "b"\n[[entity]]\npath = "c"\nkind = "one-way"\n',
        "entity[2].kind",
        "unknown value 'one-way' (expected one of: request-response, oneway, event)",
    ),
    "bad-discovery": (
        '[[entity]]\npath = "a"\ndiscovery = "Public"\n',
        "entity[0].discovery",
        "unknown value",
    ),
    "bad-right": (_rule(rights='["Read"]'), "rule[0].rights", "unknown right 'Read'"),
    "none-right": (_rule(rights='["None"]'), "rule[0].rights", "unknown right 'None'"),
    "no-rights": (_rule(rights="[]"), "rule[0].rights", "non-empty"),
    "rights-string": (_rule(rights='"Send"'), "rule[0].rights", "must be an array"),
    "rights-numbers": (_rule(rights="[1]"), "rule[0].rights", "non-empty array of"),
    "missing-rights": (
        '[[rule]]\nname = "r"\nkey = "' + KEY + '"\n',
        "rule[0].rights",
        "is required",
    ),
    "port-string": (
        '[namespace]\nport = "9350"\n',
        "namespace.port",
        "must be an integer, not a string",
    ),
    "port-bool": (
        "[namespace]\nport = true\n",
        "namespace.port",
        "must be an integer, not a boolean",
    ),
    "port-float": (
        "[namespace]\nport = 93.5\n",
        "namespace.port",
        "must be an integer, not a float",
    ),
    "port-range": ("[namespace]\nport = 70000\n", "namespace.port", "between 0 and 65535"),
    "host-empty": ('[namespace]\nhost = ""\n', "namespace.host", "non-empty"),
    "host-url": ('[namespace]\nhost = "http://x"\n', "namespace.host", "not a host name"),
    "name-type": ("[namespace]\nname = 5\n", "namespace.name", "must be a string"),
    "dynamic-type": (
        '[namespace]\ndynamic_entities = "yes"\n',
        "namespace.dynamic_entities",
        "true or false",
    ),
    "ping-zero": ("[namespace]\nping_interval = 0\n", "namespace.ping_interval", "positive"),
    "ping-inf": ("[namespace]\nping_interval = inf\n", "namespace.ping_interval", "positive"),
    "pong-zero": ("[namespace]\npong_timeout = 0\n", "namespace.pong_timeout", "positive"),
    "grace-neg": ("[namespace]\nshutdown_grace = -1\n", "namespace.shutdown_grace", "positive"),
    "connections-0": (
        "[namespace]\nmax_connections = 0\n", "namespace.max_connections", "between 1 and"
    ),
    "namespace-array": ("namespace = [1]\n", "namespace", "must be a table"),
    "listeners-26": (
        '[[entity]]\npath = "a"\nmax_listeners = 26\n',
        "entity[0].max_listeners",
        "between 1 and 25",
    ),
    "listeners-0": (
        '[[entity]]\npath = "a"\nmax_listeners = 0\n',
        "entity[0].max_listeners",
        "between 1 and 25",
    ),
    "size-0": (
        '[[entity]]\npath = "a"\nmax_message_size = 0\n',
        "entity[0].max_message_size",
        "at least 1",
    ),
    "timeout-negative": ('[[entity]]\npath = "a"\ntimeout = -1\n', "entity[0].timeout", "positive"),
    "timeout-string": (
        '[[entity]]\npath = "a"\ntimeout = "60s"\n',
        "entity[0].timeout",
        "number of seconds",
    ),
    "auth-type": (
        '[[entity]]\npath = "a"\nrequires_client_authorization = 0\n',
        "entity[0].requires_client_authorization",
        "true or false",
    ),
    "short-key": (_rule(key="short-key-15char"[:15]), "rule[0].key", "16..256 characters, not 15"),
    "long-key": (_rule(key="k" * 257), "rule[0].key", "16..256 characters"),
    "key-space": (_rule(key=KEY + " "), "rule[0].key", "surrounding whitespace"),
    "key-semicolon": (_rule(key=KEY + ";x"), "rule[0].key", "';'"),
    "key-and-env": (
        _rule() + 'key_env = "ROOT_KEY"\n',
        "rule[0].key",
        "exactly one of 'key' or 'key_env'",
    ),
    "no-key": ('[[rule]]\nname = "r"\nrights = ["Send"]\n', "rule[0].key", "exactly one"),
    "env-unset": (
        '[[rule]]\nname = "r"\nkey_env = "NOT_SET_ANYWHERE"\nrights = ["Send"]\n',
        "rule[0].key_env",
        "environment variable 'NOT_SET_ANYWHERE' is not set",
    ),
    "env-short": (
        '[[rule]]\nname = "r"\nkey_env = "SHORT"\nrights = ["Send"]\n',
        "rule[0].key_env",
        "16..256 characters, not 5",
    ),
    "rule-no-name": (
        f'[[rule]]\nkey = "{KEY}"\nrights = ["Send"]\n',
        "rule[0].name",
        "is required",
    ),
    "dup-rule": (
        _rule("a") + _rule("b") + _rule("a"),
        "rule[2].name",
        "duplicate rule name 'a' (also rule[0])",
    ),
    "dup-entity-rule": (
        '[[entity]]\npath = "a"\n'
        + _rule("x", table="entity.rule")
        + _rule("x", table="entity.rule"),
        "entity[0].rule[1].name",
        "duplicate rule name 'x'",
    ),
    "entity-rule-bad": (
        '[[entity]]\npath = "a"\n' + _rule(rights='["Sned"]', table="entity.rule"),
        "entity[0].rule[0].rights",
        "unknown right 'Sned'",
    ),
    "13-rules": ("".join(_rule(f"r{i}") for i in range(13)), "rule", "at most 12 rules"),
    "rule-table": (
        f'[rule]\nname = "r"\nkey = "{KEY}"\nrights = ["Send"]\n',
        "rule",
        "array of tables",
    ),
    "entity-not-table": ("entity = [1]\n", "entity[0]", "must be a table"),
    "no-path": ('[[entity]]\nkind = "oneway"\n', "entity[0].path", "is required"),
    "root-path": ('[[entity]]\npath = "/"\n', "entity[0].path", "not the namespace root"),
    "dollar": ('[[entity]]\npath = "$hc/a"\n', "entity[0].path", "'$' is not allowed"),
    "question": ('[[entity]]\npath = "a?b"\n', "entity[0].path", "'?' is not allowed"),
    "hash": ('[[entity]]\npath = "a#b"\n', "entity[0].path", "'#' is not allowed"),
    "percent": ('[[entity]]\npath = "a%2Fb"\n', "entity[0].path", "'%' is not allowed"),
    "space": ('[[entity]]\npath = "pay roll"\n', "entity[0].path", "' ' is not allowed"),
    "dotdot": ('[[entity]]\npath = "a/../b"\n', "entity[0].path", "'..' segment"),
    "double-slash": ('[[entity]]\npath = "a//b"\n', "entity[0].path", "empty"),
    "long-path": (f'[[entity]]\npath = "{"a" * 261}"\n', "entity[0].path", "at most 260"),
    "dup-path": (
        '[[entity]]\npath = "payroll"\n[[entity]]\npath = "/Payroll/"\n',
        "entity[1].path",
        "duplicate entity path 'Payroll' (also entity[0])",
    ),
    "nested-path": (
        '[[entity]]\npath = "payroll/v2"\n[[entity]]\npath = "payroll"\n',
        "entity[1].path",
        "nest",
    ),
    "cors-not-a-list": (
        '[[entity]]\npath = "p"\ncors_origins = "https://a.example"\n',
        "entity[0].cors_origins",
        "must be an array of origins",
    ),
    "cors-not-a-string": (
        '[[entity]]\npath = "p"\ncors_origins = [443]\n',
        "entity[0].cors_origins[0]",
        "must be a string, not an integer",
    ),
    "cors-path": (
        '[[entity]]\npath = "p"\ncors_origins = ["https://a.example", "https://b.example/app"]\n',
        "entity[0].cors_origins[1]",
        "no path",
    ),
    "cors-trailing-slash": (
        '[[entity]]\npath = "p"\ncors_origins = ["https://a.example/"]\n',
        "entity[0].cors_origins[0]",
        "drop the trailing '/'",
    ),
    "cors-no-scheme": (
        '[[entity]]\npath = "p"\ncors_origins = ["a.example"]\n',
        "entity[0].cors_origins[0]",
        "expected scheme://host[:port]",
    ),
    "cors-port": (
        '[[entity]]\npath = "p"\ncors_origins = ["http://a.example:70000"]\n',
        "entity[0].cors_origins[0]",
        "port out of range",
    ),
    "tls-missing-key": ('[namespace.tls]\ncert = "c.pem"\n', "namespace.tls.key", "is required"),
    "tls-no-file": (
        '[namespace.tls]\ncert = "nope.pem"\nkey = "nope.pem"\n',
        "namespace.tls.cert",
        "file not found",
    ),
    "tls-unknown": (
        '[namespace.tls]\ncert = "c"\nkey = "k"\npassword = "x"\n',
        "namespace.tls.password",
        "unknown key",
    ),
}


@pytest.mark.parametrize(("text", "where", "reason"), BAD.values(), ids=BAD.keys())
def test_bad_config_names_file_key_and_reason(
    tmp_path: Path, text: str, where: str, reason: str
) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"ROOT_KEY": KEY, "SHORT": "12345"})

    message = str(caught.value)
    assert message.startswith(f"{path}: {where}: "), message
    assert reason in message, message
    assert KEY not in message


def test_cors_origins_are_stored_as_browsers_send_them(tmp_path: Path) -> None:
    text = (
        '[[entity]]\npath = "a"\ncors_origins = ["HTTPS://App.Example.com:443", "http://[::1]:8080",'
        ' "https://app.example.com", "*"]\n[[entity]]\npath = "b"\n'
    )
    config = load_config(_write(tmp_path, text))

    assert config.entities[0].cors_origins == ("https://app.example.com", "http://[::1]:8080", "*")
    assert config.entities[1].cors_origins == ()


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[namespace]\nport = 9350\nhost = "127.0.0.1\n')

    with pytest.raises(ConfigError, match=r"relay\.toml: invalid TOML: .*line 3"):
        load_config(path)


def test_duplicate_toml_key_is_a_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(_write(tmp_path, "[namespace]\nport = 1\nport = 2\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read config"):
        load_config(tmp_path / "missing.toml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_bytes(b'[namespace]\nname = "\xff"\n')

    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_key_env_reads_the_injected_environment(tmp_path: Path) -> None:
    text = '[[rule]]\nname = "r"\nkey_env = "MY_KEY"\nrights = ["Listen"]\n'

    config = load_config(_write(tmp_path, text), environ={"MY_KEY": "m" * 16})

    assert config.rules[0].key == "m" * 16
