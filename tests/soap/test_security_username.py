"""Tests for soap.security.username and soap.security.replay."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from lxml import etree

from soap import ns
from soap.envelope import Envelope, SoapVersion, build_envelope
from soap.exceptions import (
    FailedAuthentication,
    InvalidSecurity,
    InvalidSecurityToken,
    MessageExpired,
)
from soap.security.header import find_security_header
from soap.security.replay import MemoryReplayCache
from soap.security.timestamp import Freshness
from soap.security.username import (
    USERNAME_TOKEN,
    PasswordType,
    UsernameToken,
    UsernameTokenHook,
    authenticate,
    password_digest,
)
from tests.soap.test_security_trust import T0

Canon = Callable[[bytes | etree._Element], bytes]
MIN = timedelta(minutes=1)
USERS = {"alice": "s3cret", "bob": "hunter2"}
NONCE = b"0123456789abcdef"


def _check(token: UsernameToken, cache: MemoryReplayCache | None = None, **kwargs: object) -> str:
    return authenticate(
        token,
        USERS.get,
        now=kwargs.pop("now", T0),  # type: ignore[arg-type]
        freshness=Freshness(),
        replay_cache=cache if cache is not None else MemoryReplayCache(),
        **kwargs,  # type: ignore[arg-type]
    )


def test_digest_follows_the_profile_formula() -> None:
    created = "2030-01-01T12:00:00.000Z"
    expected = base64.b64encode(
        hashlib.sha1(NONCE + created.encode() + b"s3cret").digest()
    ).decode()
    assert password_digest(NONCE, created, "s3cret") == expected


def test_digest_token_round_trip(canon: Canon) -> None:
    token = UsernameToken.with_digest("alice", "s3cret", T0, nonce=NONCE)
    element = token.to_element()
    again = UsernameToken.from_element(element)
    assert again == token
    assert again.password_type is PasswordType.DIGEST
    assert element.findtext(f"{{{ns.WSSE}}}Password") == password_digest(
        NONCE, "2030-01-01T12:00:00.000Z", "s3cret"
    )
    assert element.find(f"{{{ns.WSSE}}}Nonce").get("EncodingType") == ns.BASE64_BINARY  # type: ignore[union-attr]


def test_repr_hides_password_and_nonce() -> None:
    text = repr(UsernameToken("alice", "s3cret", nonce=NONCE))
    assert "s3cret" not in text and "0123" not in text
    assert "s3cret" not in repr(UsernameTokenHook("alice", "s3cret"))


def test_text_token_accepted() -> None:
    assert _check(UsernameToken("alice", "s3cret")) == "alice"


def test_digest_token_accepted() -> None:
    assert _check(UsernameToken.with_digest("bob", "hunter2", T0)) == "bob"


@pytest.mark.parametrize(
    "token",
    [
        UsernameToken("alice", "wrong"),
        UsernameToken("mallory", "s3cret"),
        UsernameToken("alice", None),
        UsernameToken.with_digest("alice", "wrong", T0),
        UsernameToken.with_digest("mallory", "s3cret", T0),
    ],
)
def test_wrong_credentials_fail_the_same_way(token: UsernameToken) -> None:
    with pytest.raises(FailedAuthentication, match="user name or password is wrong"):
        _check(token)


def test_replayed_nonce_is_refused_until_it_expires() -> None:
    cache = MemoryReplayCache()
    token = UsernameToken.with_digest("alice", "s3cret", T0)
    _check(token, cache)
    with pytest.raises(InvalidSecurity, match="nonce was used before"):
        _check(token, cache, now=T0 + MIN)
    # Once the nonce is forgotten, the token is too old to be accepted anyway.
    with pytest.raises(MessageExpired):
        _check(token, cache, now=T0 + 16 * MIN)


def test_a_failed_attempt_does_not_burn_the_nonce() -> None:
    cache = MemoryReplayCache()
    good = UsernameToken.with_digest("alice", "s3cret", T0, nonce=NONCE)
    bad = UsernameToken("alice", "AAAA", PasswordType.DIGEST, NONCE, good.created, good.id)
    with pytest.raises(FailedAuthentication):
        _check(bad, cache)
    assert _check(good, cache) == "alice"


@pytest.mark.parametrize(("offset", "message"), [(6, "in the future"), (-11, "older than")])
def test_stale_created_is_refused(offset: int, message: str) -> None:
    token = UsernameToken.with_digest("alice", "s3cret", T0 + offset * MIN)
    with pytest.raises(MessageExpired, match=message):
        _check(token)


def test_password_text_can_be_refused() -> None:
    with pytest.raises(InvalidSecurityToken, match="PasswordText"):
        _check(UsernameToken("alice", "s3cret"), allow_text=False)
    assert _check(UsernameToken.with_digest("alice", "s3cret", T0), allow_text=False)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (UsernameToken("alice", "x", PasswordType.DIGEST), "Nonce and a Created"),
        (UsernameToken("alice", "s3cret", nonce=NONCE), "Nonce needs a Created"),
    ],
)
def test_incomplete_tokens(token: UsernameToken, message: str) -> None:
    with pytest.raises(InvalidSecurityToken, match=message):
        _check(token)


def _token_xml(body: str) -> etree._Element:
    return etree.fromstring(
        f'<wsse:UsernameToken xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}">{body}'
        "</wsse:UsernameToken>"
    )


def test_missing_type_means_text() -> None:
    token = UsernameToken.from_element(
        _token_xml("<wsse:Username> alice </wsse:Username><wsse:Password>s3cret</wsse:Password>")
    )
    assert token == UsernameToken("alice", "s3cret")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "no Username"),
        ("<wsse:Username>  </wsse:Username>", "no Username"),
        ("<wsse:Username>a</wsse:Username><wsse:Username>b</wsse:Username>", "repeats"),
        ('<wsse:Username>a</wsse:Username><wsse:Password Type="urn:x">p</wsse:Password>', "Type"),
        ("<wsse:Username>a</wsse:Username><wsse:Nonce>%%%</wsse:Nonce>", "not base64"),
        ("<wsse:Username>a</wsse:Username><wsse:Nonce></wsse:Nonce>", "empty or too long"),
        (f"<wsse:Username>a</wsse:Username><wsse:Nonce>{'A' * 400}</wsse:Nonce>", "too long"),
        ('<wsse:Username>a</wsse:Username><wsse:Nonce EncodingType="urn:hex">00</wsse:Nonce>',
         "Base64Binary"),
    ],
)  # fmt: skip
def test_malformed_tokens(body: str, message: str) -> None:
    with pytest.raises(InvalidSecurityToken, match=message):
        UsernameToken.from_element(_token_xml(body))


def test_malformed_created_is_invalid_security() -> None:
    element = _token_xml(
        "<wsse:Username>alice</wsse:Username><wsse:Password>s3cret</wsse:Password>"
        "<wsu:Created>noon</wsu:Created>"
    )
    with pytest.raises(InvalidSecurity, match="Created"):
        _check(UsernameToken.from_element(element))


@pytest.mark.parametrize("digest", [True, False])
def test_hook_egress(digest: bool) -> None:
    hook = UsernameTokenHook("alice", "s3cret", digest=digest, clock=lambda: T0)
    root = build_envelope(SoapVersion.SOAP12, [etree.Element("{urn:p}Ping")])
    hook.egress(root, {})
    hook.egress(root, {})
    security = find_security_header(Envelope.from_element(root))
    assert security is not None
    elements = security.findall(USERNAME_TOKEN)
    assert len(elements) == 1
    token = UsernameToken.from_element(elements[0])
    assert token.password_type is (PasswordType.DIGEST if digest else PasswordType.TEXT)
    assert _check(token) == "alice"


def test_digest_nonces_differ_per_message() -> None:
    hook = UsernameTokenHook("alice", "s3cret", clock=lambda: T0)
    assert hook.token().nonce != hook.token().nonce


class TestMemoryReplayCache:
    def test_remembers_until_expiry(self) -> None:
        cache = MemoryReplayCache()
        assert cache.add("k", T0, T0 + MIN)
        assert not cache.add("k", T0, T0 + MIN)
        assert not cache.add("k", T0 + MIN - timedelta(seconds=1), T0 + 2 * MIN)
        assert cache.add("k", T0 + MIN, T0 + 2 * MIN)
        assert len(cache) == 1

    def test_fails_closed_when_full(self) -> None:
        cache = MemoryReplayCache(max_entries=2)
        assert cache.add("a", T0, T0 + MIN)
        assert cache.add("b", T0, T0 + 2 * MIN)
        assert not cache.add("c", T0, T0 + MIN)
        assert cache.add("c", T0 + MIN, T0 + 3 * MIN)  # "a" expired, room again
        assert "2/2" in repr(cache)

    def test_expiry_order_does_not_matter(self) -> None:
        cache = MemoryReplayCache()
        times: list[datetime] = [T0 + n * MIN for n in (5, 1, 3)]
        for n, until in enumerate(times):
            assert cache.add(str(n), T0, until)
        cache.add("probe", T0 + 2 * MIN, T0 + 9 * MIN)
        assert len(cache) == 3  # only the entry expiring at +1 went
