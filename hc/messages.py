"""Control-channel commands of the Hybrid Connections protocol (PROTOCOL.md §3). No I/O.

Text frames on the control channel carry one JSON object with a single key
naming the command; binary frames carry bodies.  Both sides use this module:
the relay serialises ``accept``/``request`` and parses ``response``/``renewToken``,
the listener bindings do the reverse.

    >>> RequestCommand(address="ws://h/$hc/p?sb-hc-action=request&sb-hc-id=x", id="1").serialize()
    '{"request":{"address":"ws://h/$hc/p?sb-hc-action=request&sb-hc-id=x","id":"1"}}'
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hc.exceptions import MalformedMessage

__all__ = [
    "MAX_COMMAND_LENGTH",
    "AcceptCommand",
    "Headers",
    "ListenerCommand",
    "RelayCommand",
    "RenewTokenCommand",
    "RequestCommand",
    "ResponseCommand",
    "parse_listener_command",
    "parse_relay_command",
]

#: Header pairs in order; a name may repeat (Set-Cookie).
Headers = tuple[tuple[str, str], ...]

#: The longest command text a control channel takes (a request's or response's
#: headers are in it).
MAX_COMMAND_LENGTH = 256 * 1024


def _compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def headers_to_json(headers: Headers) -> dict[str, Any]:
    """Pairs -> a JSON object; a repeated name becomes a list of values."""
    out: dict[str, Any] = {}
    for name, value in headers:
        if name in out:
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value
    return out


@functools.lru_cache(maxsize=512)
def _headers_json(headers: Headers) -> str:
    """:func:`headers_to_json` as JSON text, once per distinct set of headers: a client
    sends the same headers call after call, and an event's copies all share them."""
    return _compact(headers_to_json(headers))


#: The C scanner behind ``json.loads``: ``(value, end)`` for ``(text, start)``.
_scan: Callable[[str, int], tuple[object, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

#: A JSON string literal, as ``json.dumps(text, ensure_ascii=False)`` writes it.
_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


_ONLY_STR = {str}


def headers_from_json(obj: object, what: str) -> Headers:
    """A JSON header object (string or list-of-string values) -> pairs."""
    if obj is None:
        return ()
    if type(obj) is not dict and not isinstance(obj, Mapping):  # (an ABC check is slow)
        raise MalformedMessage(f"{what} must be a JSON object")
    if not obj:
        return ()
    if {*map(type, obj.values())} == _ONLY_STR:  # the usual case, at once
        return tuple(obj.items())
    pairs: list[tuple[str, str]] = []
    for name, value in obj.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise MalformedMessage(f"{what}[{name!r}] must be a string")
            pairs.append((str(name), str(item)))
    return tuple(pairs)


@dataclass(frozen=True)
class AcceptCommand:
    """Relay -> listener: a WebSocket sender wants to connect."""

    address: str
    id: str
    connect_headers: Headers = ()
    remote_endpoint: tuple[str, int] | None = None

    def serialize(self) -> str:
        body: dict[str, Any] = {
            "address": self.address,
            "id": self.id,
            "connectHeaders": headers_to_json(self.connect_headers),
        }
        if self.remote_endpoint is not None:
            body["remoteEndpoint"] = {
                "address": self.remote_endpoint[0],
                "port": self.remote_endpoint[1],
            }
        return _compact({"accept": body})


@dataclass(frozen=True)
class RequestCommand:
    """Relay -> listener: an HTTP request.

    Address-only (rendezvous) form: just ``address`` and ``id``, with neither
    ``method`` nor ``body``; hyco-https keys on ``method`` and .NET on ``body``.
    """

    address: str
    id: str
    request_target: str | None = None
    method: str | None = None
    request_headers: Headers = ()
    body: bool | None = None
    remote_endpoint: tuple[str, int] | None = None

    # Written out, not generated: compiled by mypyc, a dataclass's generated __init__
    # stays interpreted (~2-11k instructions a call); this one compiles. Same
    # parameters and defaults as the fields (tests/hc/test_inits.py checks).
    def __init__(
        self, address: str, id: str, request_target: str | None = None,
        method: str | None = None, request_headers: Headers = (), body: bool | None = None,
        remote_endpoint: tuple[str, int] | None = None,
    ) -> None:
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "request_target", request_target)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "request_headers", request_headers)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "remote_endpoint", remote_endpoint)

    @property
    def is_address_only(self) -> bool:
        return self.method is None

    def serialize(self) -> str:
        # Assembled from pieces, not json.dumps'd whole: this runs for every relayed
        # request (and for every subscriber of an event), and the headers' JSON is
        # the same call after call, so it is encoded once (``_headers_json``).
        parts = ['{"request":{"address":', _string(self.address), ',"id":', _string(self.id)]
        if not self.is_address_only:
            parts += [
                ',"requestTarget":', _string(self.request_target or "/"),
                ',"method":', _string(self.method or ""),
                ',"requestHeaders":', _headers_json(self.request_headers),
                ',"body":', "true" if self.body else "false",
            ]
            if self.remote_endpoint is not None:
                address, port = self.remote_endpoint
                parts += [',"remoteEndpoint":{"address":', _string(address), f',"port":{int(port)}}}']
        parts.append("}}")
        return "".join(parts)


