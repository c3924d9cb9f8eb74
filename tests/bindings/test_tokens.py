"""Token providers with an injected clock: caching, renewal, audiences, fixed tokens. No I/O."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from bindings.tokens import (
    FixedTokenProvider,
    SecurityToken,
    SharedAccessKeyTokenProvider,
    TokenProvider,
)
from hc.exceptions import MalformedToken
from hc.sas import SasToken, create_token

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

KEY_NAME, KEY = "Root", "dGVzdGtleS1mb3ItdGVzdHMtb25seS0wMDAwMDAwMA=="
PAYROLL, TIMESHEET = "http://127.0.0.1:9350/payroll", "http://127.0.0.1:9350/timesheet"


class Clock:
    """Unix seconds that move only when the test says so."""

    def __init__(self, now: float = 1_700_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def provider(clock: Clock, ttl: float = 3600) -> TokenProvider:
    return TokenProvider.shared_access_key(KEY_NAME, KEY, ttl=ttl, clock=clock)


def parsed(token: SecurityToken) -> SasToken:
    return SasToken.parse(token.text)


def test_a_signed_token_is_for_the_audience_and_lives_ttl_seconds() -> None:
    clock = Clock()
    token = provider(clock).get_token(PAYROLL)
    sas = parsed(token)
    assert unquote(sas.raw_resource) == PAYROLL and sas.key_name == KEY_NAME
    assert sas.signature_matches(KEY) and not sas.signature_matches("another key")
    assert token.expires_at == sas.expiry == clock.now + 3600


def test_the_token_is_cached_until_a_fifth_of_its_life_is_left() -> None:
    clock = Clock()
    tokens = provider(clock)
    first = tokens.get_token(PAYROLL)
    clock.now += 3600 - 720 - 1  # 721 s left: more than ttl / 5
    assert tokens.get_token(PAYROLL) is first
    clock.now += 1  # 720 s left: time to re-sign
    renewed = tokens.get_token(PAYROLL)
    assert renewed.text != first.text and renewed.expires_at == clock.now + 3600
    assert tokens.get_token(PAYROLL) is renewed


def test_each_audience_has_its_own_cached_token() -> None:
    clock = Clock()
    tokens = provider(clock)
    payroll, timesheet = tokens.get_token(PAYROLL), tokens.get_token(TIMESHEET)
    assert unquote(parsed(timesheet).raw_resource) == TIMESHEET
    assert payroll.text != timesheet.text
    assert tokens.get_token(PAYROLL) is payroll and tokens.get_token(TIMESHEET) is timesheet
    clock.now += 3000  # both due: each is re-signed for its own audience
    assert unquote(parsed(tokens.get_token(TIMESHEET)).raw_resource) == TIMESHEET
    assert tokens.get_token(PAYROLL) is not payroll


def test_a_ttl_under_a_minute_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 60 seconds"):
        provider(Clock(), ttl=59)
    assert isinstance(provider(Clock(), ttl=60), SharedAccessKeyTokenProvider)


def test_a_fixed_token_takes_its_expiry_from_se_and_is_never_renewed() -> None:
    text = create_token(PAYROLL, KEY_NAME, KEY, ttl=600, now=1_700_000_000)
    fixed = TokenProvider.shared_access_signature(text)
    assert isinstance(fixed, FixedTokenProvider)
    token = fixed.get_token(PAYROLL)
    assert (token.text, token.expires_at) == (text, 1_700_000_600)
    assert fixed.get_token(TIMESHEET) is token  # one token, whatever the audience
    assert "sig" not in repr(fixed) and text not in repr(token)


def test_a_fixed_token_must_be_a_sas_token() -> None:
    with pytest.raises(MalformedToken):
        TokenProvider.shared_access_signature("Bearer abc")


def test_expires_within() -> None:
    token = SecurityToken("t", expires_at=100.0)
    assert token.expires_within(10, now=90) and not token.expires_within(10, now=89.5)
