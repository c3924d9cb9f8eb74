"""Binding tests never see the developer's own ``SOAPRELAY_CONNECTION_STRING``."""

from __future__ import annotations

import pytest

from bindings.connection_string import ENV_VAR


@pytest.fixture(autouse=True)
def _no_connection_string_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
