"""The development namespace: a generated key kept across restarts, and its connection string."""

from __future__ import annotations

import base64
import dataclasses
import json
import stat
from pathlib import Path

import pytest

from hc.connection_string import ConnectionString
from hc.entities import Rights
from relay.devspace import (
    KEYS_FILE,
    ROOT_RULE_NAME,
    dev_connection_string,
    dev_namespace,
)
from relay.exceptions import ConfigError

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_dev_namespace_shape(tmp_path: Path) -> None:
    config = dev_namespace(tmp_path / "state", host="0.0.0.0", port=0)

    assert config.dynamic_entities is True
    assert (config.host, config.port) == ("0.0.0.0", 0)
    assert config.entities == ()
    (rule,) = config.rules
    assert rule.name == ROOT_RULE_NAME
    assert rule.rights == Rights.MANAGE | Rights.LISTEN | Rights.SEND
    assert len(rule.key) == 44
    assert len(base64.b64decode(rule.key, validate=True)) == 32


def test_key_is_persisted_with_private_modes(tmp_path: Path) -> None:
    state = tmp_path / "state"

    key = dev_namespace(state).rules[0].key

    keys_file = state / KEYS_FILE
    assert _mode(state) == 0o700
    assert _mode(keys_file) == 0o600
    assert json.loads(keys_file.read_text()) == {ROOT_RULE_NAME: key}
    assert [p.name for p in state.iterdir()] == [KEYS_FILE]  # no temporary file left behind


def test_key_is_reused_across_restarts(tmp_path: Path) -> None:
    first = dev_namespace(tmp_path / "state").rules[0].key

    assert dev_namespace(tmp_path / "state", port=1234).rules[0].key == first
    assert dev_namespace(tmp_path / "elsewhere").rules[0].key != first


def test_existing_state_dir_is_used(tmp_path: Path) -> None:
    dev_namespace(tmp_path)

    assert (tmp_path / KEYS_FILE).is_file()


@pytest.mark.parametrize("content", ["not json", "[]", "{}", '{"RootManageSharedAccessKey": 5}'])
def test_corrupt_keys_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    (tmp_path / KEYS_FILE).write_text(content)

    with pytest.raises(ConfigError, match="keys.json.*delete it"):
        dev_namespace(tmp_path)


def test_connection_string_parses_and_carries_the_key(tmp_path: Path) -> None:
    config = dev_namespace(tmp_path, port=9350)

    cs = ConnectionString.parse(dev_connection_string(config))

    assert (cs.host, cs.port, cs.use_tls) == ("127.0.0.1", 9350, False)
    assert (cs.key_name, cs.key) == (ROOT_RULE_NAME, config.rules[0].key)
    assert cs.http_base == "http://127.0.0.1:9350"


@pytest.mark.parametrize(
    ("host", "http_base"),
    [
        ("0.0.0.0", "http://127.0.0.1:9350"),
        ("::", "http://[::1]:9350"),
        ("::1", "http://[::1]:9350"),
        ("relay.example.com", "http://relay.example.com:9350"),
    ],
)
def test_connection_string_host(tmp_path: Path, host: str, http_base: str) -> None:
    config = dev_namespace(tmp_path, host=host)

    assert ConnectionString.parse(dev_connection_string(config)).http_base == http_base


def test_connection_string_with_tls(tmp_path: Path) -> None:
    config = dataclasses.replace(dev_namespace(tmp_path), tls_cert="c.pem", tls_key="k.pem")

    cs = ConnectionString.parse(dev_connection_string(config))

    assert cs.use_tls is True
    assert cs.ws_base == "wss://127.0.0.1:9350"


def test_connection_string_needs_a_manage_rule(tmp_path: Path) -> None:
    config = dataclasses.replace(dev_namespace(tmp_path), rules=())

    with pytest.raises(ValueError, match="Manage"):
        dev_connection_string(config)
