"""The core's hot dataclasses whose ``__init__`` is written out (compiled by mypyc, a
generated one stays interpreted) take exactly what the generated one would."""

from __future__ import annotations

from typing import Any

import pytest

from hc.events import BinaryReceived, RequestReceived, ResponseReceived, TextReceived
from hc.messages import RequestCommand, ResponseCommand
from tests.support.inits import assert_init_matches_fields

_REQUEST = RequestCommand("ws://h/$hc/p?sb-hc-action=request&sb-hc-id=1", "1")
_RESPONSE = ResponseCommand("1")
_SAMPLES: list[tuple[type[Any], dict[str, Any]]] = [
    (TextReceived, {"text": "t"}),
    (BinaryReceived, {"data": b"d"}),
    (RequestReceived, {"command": _REQUEST, "body": b"b"}),
    (ResponseReceived, {"command": _RESPONSE, "body": b"b"}),
    (RequestCommand, {"address": "ws://h/$hc/p", "id": "7", "request_target": "/p",
                      "method": "POST", "request_headers": (("A", "b"),), "body": True,
                      "remote_endpoint": ("127.0.0.1", 5)}),
    (ResponseCommand, {"request_id": "7", "status_code": 404, "status_description": "Not Found",
                       "response_headers": (("A", "b"),), "body": True}),
]


@pytest.mark.parametrize(("cls", "samples"), _SAMPLES, ids=[cls.__name__ for cls, _ in _SAMPLES])
def test_a_written_out_init_takes_the_fields_and_their_defaults(
    cls: type[Any], samples: dict[str, Any]
) -> None:
    assert_init_matches_fields(cls, **samples)
