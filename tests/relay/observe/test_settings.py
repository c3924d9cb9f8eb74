"""``[admin]``, ``[observe]`` and ``[[webhook]]`` in the TOML config."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import load_config
from relay.exceptions import ConfigError
from relay.observe.settings import AdminSettings, ObserveSettings, WebhookSettings

pytestmark = pytest.mark.usefixtures("no_sockets")

GOOD = """
[admin]
port = 9351

[observe]
capture = ["/Payroll/"]
inspector_calls = 50
node = "relay-a"

[[webhook]]
url = "https://hooks.example.com/presence?code=x"

[[webhook]]
url = "http://127.0.0.1:8080/all"
events = ["ListenerDisconnected", "InvalidSasToken"]
"""


def load(tmp_path: Path, text: str) -> ObserveSettings:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return load_config(path).observe


def test_defaults_observe_without_capture_and_no_admin_address(tmp_path: Path) -> None:
    settings = load(tmp_path, "")
    assert settings == ObserveSettings()
    assert settings.capture == frozenset() and settings.admin.port is None
    assert settings.admin.host == "127.0.0.1"


def test_every_key(tmp_path: Path) -> None:
    settings = load(tmp_path, GOOD)
    assert settings.admin == AdminSettings(port=9351)
    assert settings.capture == frozenset({"payroll"})
    assert settings.inspector_calls == 50 and settings.node == "relay-a"
    assert settings.webhooks == (
        WebhookSettings("https://hooks.example.com/presence?code=x"),
        WebhookSettings("http://127.0.0.1:8080/all", ("ListenerDisconnected", "InvalidSasToken")),
    )


@pytest.mark.parametrize(("text", "message"), [
    ("[admin]\nport = 70000", "admin.port: must be 0..65535"),
    ("[admin]\nprot = 1", "admin.prot: unknown key"),
    ("[observe]\ninspector_calls = -1", "observe.inspector_calls: must be 0 or more"),
    ("[observe]\ncapture = [1]", "observe.capture: must be an array of entity paths"),
    ("[observe]\nnode = 3", "observe.node: must be str, not int"),
    ("[[webhook]]\nurl = 'ftp://x/'", "webhook[0].url: 'ftp://x/' is not an http(s) URL"),
    ("[[webhook]]\nevents = []", "webhook[0].url: is required"),
    ("[[webhook]]\nurl = 'http://x/'\nevents = ['ListenerGone']", "unknown event 'ListenerGone'"),
])
def test_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert "relay.toml: " in str(caught.value) and message in str(caught.value)
