"""The NATS protocol of the cluster's own client, and creds files: bytes in, events out,
split anywhere; every broken frame and bound refused. Pure: no sockets."""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from relay.cluster import natswire as wire
from relay.cluster.nkeys import CredsError, crc16, encode_seed, parse_creds, public_key, sign

pytestmark = pytest.mark.usefixtures("no_sockets")

STREAM = (
    b'INFO {"server_id":"x","max_payload":1048576,"nonce":"abc"}\r\n'
    b"+OK\r\nPING\r\n"
    b"MSG soaprelay.a.hc.b 7 _INBOX.z.1 5\r\nhello\r\n"
    b"MSG plain 1 0\r\n\r\n"
    b"HMSG _INBOX.z.2 3 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    b"HMSG s 2 r 28 31\r\nNATS/1.0\r\nA: 1\r\nB-c: two\r\n\r\nabc\r\n"
    b"PONG\r\n-ERR 'Authorization Violation'\r\n"
)


def _summary(events: list[wire.Event]) -> list[object]:
    out: list[object] = []
    for event in events:
        if isinstance(event, wire.Msg):
            out.append((event.subject, event.sid, event.reply, event.data, event.headers))
        else:
            out.append(event)
    return out


EXPECTED = [
    wire.Info({"server_id": "x", "max_payload": 1048576, "nonce": "abc"}),
    wire.OK, wire.PING,
    ("soaprelay.a.hc.b", 7, "_INBOX.z.1", b"hello", None),
    ("plain", 1, "", b"", None),
    ("_INBOX.z.2", 3, "", b"", {"Status": "503"}),
    ("s", 2, "r", b"abc", {"A": "1", "B-c": "two"}),
    wire.PONG, wire.Err("Authorization Violation"),
]


def test_a_stream_whole() -> None:
    assert _summary(wire.Parser().feed(STREAM)) == EXPECTED


def test_a_stream_split_at_every_byte() -> None:
    for cut in range(1, len(STREAM)):
        parser = wire.Parser()
        events = parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:])
        assert _summary(events) == EXPECTED, cut
        assert parser.held == 0


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=12))
def test_a_stream_in_any_pieces(cuts: list[int]) -> None:
    parser = wire.Parser()
    events: list[wire.Event] = []
    last = 0
    for cut in [*sorted(set(cuts)), len(STREAM)]:
        events += parser.feed(STREAM[last:cut])
        last = cut
    assert _summary(events) == EXPECTED


def test_the_status_line_description_is_kept() -> None:
    [msg] = wire.Parser().feed(b"HMSG s 1 30 30\r\nNATS/1.0 503 No Responders\r\n\r\n\r\n")
    assert isinstance(msg, wire.Msg) and msg.headers == {"Status": "503", "Description": "No Responders"}


@pytest.mark.parametrize("data", [
    b"NOPE\r\n",
    b"MSG s 1\r\n",
    b"MSG s 1 r x 5\r\nhello\r\n",
    b"MSG s one 5\r\nhello\r\n",
    b"MSG s 1 -5\r\nhello\r\n",
    b"MSG s 1 3\r\nhello\r\n",
    b"HMSG s 1 12\r\nNATS/1.0\r\n\r\n\r\n",
    b"HMSG s 1 20 12\r\nNATS/1.0\r\n\r\n\r\n",
    b"HMSG s 1 12 14\r\nNATS/1.0\r\n\r\nab--",
    b"INFO nope\r\n",
    b"INFO [1]\r\n",
])
def test_a_broken_frame_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.Parser().feed(data)


@pytest.mark.parametrize("block", [
    b"HTTP/1.1 200\r\n\r\n", b"NATS/1.0\r\nno colon\r\n\r\n", b"NATS/1.0\r\n", b"NATS/1.0\r\n: v\r\n\r\n",
    b"NATS/1.0\r\n\xff: v\r\n\r\n",
])
def test_malformed_headers_drop_the_message_not_the_connection(block: bytes) -> None:
    data = b"HMSG s 1 %d %d\r\n%s\r\nPING\r\n" % (len(block), len(block), block)
    events = wire.Parser().feed(data)
    assert len(events) == 2 and isinstance(events[0], wire.Malformed) and events[0].subject == "s"
    assert events[1] is wire.PING


