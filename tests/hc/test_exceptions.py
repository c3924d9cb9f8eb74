"""hc.exceptions: who broke the rules decides the branch; every error has a status hint."""

from __future__ import annotations

import pytest

from hc import exceptions as hc_errors


@pytest.mark.parametrize(
    ("error", "branch", "status"),
    [
        (hc_errors.LocalProtocolError("sent a body twice"), hc_errors.ProtocolError, 500),
        (hc_errors.RemoteProtocolError("sent a body twice"), hc_errors.ProtocolError, 400),
        (hc_errors.MalformedMessage("not JSON"), hc_errors.RemoteProtocolError, 400),
        (hc_errors.MalformedToken("no sig"), hc_errors.RemoteProtocolError, 401),
        (hc_errors.TokenRejected("expired"), hc_errors.HcError, 401),
        (hc_errors.AccessDenied("no Send"), hc_errors.HcError, 403),
        (hc_errors.InvalidConnectionString("no Endpoint"), ValueError, 400),
    ],
)
def test_each_error_has_its_branch_and_status(
    error: hc_errors.HcError, branch: type[Exception], status: int
) -> None:
    assert isinstance(error, hc_errors.HcError)
    assert isinstance(error, branch)
    assert error.status == status


def test_local_and_remote_are_distinct() -> None:
    assert not isinstance(hc_errors.LocalProtocolError(), hc_errors.RemoteProtocolError)
    assert not isinstance(hc_errors.MalformedMessage(), hc_errors.LocalProtocolError)


def test_the_status_hint_can_be_set_per_error() -> None:
    error = hc_errors.RemoteProtocolError("head too large", status=431)
    assert (error.status, str(error)) == (431, "head too large")
    assert hc_errors.RemoteProtocolError("x").status == 400  # the class default is untouched
