"""The SDK's token providers, on an injected clock."""

from __future__ import annotations

import pytest

from hc.asyncio import SharedAccessSignatureTokenProvider, TokenProvider
from hc.sas import SasToken, create_token


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_signs_tokens_for_the_audience_cached_until_a_fifth_of_their_life_is_left() -> None:
    clock = Clock()
    provider = SharedAccessSignatureTokenProvider("Root", "secret", clock=clock)
    first = await provider.get_token("http://relay/echo", ttl=1000)
    parsed = SasToken.parse(first.token)
    assert parsed.key_name == "Root" and parsed.expiry == first.expires_at == clock.now + 1000
    assert parsed.signature_matches("secret")
    clock.now += 799
    assert await provider.get_token("http://relay/echo", ttl=1000) is first
    clock.now += 2  # 199 s left: under a fifth
    fresh = await provider.get_token("http://relay/echo", ttl=1000)
    assert fresh.token != first.token and fresh.expires_at == clock.now + 1000
    other = await provider.get_token("http://relay/other", ttl=1000)
    assert SasToken.parse(other.token).raw_resource.endswith("other")


async def test_a_signature_is_handed_out_as_it_is() -> None:
    text = create_token("http://relay/echo", "Root", "secret", ttl=600, now=1_700_000_000)
    provider = TokenProvider.create_shared_access_signature_token_provider(text)
    token = await provider.get_token("http://relay/anything")
    assert token.token == text and token.expires_at == 1_700_000_600
    assert "secret" not in repr(provider) and "sig=" not in repr(token)


def test_the_factory_takes_a_key_name_and_key_or_a_signature_and_refuses_junk() -> None:
    keyed = TokenProvider.create_shared_access_signature_token_provider("Root", "secret")
    assert isinstance(keyed, SharedAccessSignatureTokenProvider) and "Root" in repr(keyed)
    with pytest.raises(ValueError, match="not a SharedAccessSignature"):
        TokenProvider.create_shared_access_signature_token_provider("not a token")
    with pytest.raises(ValueError, match="key name and key"):
        SharedAccessSignatureTokenProvider()
