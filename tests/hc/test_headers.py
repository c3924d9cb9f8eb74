"""Pure header rules: token order and stripping, hop-by-hop removal, Via, request target."""

from __future__ import annotations

from hc.headers import (
    TokenLocation,
    find_token,
    forwarded_request_headers,
    forwarded_response_headers,
    request_target,
)

SAS = "SharedAccessSignature sr=x&sig=y&se=1&skn=k"


def test_token_order() -> None:
    headers = [("ServiceBusAuthorization", "sb"), ("Authorization", SAS)]
    assert find_token([("sb-hc-token", "q")], headers) == ("q", TokenLocation.QUERY)
    assert find_token([], headers) == ("sb", TokenLocation.SERVICE_BUS_HEADER)
    assert find_token([], [("authorization", SAS)]) == (SAS, TokenLocation.AUTHORIZATION_HEADER)
    assert find_token([], [("Authorization", "Basic abc")]) == (None, None)


def test_request_headers_lose_credentials_and_framing() -> None:
    headers = [
        ("Host", "relay"), ("Content-Length", "5"), ("Connection", "keep-alive"),
        ("Transfer-Encoding", "chunked"), ("ServiceBusAuthorization", "t"),
        ("Authorization", "Basic abc"), ("SOAPAction", '"urn:x"'), ("Via", "1.0 proxy"),
    ]
    out = forwarded_request_headers(headers, TokenLocation.SERVICE_BUS_HEADER, "relay:9350")
    assert out == (("Authorization", "Basic abc"), ("SOAPAction", '"urn:x"'), ("Via", "1.0 proxy, 1.1 relay:9350"))
    used = forwarded_request_headers([("Authorization", SAS)], TokenLocation.AUTHORIZATION_HEADER, "r")
    assert used == (("Via", "1.1 r"),)


def test_response_headers_lose_framing() -> None:
    out = forwarded_response_headers(
        [("Content-Length", "3"), ("Transfer-Encoding", "chunked"), ("Set-Cookie", "a"), ("Set-Cookie", "b")], "r"
    )
    assert out == (("Set-Cookie", "a"), ("Set-Cookie", "b"), ("Via", "1.1 r"))


def test_request_target_keeps_raw_query_minus_sb_hc() -> None:
    assert request_target("/p/x", "wsdl") == "/p/x?wsdl"
    assert request_target("/p", "a=%20b&sb-hc-token=T&sb-hc-id=1&c") == "/p?a=%20b&c"
    assert request_target("/p", "sb-hc-token=T") == "/p"
