"""``soaprelay`` in-process: help texts, one-line errors with exit code 2, and ``token``.

``serve`` and ``forward`` run against stand-ins for ``relay.server`` and
``bindings.forwarder`` here (argument handling only); the real ones are
tested elsewhere.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from bindings.settings import ENV_VAR
from hc.connection_string import ConnectionString
from hc.entities import Rights
from hc.exceptions import AccessDenied
from hc.sas import Resource, SasToken, SasVerifier, create_token
from relay import __version__
from relay.namespace import NamespaceConfig, SasRule
from soaprelay.cli import main

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

KEY = "c2VjcmV0LWtleS1mb3ItdGhlLWNsaS10ZXN0cy0wMDAwMA=="
CS = f"Endpoint=sb://127.0.0.1:9350/;SharedAccessKeyName=Root;SharedAccessKey={KEY}"
ROOT = SasRule("Root", KEY, Rights.MANAGE | Rights.LISTEN | Rights.SEND)


@pytest.fixture(autouse=True)
def _no_env_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "phrases"),
    [
        ([], ["serve", "token", "forward", "Azure Relay Hybrid Connections", "COMMAND --help"]),
        (["serve"], ["--config FILE", "--tls-cert", "--state-dir", "development namespace"]),
        (["token"], ["--connection-string", ENV_VAR, "--ttl", "namespace root"]),
        (["forward"], ["--to URL", "--entity", "webhttp", "without changing"]),
    ],
)
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str], phrases: list[str]) -> None:
    code, out, err = _run(capsys, *argv, "--help")

    assert code == 0
    assert err == ""
    for phrase in phrases:
        assert phrase in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--version")

    assert (code, out.strip()) == (0, f"soaprelay {__version__} (pure Python)")


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        ([], "required: COMMAND"),
        (["frob"], "invalid choice: 'frob'"),
        (["serve", "--port", "x"], "'x' is not a port number"),
        (["serve", "--port", "70000"], "'70000' is not a port number"),
        (["serve", "--log-level", "chatty"], "invalid choice: 'CHATTY'"),
        (["serve", "--tls-cert", "cert.pem"], "--tls-cert and --tls-key must be given together"),
        (["serve", "--tls-cert", "no.pem", "--tls-key", "no.pem"], "TLS file not found"),
        (["serve", "--config", "missing.toml"], "missing.toml: cannot read config"),
        (["serve", "--unknown"], "unrecognized arguments: --unknown"),
        (["token"], f"pass --connection-string or set {ENV_VAR}"),
        (["token", "--connection-string", "garbage"], "not Name=Value"),
        (["token", "--connection-string", CS, "--ttl", "0"], "'0' is not a positive whole number"),
        (
            ["token", "--connection-string", CS, "--ttl", "-5"],
            "'-5' is not a positive whole number",
        ),
        (["forward", "--connection-string", CS, "--entity", "p"], "required: --to"),
        (
            ["forward", "--connection-string", CS, "--entity", "p", "--to", "ftp://x"],
            "not an http://",
        ),
        (
            ["forward", "--connection-string", CS, "--to", "http://127.0.0.1:8080"],
            "--entity is required",
        ),
        (
            ["forward", "--connection-string", CS, "--entity", "p", "--to", "u"],
            "'u' is not an http://",
        ),
        (
            [
                "forward",
                "--connection-string",
                CS,
                "--entity",
                "p",
                "--to",
                "http://h",
                "--binding",
                "x",
            ],
            "argument --binding: invalid choice: 'x'",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], reason: str
) -> None:
    code, out, err = _run(capsys, *argv)

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("soaprelay: error: ")
    assert reason in err


def test_config_error_exit_2_with_file_key_and_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('[[entity]]\npath = "a"\nkind = "one-way"\n')

    code, _, err = _run(capsys, "serve", "--config", str(config))

    assert code == 2
    assert err == f"soaprelay: error: {config}: entity[0].kind: unknown value 'one-way'" + (
        " (expected one of: request-response, oneway, event)\n"
    )


def test_toml_syntax_error_names_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[namespace]\nport = \n")

    code, _, err = _run(capsys, "serve", "--config", str(config))

    assert code == 2
    assert "invalid TOML" in err and "line 2" in err


# -- token -----------------------------------------------------------------------------------


def _verify(token: str, target: str, needed: Rights = Rights.SEND) -> None:
    SasVerifier().verify(token, Resource.from_uri(target), needed, [ROOT])


def test_token_for_entity_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "token", "--connection-string", CS, "--entity", "payroll")

    assert (code, err) == (0, "")
    token = out.strip()
    assert out.count("\n") == 1
    _verify(token, "http://127.0.0.1:9350/payroll", Rights.LISTEN)
    assert SasToken.parse(token).resource == Resource.from_uri("http://127.0.0.1:9350/payroll")
    with pytest.raises(AccessDenied):  # covers nothing else
        _verify(token, "http://127.0.0.1:9350/hr")


def test_token_uses_entity_path_then_root(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "token", "--connection-string", CS + ";EntityPath=hr")
    assert SasToken.parse(out.strip()).resource.path == "/hr"

    _, out, _ = _run(
        capsys, "token", "--connection-string", CS + ";EntityPath=hr", "--entity", "pay"
    )
    assert SasToken.parse(out.strip()).resource.path == "/pay"

    _, out, _ = _run(capsys, "token", "--connection-string", CS)
    _verify(out.strip(), "http://127.0.0.1:9350/any/entity")


def test_token_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    before = time.time()
    _, out, _ = _run(capsys, "token", "--connection-string", CS, "--ttl", "120")

    expiry = SasToken.parse(out.strip()).expiry
    assert before + 119 <= expiry <= time.time() + 120


def test_token_reads_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, CS)

    code, out, _ = _run(capsys, "token", "--entity", "payroll")

    assert code == 0
    _verify(out.strip(), "http://127.0.0.1:9350/payroll")


def test_token_needs_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    token = create_token("http://127.0.0.1:9350/", "Root", KEY)
    cs = f"Endpoint=sb://127.0.0.1:9350/;SharedAccessSignature={token}"

    code, out, err = _run(capsys, "token", "--connection-string", cs)

    assert (code, out) == (2, "")
    assert "no key to sign with" in err
    assert KEY not in err


# -- serve and forward against stand-ins -----------------------------------------------------


def _fake_module(
    monkeypatch: pytest.MonkeyPatch, name: str, **functions: Callable[..., None]
) -> None:
    module = types.ModuleType(name)
    for attribute, function in functions.items():
        setattr(module, attribute, function)
    monkeypatch.setitem(sys.modules, name, module)


def test_serve_dev_namespace_prints_address_and_connection_string(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: list[NamespaceConfig] = []

    def run(config: NamespaceConfig, *, ready: Callable[[str], None] | None = None,
            reuse_port: bool = False) -> None:
        served.append(config)
        assert ready is not None
        ready("http://127.0.0.1:54321")

    _fake_module(monkeypatch, "relay.server", run=run)

    code, out, _ = _run(capsys, "serve", "--port", "0", "--state-dir", str(tmp_path / "s"))

    assert code == 0
    (config,) = served
    assert (config.port, config.dynamic_entities) == (0, True)
    listening, connection = out.splitlines()
    assert listening == "soaprelay: listening on http://127.0.0.1:54321"
    cs = ConnectionString.parse(connection.removeprefix("soaprelay: connection string: "))
    assert (cs.http_base, cs.key) == ("http://127.0.0.1:54321", config.rules[0].key)


def test_serve_flags_override_the_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: list[NamespaceConfig] = []
    _fake_module(monkeypatch, "relay.server",
                 run=lambda config, ready=None, reuse_port=False: served.append(config))
    config_file = tmp_path / "relay.toml"
    config_file.write_text('[namespace]\nhost = "10.0.0.1"\nport = 1\nname = "contoso"\n')
    for name in ("c.pem", "k.pem"):
        (tmp_path / name).write_text("pem")

    code, _, err = _run(
        capsys, "serve", "--config", str(config_file), "--host", "0.0.0.0", "--port", "9443",
        "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"),
    )  # fmt: skip

    assert (code, err) == (0, "")
    (config,) = served
    assert (config.name, config.host, config.port) == ("contoso", "0.0.0.0", 9443)
    assert (config.tls_cert, config.tls_key) == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))


def test_serve_failure_is_one_line_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def run(config: NamespaceConfig, *, ready: Callable[[str], None] | None = None,
            reuse_port: bool = False) -> None:
        raise OSError(98, "Address already in use")

    _fake_module(monkeypatch, "relay.server", run=run)

    code, _, err = _run(capsys, "serve", "--state-dir", str(tmp_path))

    assert code == 1
    assert err == "soaprelay: error: cannot serve on 127.0.0.1:9350: Address already in use\n"


def test_serve_state_dir_with_config_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "relay.toml").write_text("")

    code, _, err = _run(
        capsys, "serve", "--config", str(tmp_path / "relay.toml"), "--state-dir", "x"
    )

    assert code == 2
    assert "--state-dir applies only to the development namespace" in err


def test_forward_calls_the_forwarder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[ConnectionString, str, str, object]] = []
    _fake_module(
        monkeypatch,
        "bindings.forwarder",
        run_forwarder=lambda cs, entity, to, proxy: calls.append((cs, entity, to, proxy)),
    )

    code, _, err = _run(
        capsys,
        "forward",
        "--connection-string",
        CS + ";EntityPath=/payroll/",
        "--to",
        "http://127.0.0.1:8080",
    )

    assert (code, err) == (0, "")
    assert calls == [
        (ConnectionString.parse(CS + ";EntityPath=payroll"), "payroll", "http://127.0.0.1:8080", True)
    ]


@pytest.mark.parametrize("flag, expected", [
    ("http://u:p@proxy.corp:3128", "http://u:p@proxy.corp:3128"),
    ("none", None),
])
def test_forward_takes_a_proxy_or_none(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flag: str, expected: object
) -> None:
    proxies: list[object] = []
    _fake_module(monkeypatch, "bindings.forwarder",
                 run_forwarder=lambda cs, entity, to, proxy: proxies.append(proxy))
    code, _, err = _run(capsys, "forward", "--connection-string", CS, "--entity", "p",
                        "--to", "http://127.0.0.1:8080", "--proxy", flag)
    assert (code, err, proxies) == (0, "", [expected])


def test_forward_refuses_a_proxy_it_cannot_use_without_echoing_its_password(
    capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "forward", "--connection-string", CS, "--entity", "p",
                        "--to", "http://127.0.0.1:8080", "--proxy", "socks5://u:hunter2@proxy:1080")
    assert code == 2 and "only http:// proxies" in err and "hunter2" not in err

# -- cluster -------------------------------------------------------------------------------


def test_serve_cluster_flags_make_a_cluster_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: list[NamespaceConfig] = []
    _fake_module(monkeypatch, "relay.server",
                 run=lambda config, ready=None, reuse_port=False: served.append(config))

    code, _, err = _run(
        capsys, "serve", "--state-dir", str(tmp_path), "--cluster",
        "nats://u:pw@10.0.0.5:4222, nats://10.0.0.6", "--node-url", "http://10.0.0.11:9350/",
        "--node-name", "relay-1",
    )  # fmt: skip

    assert (code, err) == (0, "")
    cluster = served[0].cluster
    assert cluster is not None
    assert cluster.nats == ("nats://u:pw@10.0.0.5:4222", "nats://10.0.0.6")
    assert (cluster.node_url, cluster.name) == ("http://10.0.0.11:9350", "relay-1")
    assert "pw" not in repr(cluster) and "***@10.0.0.5" in repr(cluster)
    assert cluster.direct  # direct node-to-node links unless turned off

    code, _, err = _run(capsys, "serve", "--state-dir", str(tmp_path), "--cluster", "nats://h",
                        "--node-url", "http://h:1", "--no-direct")
    assert (code, err) == (0, "")
    assert served[1].cluster is not None and not served[1].cluster.direct


def test_serve_without_cluster_flags_is_a_single_node(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: list[NamespaceConfig] = []
    _fake_module(monkeypatch, "relay.server",
                 run=lambda config, ready=None, reuse_port=False: served.append(config))

    assert _run(capsys, "serve", "--state-dir", str(tmp_path))[0] == 0
    assert served[0].cluster is None


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--cluster", "nats://h:4222"], "--cluster needs --node-url"),
        (["--node-url", "http://h:1"], "--node-url and --node-name need --cluster"),
        (["--cluster", "http://h:4222", "--node-url", "http://h:1"], "is not a nats://HOST"),
        (["--cluster", "nats://u:secret@h:x", "--node-url", "http://h:1"], "malformed NATS URL"),
        (["--cluster", "nats://h", "--node-url", "ftp://h:1"], "must be http(s)://HOST[:PORT]"),
        (["--cluster", "nats://h", "--node-url", "http://h:1/x"], "must not have a path"),
        (["--cluster", "nats://h", "--node-url", "http://h:1", "--node-name", "a b"],
         "node_name 'a b' must be"),
        (["--workers", "0"], "'0' is not a positive whole number"),
        (["--no-direct"], "--no-direct needs --cluster, --workers"),
    ],
)
def test_bad_cluster_flags_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], reason: str
) -> None:
    code, out, err = _run(capsys, "serve", "--state-dir", str(tmp_path), *argv)

    assert (code, out) == (2, "")
    assert err.startswith("soaprelay: error: ") and err.count("\n") == 1
    assert reason in err
    assert "secret" not in err


def test_serve_help_names_the_cluster_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "serve", "--help")

    assert code == 0
    for phrase in ("--cluster URLS", "--node-url URL", "--node-name NAME", "--workers N", "--no-direct"):
        assert phrase in out
    assert "--reuse-port" not in out


def test_a_cluster_without_nats_py_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "nats", None)  # as if nats-py were not installed
    code, _, err = _run(capsys, "serve", "--state-dir", str(tmp_path), "--workers", "2")

    assert code == 2
    assert err == ("soaprelay: error: a cluster (--cluster, --workers) needs nats-py: "
                   "pip install 'soap-relay[cluster]'\n")
