"""relay.exceptions: the core's errors become the relay's at the boundary, statuses kept."""

from __future__ import annotations

import pytest

from hc import exceptions as hc_errors
from relay import exceptions as relay_errors

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network


@pytest.mark.parametrize(
    ("core", "relay", "status", "code"),
    [
        (hc_errors.MalformedToken, relay_errors.MalformedToken, 401, "MalformedToken"),
        (hc_errors.TokenRejected, relay_errors.AuthError, 401, "Unauthorized"),
        (hc_errors.AccessDenied, relay_errors.AccessDenied, 403, "Forbidden"),
        (hc_errors.MalformedMessage, relay_errors.MalformedMessage, 400, "MalformedMessage"),
        (hc_errors.RemoteProtocolError, relay_errors.ProtocolViolation, 400, "ProtocolViolation"),
        (hc_errors.InvalidConnectionString, relay_errors.BadRequest, 400, "BadRequest"),
        (hc_errors.LocalProtocolError, relay_errors.RelayError, 500, "InternalError"),
    ],
)
def test_from_hc_maps_to_the_relay_error_with_its_status_and_code(
    core: type[hc_errors.HcError], relay: type[relay_errors.RelayError], status: int, code: str
) -> None:
    mapped = relay_errors.from_hc(core("the reason"))
    assert type(mapped) is relay
    assert (mapped.status, mapped.code, str(mapped)) == (status, code, "the reason")


def test_relay_errors_pass_through_unchanged() -> None:
    error = relay_errors.MalformedToken("bad")
    assert relay_errors.from_hc(error) is error


@pytest.mark.parametrize(
    ("relay", "core"),
    [
        (relay_errors.MalformedToken, hc_errors.MalformedToken),
        (relay_errors.MalformedMessage, hc_errors.MalformedMessage),
        (relay_errors.ProtocolViolation, hc_errors.RemoteProtocolError),
    ],
)
def test_the_relay_protocol_errors_are_also_the_cores(
    relay: type[relay_errors.RelayError], core: type[hc_errors.HcError]
) -> None:
    error = relay("x")
    assert isinstance(error, core) and isinstance(error, relay_errors.RelayError)
    with pytest.raises(core):
        raise error


def test_the_relay_keeps_its_statuses_for_the_shared_classes() -> None:
    assert relay_errors.MalformedToken("x").status == 401
    assert isinstance(relay_errors.MalformedToken("x"), relay_errors.AuthError)
    assert relay_errors.MalformedMessage("x").status == 400