@dataclass(frozen=True)
class ResponseCommand:
    """Listener -> relay: the response to request ``request_id``."""

    request_id: str
    status_code: int = 200
    status_description: str = ""
    response_headers: Headers = ()
    body: bool = False

    # Written out, not generated: compiled by mypyc, a dataclass's generated __init__
    # stays interpreted (~2-11k instructions a call); this one compiles. Same
    # parameters and defaults as the fields (tests/hc/test_inits.py checks).
    def __init__(
        self, request_id: str, status_code: int = 200, status_description: str = "",
        response_headers: Headers = (), body: bool = False,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "status_code", status_code)
        object.__setattr__(self, "status_description", status_description)
        object.__setattr__(self, "response_headers", response_headers)
        object.__setattr__(self, "body", body)

    def serialize(self) -> str:
        # From pieces, as RequestCommand: a listener sends one for every call.
        return "".join((
            '{"response":{"requestId":', _string(self.request_id),
            ',"statusCode":', str(int(self.status_code)),
            ',"statusDescription":', _string(self.status_description),
            ',"responseHeaders":', _headers_json(self.response_headers),
            ',"body":', "true" if self.body else "false", "}}",
        ))


@dataclass(frozen=True)
class RenewTokenCommand:
    """Listener -> relay: a fresh token before the current one expires."""

    token: str = field(repr=False)

    def serialize(self) -> str:
        return _compact({"renewToken": {"token": self.token}})


RelayCommand = AcceptCommand | RequestCommand
ListenerCommand = ResponseCommand | RenewTokenCommand


def _load(text: str | bytes) -> tuple[str, Mapping[str, Any]]:
    if len(text) > MAX_COMMAND_LENGTH:
        raise MalformedMessage("control command is too long")
    try:
        obj = _loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested too deep
        raise MalformedMessage(f"control frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or len(obj) != 1:
        raise MalformedMessage("control frame must be a JSON object with exactly one command")
    (name, body), = obj.items()
    if not isinstance(body, dict):
        raise MalformedMessage(f"command {name!r} must be a JSON object")
    return name, body


def _loads(text: str | bytes) -> object:
    """``json.loads``, with the C scanner called at once for the usual command (a
    ``str`` that is one JSON value and nothing else): a listener sends one per call."""
    if type(text) is str:
        try:
            obj, end = _scan(text, 0)
        except StopIteration:
            pass
        else:
            if end == len(text):
                return obj
    return json.loads(text)  # whitespace around, bytes, or an error to report


def _text(body: Mapping[str, Any], key: str, command: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{command}.{key} must be a non-empty string")
    return value


def _status_code(value: object) -> int:
    """``statusCode`` may be a number or a numeric string (PROTOCOL.md §3)."""
    if isinstance(value, bool):
        raise MalformedMessage("response.statusCode must be a number")
    try:
        code = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity, 1e400
        raise MalformedMessage(f"response.statusCode {value!r} is not a number") from None
    if not 100 <= code <= 599 or isinstance(value, float) and value != code:
        raise MalformedMessage(f"response.statusCode {value!r} is not an HTTP status")
    return code


def _endpoint(obj: object) -> tuple[str, int] | None:
    if type(obj) is not dict and not isinstance(obj, Mapping):  # (an ABC check is slow)
        return None
    address, port = obj.get("address"), obj.get("port")
    if isinstance(address, str) and isinstance(port, int):
        return address, port
    return None


def parse_listener_command(text: str | bytes) -> ListenerCommand:
    """Parse a text frame a listener sent. Raises ``MalformedMessage``."""
    name, body = _load(text)
    if name == "response":
        description = body.get("statusDescription") or ""
        flag = body.get("body", False)
        if not isinstance(flag, bool):
            raise MalformedMessage("response.body must be a boolean")
        if not isinstance(description, str):
            raise MalformedMessage("response.statusDescription must be a string")
        return ResponseCommand(
            request_id=str(_text(body, "requestId", name)),
            status_code=_status_code(body.get("statusCode", 200)),
            status_description=description,
            response_headers=headers_from_json(body.get("responseHeaders"), "responseHeaders"),
            body=flag,
        )
    if name == "renewToken":
        return RenewTokenCommand(str(_text(body, "token", name)))
    raise MalformedMessage(f"unknown listener command {name!r}")


def parse_relay_command(text: str | bytes) -> RelayCommand:
    """Parse a text frame the relay sent (the listener side). Raises ``MalformedMessage``."""
    name, body = _load(text)
    address, ident = _text(body, "address", name), _text(body, "id", name)
    assert address is not None and ident is not None
    endpoint = _endpoint(body.get("remoteEndpoint"))
    if name == "accept":
        headers = headers_from_json(body.get("connectHeaders"), "connectHeaders")
        return AcceptCommand(address, ident, headers, endpoint)
    if name == "request":
        flag = body.get("body")
        if flag is not None and not isinstance(flag, bool):
            raise MalformedMessage("request.body must be a boolean")
        return RequestCommand(  # (positional: this runs for every request a listener gets)
            address, ident,
            _text(body, "requestTarget", name, required=False),  # request_target
            _text(body, "method", name, required=False),  # method
            headers_from_json(body.get("requestHeaders"), "requestHeaders"),  # request_headers
            flag,  # body
            endpoint,  # remote_endpoint
        )
    raise MalformedMessage(f"unknown relay command {name!r}")
