"""What nodes say to each other over NATS: small frozen dataclasses, parsed once. No I/O.

The per-call messages, :class:`Ask` and :class:`Answer`, have a fixed binary head
(``struct``, network byte order), then their texts (UTF-8), then a raw body::

    Ask:    b"SRa" version kind timeout:f64 body:i32 |ns| |path| |origin| |command|
            ns path origin command [body]
    Answer: b"SRn" version status count:i64 body:i32 |node| |response|
            node response [body]

``|x|`` is a text's length in bytes (u16), ``body`` the body's (-1: none).  The
command and the listener's response are the Hybrid Connections commands as their
JSON text (``hc.messages``), carried as they are, not inside another JSON string,
so each is encoded once and parsed once.  A :class:`Heartbeat` (once a second,
not per call) is one JSON object on one line.

A node never trusts a message blindly: :func:`parse_ask`, :func:`parse_answer` and
:func:`parse_heartbeat` raise :class:`MessageError` for anything malformed, of another
version, or of another namespace (a node cannot claim listeners for a namespace it
does not serve); the caller drops the message and logs one line.
"""

from __future__ import annotations

import enum
import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from hc.entities import Discovery, EntityKind
from hc.exceptions import MalformedMessage
from hc.messages import (
    MAX_COMMAND_LENGTH,
    AcceptCommand,
    RequestCommand,
    ResponseCommand,
    parse_listener_command,
    parse_relay_command,
)
from relay.namespace import EntityConfig

__all__ = [
    "MAX_ENTITIES",
    "VERSION",
    "Answer",
    "AnswerStatus",
    "Ask",
    "AskKind",
    "EntityFact",
    "Heartbeat",
    "MessageError",
    "parse_answer",
    "parse_ask",
    "parse_heartbeat",
]

VERSION = 1
#: Most entities one heartbeat may list (a larger one is refused whole).
MAX_ENTITIES = 20_000
_MAX_TEXT = 1024
_MAX_TIMEOUT = 3600.0


class MessageError(ValueError):
    """A cluster message that is malformed, foreign or of another version: dropped."""


class AskKind(enum.Enum):
    """What the asking node wants done with the command."""

    REQUEST = "request"  # hand it to one listener (request-response, oneway)
    ACCEPT = "accept"  # a WebSocket sender waits: hand the accept to one listener
    EVENT = "event"  # hand it to every listener here, answer with the count
    CENSUS = "census"  # how many listeners are on the entity here (the quota)


class AnswerStatus(enum.Enum):
    """How the asked node answered."""

    POSTED = "posted"  # a listener has the command; it opens the rendezvous on the origin
    REPLIED = "replied"  # a request that travelled whole: the listener's response is here
    DELIVERED = "delivered"  # an event: ``count`` listeners acknowledged it
    COUNTED = "counted"  # a census: ``count`` listeners are on the entity here
    NO_LISTENER = "no-listener"  # none here after all (it just left)
    GONE = "gone"  # the listener had the whole request, then vanished without answering


#: The kinds and statuses by their number on the wire (their index here; ``index``
#: finds one by identity, with no enum hash, a Python call).
_ASK_KINDS = tuple(AskKind)
_STATUSES = tuple(AnswerStatus)
_ASK_MAGIC, _ANSWER_MAGIC = b"SRa", b"SRn"
#: magic, version, kind, timeout, body length (-1: none), then the texts' lengths
#: (the command's in four bytes: its headers may be long).
_ASK_HEAD = struct.Struct("!3sBBdiHHHI")
#: magic, version, status, count, body length (-1: none), then the texts' lengths
#: (the response's in four bytes).
_ANSWER_HEAD = struct.Struct("!3sBBqiHI")
_NO_BODY = -1
#: A heartbeat's ticket: none, or a token of URL-safe characters (``secrets.token_urlsafe``).
_TICKET = re.compile(r"[A-Za-z0-9_-]{0,64}")
#: The rendezvous address as nodes write it (``relay.call_heads.request_command``,
#: ``relay.ws_senders``): checked by one match; anything else the long way.
_CANONICAL = re.compile(
    r"wss?://[A-Za-z0-9._-]+(?::[0-9]{1,5})?/\$hc/(?P<path>[^?#%\s]*)"
    r"\?sb-hc-action=(?P<action>request|accept)&sb-hc-id=[^&#=\s]+"
)


