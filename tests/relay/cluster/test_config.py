"""The ``[cluster]`` table and the NATS/node URL rules. Pure: no sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.cluster.config import ClusterConfig, Route, parse_nats_urls, parse_node_url, redact_url
from relay.config import load_config
from relay.exceptions import ConfigError

pytestmark = pytest.mark.usefixtures("no_sockets")


def _load(tmp_path: Path, table: str) -> ClusterConfig | None:
    path = tmp_path / "relay.toml"
    path.write_text('[namespace]\nname = "n"\n' + table)
    return load_config(path).cluster


def test_no_table_is_a_single_node(tmp_path: Path) -> None:
    assert _load(tmp_path, "") is None


def test_a_full_table(tmp_path: Path) -> None:
    (tmp_path / "nats.creds").write_text("creds")
    cluster = _load(tmp_path, """
[cluster]
nats = ["nats://user:pw@10.0.0.5:4222", "tls://10.0.0.6"]
node_url = "https://relay-1.example:9443"
node_name = "relay-1"
creds_file = "nats.creds"
small_requests = "rendezvous"
direct = false
""")
    assert cluster == ClusterConfig(
        ("nats://user:pw@10.0.0.5:4222", "tls://10.0.0.6"), "https://relay-1.example:9443",
        "relay-1", str(tmp_path / "nats.creds"), Route.RENDEZVOUS, direct=False,
    )
    assert cluster.redacted() == "nats://***@10.0.0.5:4222,tls://10.0.0.6"
    assert "pw" not in repr(cluster)


def test_one_url_as_a_string_and_defaults(tmp_path: Path) -> None:
    cluster = _load(tmp_path, '[cluster]\nnats = "nats://h"\nnode_url = "http://h:9350"\n')
    assert cluster is not None
    assert (cluster.nats, cluster.small_requests, cluster.creds_file) == (("nats://h",), Route.NATS, None)
    assert cluster.direct
    assert cluster.name.endswith("-9350")  # host name and port


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        ('node_url = "http://h:1"', "cluster.nats: is required"),
        ('nats = "nats://h"', "cluster.node_url: is required"),
        ('nats = []\nnode_url = "http://h:1"', "must be a non-empty array"),
        ('nats = [1]\nnode_url = "http://h:1"', "must be a non-empty array"),
        ('nats = "http://h"\nnode_url = "http://h:1"', "is not a nats://HOST"),
        ('nats = "nats://h"\nnode_url = "ws://h:1"', "must be http(s)://HOST"),
        ('nats = "nats://h"\nnode_url = "http://h:1"\nnode_name = "a.b"', "node_name 'a.b' must be"),
        ('nats = "nats://h"\nnode_url = "http://h:1"\nsmall_requests = "x"', "unknown value 'x'"),
        ('nats = "nats://h"\nnode_url = "http://h:1"\ndirect = "no"', "cluster.direct"),
        ('nats = "nats://h"\nnode_url = "http://h:1"\ncreds_file = "no"', "file not found"),
        ('nats = "nats://h"\nnode_url = "http://h:1"\nnode = 1', "unknown key"),
    ],
)
def test_bad_tables_name_the_key(tmp_path: Path, table: str, reason: str) -> None:
    with pytest.raises(ConfigError, match="relay.toml: cluster") as caught:
        _load(tmp_path, "[cluster]\n" + table + "\n")
    assert reason in str(caught.value)


def test_credentials_never_show_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_nats_urls("nats://admin:hunter2@h:notaport")
    assert "hunter2" not in str(caught.value) and "***@" in str(caught.value)
    assert redact_url("nats://tok3n@h:4222") == "nats://***@h:4222"
    assert redact_url("nats://h:4222") == "nats://h:4222"


def test_node_url_is_kept_without_a_slash_and_with_a_port_filled_in() -> None:
    assert parse_node_url("http://h:1/") == "http://h:1"
    config = ClusterConfig(("nats://h",), "http://h:0", "w0")
    assert config.with_port(4321).node_url == "http://h:4321"
    with pytest.raises(ConfigError, match="must be http"):
        parse_node_url("http://user@h:1")
