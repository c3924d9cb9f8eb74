"""relay.request_head's ParsedHead, whose ``__init__`` is written out (compiled by mypyc,
a generated one stays interpreted), takes exactly what the generated one would."""

from __future__ import annotations

from relay.request_head import ParsedHead, parse_head
from tests.support.inits import assert_init_matches_fields


def test_parsed_head_takes_its_fields() -> None:
    assert_init_matches_fields(ParsedHead, method="GET", url="/p", version="1.1",
                               pairs=[("Host", "h")], upgrade=True, host="h")


def test_a_parsed_head_has_what_the_request_said() -> None:
    head = parse_head(b"POST /echo HTTP/1.1\r\nHost: Relay:80\r\nX-A: b\r\n\r\n", 100)
    assert head == ParsedHead("POST", "/echo", "1.1", [("Host", "Relay:80"), ("X-A", "b")],
                              False, "Relay:80")