def _split(data: bytes) -> tuple[Mapping[str, Any], bytes]:
    head, _, rest = data.partition(b"\n")
    try:
        obj = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MessageError("not a JSON object")
    if obj.get("v") != VERSION:
        raise MessageError(f"unknown version {str(obj.get('v'))[:16]!r}")
    return obj, rest


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise MessageError(f"{key!r} must be a non-empty string of at most {_MAX_TEXT} characters")
    return value


def _count(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MessageError(f"{key!r} must be a count")
    return value


def _seconds(obj: Mapping[str, Any], key: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= _MAX_TIMEOUT:
        raise MessageError(f"{key!r} must be a number of seconds")
    return float(value)


def _head(fields: dict[str, Any], body: bytes | None) -> bytes:
    fields["v"] = VERSION
    if body is not None:
        fields["body"] = len(body)
    head = json.dumps(fields, separators=(",", ":")).encode()
    return head + b"\n" + body if body is not None else head


def _namespace(obj: Mapping[str, Any], namespace: str) -> None:
    if obj.get("ns") != namespace:
        raise MessageError(f"for another namespace ({str(obj.get('ns'))[:64]!r})")


class Ask:
    """A node asks the cluster to hand ``command`` to a listener of ``path``.

    ``command`` is the request (full, or address-only for a rendezvous on the
    origin) or the accept; ``body`` is a request body travelling whole inside
    NATS (events; small inline requests), None otherwise.  Immutable and compared
    by value; a plain class, not a frozen dataclass: one is made per call on each
    node, and a dataclass's ``__init__`` stays Python code (``object.__setattr__``
    per field) even where mypyc compiles this module.
    """

    __slots__ = ("body", "command", "kind", "namespace", "origin", "path", "timeout")

    def __init__(
        self, kind: AskKind, namespace: str, path: str, origin: str, timeout: float,
        command: RequestCommand | AcceptCommand, body: bytes | None = None,
    ) -> None:
        self.kind: Final = kind
        self.namespace: Final = namespace
        self.path: Final = path
        self.origin: Final = origin
        self.timeout: Final = timeout
        self.command: Final = command
        self.body: Final = body

    def _key(self) -> tuple[object, ...]:
        return (self.kind, self.namespace, self.path, self.origin, self.timeout, self.command, self.body)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ask) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Ask({self.kind}, {self.namespace!r}, {self.path!r}, {self.origin!r}, "
                f"{self.timeout!r}, {self.command!r}, {_sized(self.body)})")

    def serialize(self) -> bytes:
        texts = (self.namespace.encode(), self.path.encode(), self.origin.encode(),
                 self.command.serialize().encode())
        body = self.body
        head = _ASK_HEAD.pack(_ASK_MAGIC, VERSION, _ASK_KINDS.index(self.kind), self.timeout,
                              _NO_BODY if body is None else len(body), *map(len, texts))
        return b"".join((head, *texts, body or b""))


def _texts(data: bytes, start: int, sizes: tuple[int, ...], names: tuple[str, ...]) -> tuple[list[str], int]:
    """The texts of ``sizes`` bytes from ``start`` (each non-empty, at most _MAX_TEXT
    characters, a command as long as a control channel takes) and where they end."""
    texts: list[str] = []
    for size, name in zip(sizes, names, strict=True):
        end = start + size
        try:
            text = data[start:end].decode()
        except UnicodeDecodeError as exc:
            raise MessageError(f"{name!r} is not UTF-8: {exc}") from exc
        limit = _COMMAND_TEXT if name in _COMMANDS else _MAX_TEXT
        if not text or len(text) > limit:
            raise MessageError(f"{name!r} must be a non-empty string of at most {limit} characters")
        texts.append(text)
        start = end
    return texts, start


def _rest(data: bytes, start: int, size: int) -> bytes | None:
    """The body after the texts: ``size`` bytes exactly, or none at all (``size`` -1)."""
    if start > len(data):
        raise MessageError("the texts' lengths run past the message")
    if size == _NO_BODY:
        if start != len(data):
            raise MessageError("bytes after the head of a message without a body")
        return None
    if size != len(data) - start:
        raise MessageError("the body's length does not match")
    return data[start:]


def _version(magic: bytes, version: int, wanted: bytes) -> None:
    if magic != wanted:
        raise MessageError(f"not a cluster message ({magic!r})")
    if version != VERSION:
        raise MessageError(f"unknown version {version}")


_ASK_TEXTS = ("ns", "path", "origin", "command")
_ANSWER_TEXTS = ("node", "response")
#: The texts that are a control channel's command (headers and all), and their bound.
_COMMANDS = ("command", "response")
_COMMAND_TEXT = MAX_COMMAND_LENGTH


def parse_ask(data: bytes, namespace: str) -> Ask:
    """An :class:`Ask` for ``namespace``, checked: the command fits the kind, its
    address is a rendezvous address of the same entity."""
    if len(data) < _ASK_HEAD.size:
        raise MessageError(f"shorter than an ask's head ({len(data)} bytes)")
    magic, version, number, timeout, size, *sizes = _ASK_HEAD.unpack_from(data)
    _version(magic, version, _ASK_MAGIC)
    end = _ASK_HEAD.size + sizes[0]
    if data[_ASK_HEAD.size:end] != namespace.encode():
        raise MessageError(f"for another namespace ({data[_ASK_HEAD.size:end][:64]!r})")
    if number >= len(_ASK_KINDS):
        raise MessageError(f"unknown kind {number}")
    kind = _ASK_KINDS[number]
    if not 0 < timeout <= _MAX_TIMEOUT:  # (NaN is not)
        raise MessageError("'timeout' must be a number of seconds")
    (_, path, origin, text), start = _texts(data, _ASK_HEAD.size, tuple(sizes), _ASK_TEXTS)
    body = _rest(data, start, size)
    try:
        command = parse_relay_command(text)
    except (ValueError, MalformedMessage) as exc:
        raise MessageError(str(exc)) from exc
    wanted = AcceptCommand if kind is AskKind.ACCEPT else RequestCommand  # a census: address-only
    if not isinstance(command, wanted):
        raise MessageError(f"a {kind.value} ask must carry a {wanted.__name__}")
    _check_address(command.address, path, "accept" if kind is AskKind.ACCEPT else "request")
    return Ask(kind, namespace, path, origin, timeout, command, body)


def _sized(body: bytes | None) -> str:
    return "None" if body is None else f"<{len(body)} bytes>"


def _check_address(address: str, path: str, action: str) -> None:
    """The rendezvous address must be ws(s)://HOST/$hc/PATH?sb-hc-action=ACTION&sb-hc-id=ID."""
    canonical = _CANONICAL.fullmatch(address)
    if canonical is not None and canonical["path"] == path and canonical["action"] == action:
        return
    try:
        parts = urlsplit(address)
        query = parse_qs(parts.query)
    except ValueError as exc:  # e.g. "ws://[/": an unclosed IPv6 host
        raise MessageError(f"not a {action} rendezvous address of {path!r}: {exc}") from exc
    if (
        parts.scheme not in ("ws", "wss") or not parts.hostname or parts.username
        or unquote(parts.path) != f"/$hc/{path}"
        or query.get("sb-hc-action") != [action] or len(query.get("sb-hc-id", ())) != 1
    ):
        raise MessageError(f"not a {action} rendezvous address of {path!r}")


class Answer:
    """The asked node's answer to an :class:`Ask` (immutable, compared by value; a
    plain class for the reason :class:`Ask` is)."""

    __slots__ = ("body", "count", "node", "response", "status")

    def __init__(
        self, status: AnswerStatus, node: str, count: int = 0,
        response: ResponseCommand | None = None, body: bytes | None = None,
    ) -> None:
        self.status: Final = status
        self.node: Final = node
        self.count: Final = count
        self.response: Final = response
        self.body: Final = body

    def _key(self) -> tuple[object, ...]:
        return (self.status, self.node, self.count, self.response, self.body)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Answer) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Answer({self.status}, {self.node!r}, {self.count}, {self.response!r}, "
                f"{_sized(self.body)})")

    def serialize(self) -> bytes:
        count = self.count if self.status in (AnswerStatus.DELIVERED, AnswerStatus.COUNTED) else 0
        node = self.node.encode()
        response = self.response.serialize().encode() if self.response is not None else b""
        body = self.body
        head = _ANSWER_HEAD.pack(_ANSWER_MAGIC, VERSION, _STATUSES.index(self.status), count,
                                 _NO_BODY if body is None else len(body), len(node), len(response))
        return b"".join((head, node, response, body or b""))


