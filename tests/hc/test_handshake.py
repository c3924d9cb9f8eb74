"""The WebSocket opening handshake, client side, without a socket."""

from __future__ import annotations

import pytest

from hc.exceptions import LocalProtocolError, RemoteProtocolError
from hc.handshake import (
    MAX_HEAD,
    ResponseParser,
    Target,
    accept_key,
    accept_response,
    client_request,
    opening_problem,
    parse_request_head,
)


def test_the_rfc_6455_example_key_gives_the_rfc_accept() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(("url", "expected"), [
    ("ws://127.0.0.1:9350/$hc/a?x=1", Target("127.0.0.1", 9350, False, "/$hc/a?x=1")),
    ("wss://ns.example/$hc/a", Target("ns.example", 443, True, "/$hc/a")),
    ("http://h/p", Target("h", 80, False, "/p")),
    ("sb://h:5671/p", Target("h", 5671, True, "/p")),
    ("ws://[::1]:81", Target("::1", 81, False, "/")),
])
def test_targets_from_urls(url: str, expected: Target) -> None:
    assert Target.parse(url) == expected


def test_the_host_header_omits_the_default_port_and_brackets_ipv6() -> None:
    assert Target.parse("wss://h/p").host_header == "h"
    assert Target.parse("ws://[::1]:81/").host_header == "[::1]:81"


@pytest.mark.parametrize("url", ["ftp://h/p", "ws:///nohost", "h/p"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(LocalProtocolError):
        Target.parse(url)


def test_the_request_carries_upgrade_key_version_subprotocols_and_headers() -> None:
    target = Target.parse("ws://relay:9350/$hc/svc?sb-hc-action=listen")
    request, key = client_request(target, (("ServiceBusAuthorization", "tok"),),
                                  subprotocols=("a", "b"), key=b"0123456789abcdef")
    method, path, headers = parse_request_head(request[:-4])
    assert (method, path) == ("GET", "/$hc/svc?sb-hc-action=listen")
    found = dict(headers)
    assert found["Host"] == "relay:9350" and found["Upgrade"] == "websocket"
    assert found["Sec-WebSocket-Key"] == key == "MDEyMzQ1Njc4OWFiY2RlZg=="
    assert found["Sec-WebSocket-Version"] == "13" and found["Sec-WebSocket-Protocol"] == "a, b"
    assert found["ServiceBusAuthorization"] == "tok"
    assert request.endswith(b"\r\n\r\n")


def test_a_header_with_a_line_break_is_not_sent() -> None:
    with pytest.raises(LocalProtocolError):
        client_request(Target.parse("ws://h/"), (("X", "a\r\nEvil: 1"),))


def test_a_101_split_anywhere_is_accepted_and_frames_after_it_are_left_over() -> None:
    key = "k" * 24
    data = accept_response(key, (("Sec-WebSocket-Protocol", "b"),)) + b"\x81\x02hi"
    for cut in range(1, len(data)):
        parser = ResponseParser(key, ("a", "b"))
        unfed = b""
        if parser.feed(data[:cut]):
            unfed = data[cut:]  # the shell hands later bytes to the WebSocket endpoint
        else:
            assert parser.feed(data[cut:])
        assert parser.response is not None and parser.response.status == 101
        assert parser.response.header("sec-websocket-protocol") == "b"
        assert parser.leftover + unfed == b"\x81\x02hi"


@pytest.mark.parametrize(("response", "message"), [
    (b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: nope\r\n\r\n", "Accept"),
    (b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: {accept}\r\n\r\n", "Upgrade"),
    ((b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n"
     b"Sec-WebSocket-Protocol: z\r\n\r\n"), "not offered"),
    ((b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n"
     b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"), "extension"),
    (b"SMTP ready\r\n\r\n", "status line"),
    (b"HTTP/1.1 101 OK\r\nno colon here\r\n\r\n", "header line"),
])
def test_a_bad_101_is_refused_with_what_was_wrong(response: bytes, message: str) -> None:
    key = "k" * 24
    parser = ResponseParser(key, ("a",))
    with pytest.raises(RemoteProtocolError, match=message):
        parser.feed(response.replace(b"{accept}", accept_key(key).encode()))


def test_a_refusal_is_read_with_its_body_to_content_length() -> None:
    parser = ResponseParser("k")
    head = b'HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\n\r\n{"error":{}}'
    assert not parser.feed(head[:-3])
    assert parser.feed(head[-3:] + b"extra")
    assert parser.response is not None
    assert (parser.response.status, parser.response.reason) == (401, "Unauthorized")
    assert parser.response.body == b'{"error":{}}'


def test_a_refusal_without_length_ends_at_eof_and_is_bounded() -> None:
    parser = ResponseParser("k")
    assert not parser.feed(b"HTTP/1.1 404 Not Found\r\n\r\nno such")
    assert parser.feed_eof().body == b"no such"
    parser = ResponseParser("k")
    assert parser.feed(b"HTTP/1.1 500 X\r\n\r\n" + b"z" * (MAX_HEAD * 2))
    assert parser.response is not None and len(parser.response.body) == 64 * 1024


def test_a_head_that_never_ends_is_refused_past_its_bound() -> None:
    parser = ResponseParser("k")
    with pytest.raises(RemoteProtocolError, match="too long"):
        parser.feed(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEAD // 6 + 1))


def test_eof_before_the_head_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="closed during the handshake"):
        ResponseParser("k").feed_eof()


GOOD_OPENING = {"Upgrade": "WebSocket", "Connection": "keep-alive, Upgrade",
                "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.mark.parametrize(
    ("method", "changed", "problem"),
    [
        ("GET", {}, None),
        ("POST", {}, "a WebSocket upgrade is a GET, not POST"),
        ("GET", {"Upgrade": "h2c"}, "the request does not ask to upgrade to websocket"),
        ("GET", {"Connection": "keep-alive"}, "the Connection header does not include Upgrade"),
        ("GET", {"Sec-WebSocket-Version": "8"}, "Sec-WebSocket-Version must be 13"),
        ("GET", {"Sec-WebSocket-Key": None}, "Sec-WebSocket-Key is not 16 bytes in base64"),
        ("GET", {"Sec-WebSocket-Key": "short=="}, "Sec-WebSocket-Key is not 16 bytes in base64"),
    ],
)
def test_a_servers_judgement_of_an_opening_handshake(
    method: str, changed: dict[str, str | None], problem: str | None
) -> None:
    headers = {k.lower(): v for k, v in {**GOOD_OPENING, **changed}.items() if v is not None}
    assert opening_problem(method, lambda name: headers.get(name.lower())) == problem
