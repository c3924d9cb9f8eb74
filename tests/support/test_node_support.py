"""Checks for tests/support/node.py and the Node scripts that need no relay."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from .node import (
    NODE_SKIP_REASON,
    NodeProcess,
    NodeProcessError,
    node_available,
    run_node,
)

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON),
]

TOKEN_RE = re.compile(
    r"^SharedAccessSignature sr=[^&\s]+&sig=[^&\s]+&se=\d+&skn=[^&\s]+$"
)


def _fields(token: str) -> dict[str, str]:
    body = token.removeprefix("SharedAccessSignature ")
    return dict(part.split("=", 1) for part in body.split("&"))


def _expected_sig(raw_sr: str, se: str, key: str) -> str:
    """Spec: HMAC-SHA256 over the raw (still encoded) sr + "\\n" + se, keyed with UTF-8 key text."""
    mac = hmac.new(key.encode("utf-8"), f"{raw_sr}\n{se}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def test_token_js_makes_a_verifiable_token() -> None:
    key = "bXlrZXk=+/not-decoded"  # looks like base64; must be used as text
    before = int(time.time())
    done = run_node(
        "token.js",
        "ws://127.0.0.1:9350/$hc/payroll?sb-hc-action=listen",
        "RootManageSharedAccessKey",
        key,
        "120",
    )
    after = int(time.time())

    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert TOKEN_RE.match(token), token
    fields = _fields(token)
    assert fields["skn"] == "RootManageSharedAccessKey"
    # hyco-https signs http://HOST:PORT/PATH: scheme forced to http, $hc/ and query dropped.
    assert fields["sr"] == "http%3A%2F%2F127.0.0.1%3A9350%2Fpayroll"
    assert before + 120 <= int(fields["se"]) <= after + 120
    sig = unquote(fields["sig"])
    assert hmac.compare_digest(sig, _expected_sig(fields["sr"], fields["se"], key))
    assert not hmac.compare_digest(
        sig, _expected_sig(fields["sr"], fields["se"], key + "x")
    )


def test_token_js_usage_error() -> None:
    done = run_node("token.js", "ws://127.0.0.1:9350/$hc/x")
    assert done.returncode == 2
    assert "usage" in done.stderr


def test_node_process_waits_for_ready_and_collects_lines(tmp_path: Path) -> None:
    script = tmp_path / "ready.js"
    script.write_text(
        "console.log('starting');\n"
        "setTimeout(() => { console.log('READY now'); console.log('{\"n\":1}'); }, 50);\n"
        "setInterval(() => {}, 1000);\n"
    )
    with NodeProcess(script) as proc:
        assert proc.ready_line == "READY now"
        assert proc.wait_for_line('{"n":1}') == '{"n":1}'
        assert proc.lines[:2] == ["starting", "READY now"]
    assert proc.returncode is not None


def test_node_process_reports_exit_before_ready_with_stderr() -> None:
    # The listener refuses to start without --path and says why on stderr.
    with pytest.raises(NodeProcessError) as info:
        NodeProcess("https_echo_listener.js", "--key", "k").start()
    message = str(info.value)
    assert "exited with code 2" in message
    assert "missing --path" in message


def test_node_process_ready_timeout_kills_the_process(tmp_path: Path) -> None:
    script = tmp_path / "silent.js"
    script.write_text("setInterval(() => {}, 1000);\n")
    proc = NodeProcess(script, ready_timeout=0.5)
    with pytest.raises(NodeProcessError, match="timed out"):
        proc.start()
    assert proc.returncode is not None