def parse_answer(data: bytes) -> Answer:
    if len(data) < _ANSWER_HEAD.size:
        raise MessageError(f"shorter than an answer's head ({len(data)} bytes)")
    magic, version, number, count, size, node_size, response_size = _ANSWER_HEAD.unpack_from(data)
    _version(magic, version, _ANSWER_MAGIC)
    if number >= len(_STATUSES):
        raise MessageError(f"unknown status {number}")
    status = _STATUSES[number]
    if count < 0:
        raise MessageError("'count' must be a count")
    if status is AnswerStatus.REPLIED:
        (node, text), start = _texts(data, _ANSWER_HEAD.size, (node_size, response_size), _ANSWER_TEXTS)
        try:
            command = parse_listener_command(text)
        except MalformedMessage as exc:
            raise MessageError(str(exc)) from exc
        if not isinstance(command, ResponseCommand):
            raise MessageError("a reply must carry a response command")
        response: ResponseCommand | None = command
    else:  # any response is not looked at
        (node,), start = _texts(data, _ANSWER_HEAD.size, (node_size,), _ANSWER_TEXTS[:1])
        start += response_size
        response = None
    return Answer(status, node, count, response, _rest(data, start, size))


@dataclass(frozen=True)
class EntityFact:
    """One entity a node has listeners on, as its heartbeat tells it."""

    path: str
    listeners: int
    kind: EntityKind = EntityKind.REQUEST_RESPONSE
    discovery: Discovery = Discovery.PRIVATE
    dynamic: bool = False
    requires_client_authorization: bool = True
    max_message_size: int = 0
    timeout: float = 60.0

    @classmethod
    def of(cls, config: EntityConfig, listeners: int) -> EntityFact:
        """The fact this node tells of entity ``config`` with ``listeners`` here."""
        return cls(config.path, listeners, config.kind, config.discovery, config.dynamic,
                   config.requires_client_authorization, config.max_message_size, config.timeout)

    def config(self) -> EntityConfig:
        """The entity as another node sees it (no rules: a dynamic entity has none)."""
        return EntityConfig(
            path=self.path, kind=self.kind, discovery=self.discovery, dynamic=self.dynamic,
            requires_client_authorization=self.requires_client_authorization,
            max_message_size=self.max_message_size or EntityConfig.max_message_size,
            timeout=self.timeout,
        )

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "listeners": self.listeners, "kind": self.kind.value,
                "discovery": self.discovery.value, "dynamic": self.dynamic,
                "auth": self.requires_client_authorization,
                "max": self.max_message_size, "timeout": self.timeout}

    @classmethod
    def from_json(cls, obj: object) -> EntityFact:
        if not isinstance(obj, dict):
            raise MessageError("an entity must be an object")
        try:
            kind, discovery = EntityKind(obj.get("kind")), Discovery(obj.get("discovery"))
        except ValueError as exc:
            raise MessageError(str(exc)) from exc
        flags = obj.get("dynamic"), obj.get("auth")
        if not all(isinstance(flag, bool) for flag in flags):
            raise MessageError("'dynamic' and 'auth' must be true or false")
        timeout = _seconds(obj, "timeout")
        if not math.isfinite(timeout):
            raise MessageError("'timeout' must be finite")
        return cls(_text(obj, "path"), _count(obj, "listeners"), kind, discovery,
                   bool(flags[0]), bool(flags[1]), _count(obj, "max"), timeout)


