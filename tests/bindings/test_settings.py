"""bindings.settings: connection strings from callers and from SOAPRELAY_CONNECTION_STRING."""

from __future__ import annotations

import pytest

from bindings.exceptions import BindingError, ConfigurationError
from bindings.settings import (
    ENV_VAR,
    connection_string_from_env,
    default_connection_string,
    parse_connection_string,
)
from hc.connection_string import ConnectionString

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY0o="
CS = f"Endpoint=sb://relay.example.com/;SharedAccessKeyName=Root;SharedAccessKey={KEY}"


def test_parse_passes_a_parsed_one_through_and_parses_text() -> None:
    parsed = ConnectionString.parse(CS)
    assert parse_connection_string(parsed) is parsed
    assert parse_connection_string(CS) == parsed


def test_bad_text_is_a_configuration_error_without_the_key() -> None:
    with pytest.raises(ConfigurationError, match="SharedAccessKeyName twice") as caught:
        parse_connection_string(CS + ";sharedaccesskeyname=Other")
    assert isinstance(caught.value, BindingError)
    assert KEY not in str(caught.value)


def test_from_env() -> None:
    assert connection_string_from_env({ENV_VAR: CS}) == ConnectionString.parse(CS)
    with pytest.raises(ConfigurationError, match=f"{ENV_VAR} is not set"):
        connection_string_from_env({})
    with pytest.raises(ConfigurationError, match="is not set"):
        connection_string_from_env({ENV_VAR: "  "})


def test_env_default_is_for_its_own_relay_only() -> None:
    local = "Endpoint=sb://127.0.0.1:9350/;SharedAccessKeyName=R;SharedAccessKey=k"
    env = {ENV_VAR: local}
    assert default_connection_string(None, env) == ConnectionString.parse(local)
    assert default_connection_string("http://127.0.0.1:9350", env) is not None
    assert default_connection_string("HTTP://127.0.0.1:9350/", env) is not None
    assert default_connection_string("http://127.0.0.1:9351", env) is None
    assert default_connection_string("https://127.0.0.1:9350", env) is None
    assert default_connection_string(None, {}) is None
    with pytest.raises(ConfigurationError, match=f"^environment variable {ENV_VAR}: "):
        default_connection_string(None, {ENV_VAR: "Endpoint=sb://h/"})


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, CS)

    assert connection_string_from_env().key == KEY
