"""hc.oauth: the client-credentials request and the provider's answers. No I/O."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hc.oauth import (
    JWT_BEARER,
    MAX_ANSWER,
    ClientCredentials,
    HttpAnswer,
    OAuthError,
    http_request,
    parse_answer,
    read_discovery,
    read_token,
)

pytestmark = pytest.mark.usefixtures("no_sockets")


def test_the_request_carries_form_encoded_basic_credentials_and_the_form() -> None:
    credentials = ClientCredentials("app:1", "s3cr&t", scope="https://relay.azure.net/.default")
    assert "s3cr" not in repr(credentials)
    pair = base64.b64decode(credentials.authorization().removeprefix("Basic ")).decode()
    assert pair == "app%3A1:s3cr%26t"
    assert credentials.form() == (b"grant_type=client_credentials"
                                  b"&scope=https%3A%2F%2Frelay.azure.net%2F.default")
    assert ClientCredentials("a", "b", resource="https://relay.test/").form().endswith(
        b"&resource=https%3A%2F%2Frelay.test%2F")
    request = http_request("POST", "https://u@idp.test:8443/t/token?x=1", [("A", "b")], b"body")
    assert request.startswith(b"POST /t/token?x=1 HTTP/1.1\r\nHost: idp.test:8443\r\nConnection: close\r\n")
    assert request.endswith(b"Content-Length: 4\r\nA: b\r\n\r\nbody")
    with pytest.raises(ValueError, match="line break"):
        http_request("GET", "https://idp.test/", [("X", "a\r\nEvil: 1")])


def test_answers_with_a_length_or_chunks_are_read() -> None:
    body = json.dumps({"access_token": "eyJ.a.b", "expires_in": "3599"}).encode()
    plain = parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    chunked = parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"5\r\n" + body[:5] + b"\r\n%x\r\n" % (len(body) - 5) + body[5:] + b"\r\n0\r\n\r\n")
    assert plain == chunked == HttpAnswer(200, body)
    assert read_token(plain) == ("eyJ.a.b", 3599.0)


@pytest.mark.parametrize("data, problem", [
    (b"SSH-2.0\r\n\r\n", "not HTTP/1"),
    (b"HTTP/1.1 200 OK\r\n" + b"x" * MAX_ANSWER, "over"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "broken chunked"),
])
def test_broken_answers_are_named(data: bytes, problem: str) -> None:
    with pytest.raises(OAuthError, match=problem):
        parse_answer(data)


def test_the_providers_refusal_keeps_its_error_and_status() -> None:
    refusal = HttpAnswer(401, b'{"error": "invalid_client", "error_description": "bad secret"}')
    with pytest.raises(OAuthError, match="HTTP 401 invalid_client: bad secret") as caught:
        read_token(refusal)
    assert caught.value.status == 401
    for body in (b"<html>", b"[]", b'{"access_token": "a b"}', b'{"access_token": "t", "expires_in": -1}'):
        with pytest.raises(OAuthError) as bad:
            read_token(HttpAnswer(200, body))
        assert bad.value.status == 502  # the provider's nonsense, not a refusal of ours


def test_discovery_names_the_token_endpoint() -> None:
    assert read_discovery(HttpAnswer(200, b'{"token_endpoint": "https://idp.test/token"}')) == "https://idp.test/token"
    for answer in (HttpAnswer(404, b"{}"), HttpAnswer(200, b'{"token_endpoint": "javascript:x"}')):
        with pytest.raises(OAuthError):
            read_discovery(answer)


def test_a_private_key_client_signs_a_short_assertion_for_the_endpoint() -> None:
    key = rsa.generate_private_key(65537, 2048)
    credentials = ClientCredentials("app", private_key=key, key_id="k1", resource="https://relay.test/")
    assert credentials.headers() == [("Content-Type", "application/x-www-form-urlencoded")]
    form = parse_qs(credentials.form("https://idp.test/token", 1_900_000_000).decode())
    assert form["client_id"] == ["app"] and form["client_assertion_type"] == [JWT_BEARER]
    (assertion,) = form["client_assertion"]
    assert jwt.get_unverified_header(assertion)["kid"] == "k1"
    claims = jwt.decode(assertion, key.public_key(), algorithms=["RS256"], audience="https://idp.test/token",
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == claims["sub"] == "app" and claims["exp"] - claims["iat"] == 300
    for wrong in ({}, {"client_secret": "s", "private_key": key}):
        with pytest.raises(ValueError, match="a secret or a private key"):
            ClientCredentials("app", **wrong)