@dataclass(frozen=True)
class Heartbeat:
    """A node's presence: its rendezvous URL and listener counts; ``leaving`` on a clean
    stop; ``ticket``, what another node presents to open a direct link to it
    (``relay.cluster.direct``; "": it takes none), never shown."""

    namespace: str
    node: str
    url: str
    entities: tuple[EntityFact, ...] = ()
    leaving: bool = False
    ticket: str = field(default="", repr=False)

    def serialize(self) -> bytes:
        fields: dict[str, Any] = {"ns": self.namespace, "node": self.node, "url": self.url,
                                  "entities": [e.to_json() for e in self.entities], "leaving": self.leaving}
        if self.ticket:
            fields["ticket"] = self.ticket
        return _head(fields, None)


def parse_heartbeat(data: bytes, namespace: str) -> Heartbeat:
    obj, rest = _split(data)
    _namespace(obj, namespace)
    if rest:
        raise MessageError("bytes after a heartbeat")
    entities = obj.get("entities")
    if not isinstance(entities, list) or len(entities) > MAX_ENTITIES:
        raise MessageError(f"'entities' must be a list of at most {MAX_ENTITIES}")
    leaving = obj.get("leaving", False)
    if not isinstance(leaving, bool):
        raise MessageError("'leaving' must be true or false")
    ticket = obj.get("ticket", "")
    if not isinstance(ticket, str) or not _TICKET.fullmatch(ticket):
        raise MessageError("'ticket' must be at most 64 letters, digits, '-' or '_'")
    facts = tuple(EntityFact.from_json(e) for e in entities)
    return Heartbeat(namespace, _text(obj, "node"), _text(obj, "url"), facts, leaving, ticket)
