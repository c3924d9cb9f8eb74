"""NetTcpRelayBinding's settings and what a host accepts with it (no sockets)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("no_sockets")


def test_a_nettcp_host_needs_a_spyne_application() -> None:
    from bindings import NetTcpRelayBinding, RelayServiceHost
    from bindings.exceptions import ConfigurationError

    def wsgi(environ: object, start_response: object) -> list[bytes]:
        return []

    with pytest.raises(ConfigurationError, match="hosts a Spyne Application"):
        RelayServiceHost(wsgi, "http://127.0.0.1:9/x", binding=NetTcpRelayBinding())


def test_binding_settings_are_checked() -> None:
    from bindings import ConcurrencyMode, ConnectionMode, NetTcpRelayBinding

    binding = NetTcpRelayBinding(connection_mode="hybrid", concurrency_mode="multiple")
    assert (binding.connection_mode, binding.concurrency_mode) == (
        ConnectionMode.HYBRID, ConcurrencyMode.MULTIPLE)
    assert (binding.soap_version, binding.addressing) == ("1.2", True)
    with pytest.raises(ValueError, match="at least 1"):
        NetTcpRelayBinding(max_sessions=0)
    with pytest.raises(ValueError, match="'sideways' is not a valid ConnectionMode"):
        NetTcpRelayBinding(connection_mode="sideways")
