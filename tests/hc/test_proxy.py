"""hc.proxy: proxy URLs, the environment and NO_PROXY, the CONNECT request and its answer. No I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hc.exceptions import RemoteProtocolError
from hc.proxy import (
    ANSWER_LIMIT,
    ConnectAnswerParser,
    Proxy,
    bypasses,
    connect_request,
    proxy_from_environment,
)

pytestmark = pytest.mark.usefixtures("no_sockets")


def test_a_proxy_url_keeps_its_credentials_out_of_sight() -> None:
    proxy = Proxy.parse("http://al%40ce:p%3Ass@proxy.corp:3128")
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == ("proxy.corp", 3128, "al@ce", "p:ss")
    assert proxy.url == "http://proxy.corp:3128"
    assert "p:ss" not in repr(proxy) and "ce" not in proxy.url
    assert proxy.authorization == "Basic YWxAY2U6cDpzcw=="
    assert Proxy.parse("proxy.corp:8080") == Proxy("proxy.corp", 8080)
    assert Proxy.parse("http://proxy.corp").port == 80
    assert Proxy.parse("http://proxy.corp").authorization is None


@pytest.mark.parametrize("text, problem", [
    ("https://u:secret@proxy:443", "only http://"),
    ("socks5://proxy:1080", "only http://"),
    ("http://:3128", "no valid host"),
    ("http://proxy:99999", "bad port"),
])
def test_an_unusable_proxy_url_is_named_without_its_password(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        Proxy.parse(text)
    assert "secret" not in str(caught.value)


def test_the_environment_picks_by_scheme_lower_case_first_then_all_proxy() -> None:
    env = {"https_proxy": "http://tls:1", "HTTPS_PROXY": "http://upper:1", "HTTP_PROXY": "http://plain:1"}
    assert proxy_from_environment("relay", 443, True, env) == Proxy("tls", 1)
    assert proxy_from_environment("relay", 80, False, env) == Proxy("plain", 1)
    assert proxy_from_environment("relay", 80, False, {"ALL_PROXY": "http://all:1"}) == Proxy("all", 1)
    assert proxy_from_environment("relay", 80, False, {"https_proxy": "http://tls:1"}) is None
    with pytest.raises(ValueError, match="HTTP_PROXY: proxy ftp://x"):
        proxy_from_environment("relay", 80, False, {"http_proxy": "ftp://x"})


@pytest.mark.parametrize("host, port, no_proxy, expected", [
    ("relay.corp", 443, "*", True),
    ("relay.corp", 443, "corp", True),
    ("relay.corp", 443, ".corp", True),
    ("relay.corp", 443, "*.corp", True),
    ("corp", 443, ".corp", True),
    ("evilcorp", 443, "corp", False),
    ("relay.corp", 443, "relay.corp:443", True),
    ("relay.corp", 443, "relay.corp:80", False),
    ("10.1.2.3", 9350, "10.0.0.0/8", True),
    ("11.1.2.3", 9350, "10.0.0.0/8", False),
    ("127.0.0.1", 9350, "localhost,127.0.0.1", True),
    ("::1", 9350, "[::1]:9350", True),
    ("::1", 9350, "::1", True),
    ("RELAY.CORP.", 443, " other , relay.corp ", True),
    ("relay.corp", 443, ",,", False),
    ("relay.corp", 443, "", False),
])
def test_no_proxy_names_hosts_domains_and_networks(host: str, port: int, no_proxy: str,
                                                   expected: bool) -> None:
    assert bypasses(host, port, no_proxy) is expected


def test_connect_asks_for_the_authority_with_credentials_when_given() -> None:
    assert connect_request("relay.corp", 443, Proxy("p", 1)) == (
        b"CONNECT relay.corp:443 HTTP/1.1\r\nHost: relay.corp:443\r\n\r\n")
    request = connect_request("::1", 9350, Proxy("p", 1, "u", "pw"))
    assert request.startswith(b"CONNECT [::1]:9350 HTTP/1.1\r\nHost: [::1]:9350\r\n")
    assert b"Proxy-Authorization: Basic dTpwdw==\r\n\r\n" in request


@pytest.mark.parametrize("host", ["relay\r\nX-Evil: 1", "relay corp", "relay/..", ""])
def test_a_host_that_could_smuggle_text_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="not a host"):
        connect_request(host, 443, Proxy("p", 1))


@given(st.integers(min_value=1, max_value=40))
def test_the_answer_is_read_in_any_split(cut: int) -> None:
    data = b"HTTP/1.1 200 Connection established\r\nVia: squid\r\n\r\n"
    parser = ConnectAnswerParser()
    done = parser.feed(data[:cut]) if cut < len(data) else False
    done = parser.feed(data[cut:]) or done
    assert done and parser.answer is not None
    assert parser.answer.established and parser.answer.header("VIA") == "squid"
    assert parser.leftover == b""


def test_a_refusal_keeps_its_status_and_reason_and_the_body_is_left_over() -> None:
    parser = ConnectAnswerParser()
    assert parser.feed(b"HTTP/1.0 407 Proxy Authentication Required\r\n"
                       b"Proxy-Authenticate: Basic realm=\"corp\"\r\n\r\n<html>")
    answer = parser.answer
    assert answer is not None and not answer.established
    assert (answer.status, answer.reason) == (407, "Proxy Authentication Required")
    assert answer.header("proxy-authenticate") == 'Basic realm="corp"'
    assert parser.leftover == b"<html>"


@pytest.mark.parametrize("data, problem", [
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not answer in HTTP/1"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "no valid status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * ANSWER_LIMIT, "over"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * ANSWER_LIMIT + b"\r\n\r\n", "over"),
])
def test_a_broken_answer_is_a_protocol_error(data: bytes, problem: str) -> None:
    with pytest.raises(RemoteProtocolError, match=problem):
        ConnectAnswerParser().feed(data)


def test_a_proxy_hanging_up_before_answering_is_named() -> None:
    parser = ConnectAnswerParser()
    parser.feed(b"HTTP/1.1 200")
    with pytest.raises(RemoteProtocolError, match="without answering"):
        parser.feed_eof()