def test_what_is_held_is_bounded_by_max_payload() -> None:
    parser = wire.Parser(max_payload=1000)
    with pytest.raises(wire.WireError, match="max_payload"):
        parser.feed(b"MSG s 1 %d\r\n" % (1000 + wire.HEADER_ROOM + 1))
    parser = wire.Parser(max_payload=1000)
    parser.feed(b"MSG s 1 1000\r\n" + b"x" * 999)  # within the bound: held
    assert parser.held > 999
    with pytest.raises(wire.WireError, match="CRLF"):  # more than it said: out of step
        parser.feed(b"xxx")


def test_a_control_line_is_bounded() -> None:
    parser = wire.Parser()
    parser.feed(b"INFO " + b"x" * (wire.MAX_CONTROL - 10))
    with pytest.raises(wire.WireError, match="control line"):
        parser.feed(b"x" * 20)


def test_what_the_client_sends() -> None:
    assert wire.pub("a.b", b"hi", "_INBOX.x.1") == b"PUB a.b _INBOX.x.1 2\r\nhi\r\n"
    assert wire.pub("a.b", b"") == b"PUB a.b 0\r\n\r\n"
    assert wire.sub("a.*", 3, "listeners") == b"SUB a.* listeners 3\r\n"
    assert wire.sub("a.>", 4) == b"SUB a.> 4\r\n"
    assert wire.unsub(4) == b"UNSUB 4\r\n"
    assert wire.connect({"verbose": False}) == b'CONNECT {"verbose":false}\r\n'


@pytest.mark.parametrize("subject", ["", "a b", "a\r\nPUB x 1", "a\tb", "a\x00"])
def test_no_subject_can_inject_a_protocol_line(subject: str) -> None:
    with pytest.raises(ValueError, match="not a NATS subject"):
        wire.pub(subject, b"x")
    with pytest.raises(ValueError, match="not a NATS subject"):
        wire.sub("ok", 1, subject or " ")


# -- creds files and NKeys -------------------------------------------------------------

SEED = encode_seed(bytes(range(32)))
CREDS = f"""-----BEGIN NATS USER JWT-----
eyJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln
------END NATS USER JWT------

************************* IMPORTANT *************************
-----BEGIN USER NKEY SEED-----
{SEED}
------END USER NKEY SEED------
"""


def test_a_creds_file_gives_its_jwt_and_seed() -> None:
    creds = parse_creds(CREDS)
    assert (creds.jwt, creds.seed) == ("eyJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln", SEED)
    assert SEED not in repr(creds) and SEED.startswith("SU")


def test_the_nonce_is_signed_with_the_seeds_key() -> None:
    signature = base64.urlsafe_b64decode(sign(SEED, "nonce-1") + "==")
    key = Ed25519PublicKey.from_public_bytes(_raw_public(public_key(SEED)))
    key.verify(signature, b"nonce-1")
    with pytest.raises(InvalidSignature):
        key.verify(signature, b"nonce-2")


def _raw_public(nkey: str) -> bytes:
    assert nkey.startswith("U")
    raw = base64.b32decode(nkey + "=" * (-len(nkey) % 8))
    assert crc16(raw[:-2]) == int.from_bytes(raw[-2:], "little")
    return raw[1:-2]


def test_crc16_is_xmodems() -> None:
    assert crc16(b"123456789") == 0x31C3


@pytest.mark.parametrize("text", [
    "", "no armour", CREDS.replace(SEED, SEED[:-1] + ("A" if SEED[-1] != "A" else "B")),
    CREDS.replace(SEED, public_key(SEED)), CREDS.replace(SEED, "!!!!"),
    CREDS.split("***")[0],
])
def test_a_bad_creds_file_is_refused_without_quoting_it(text: str) -> None:
    with pytest.raises(CredsError) as caught:
        parse_creds(text)
    assert SEED not in str(caught.value) and "eyJ" not in str(caught.value)
