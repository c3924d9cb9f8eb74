"""What nodes say to each other over NATS: small frozen dataclasses, parsed once. No I/O.

Every message is one JSON object (UTF-8) on one line, then for some a raw body::

    {"v":1,"ns":"contoso","kind":"request","path":"payroll","origin":"node-a",
     "timeout":60,"command":"{\\"request\\":{...}}","body":12}\\n<12 body bytes>

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from hc.entities import Discovery, EntityKind
from hc.exceptions import MalformedMessage
from hc.messages import (
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


#: By value, looked up once per message (cheaper than calling the enum).
_ASK_KINDS = {kind.value: kind for kind in AskKind}
_STATUSES = {status.value: status for status in AnswerStatus}
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


def _body(obj: Mapping[str, Any], rest: bytes) -> bytes | None:
    size = obj.get("body")
    if size is None:
        if rest:
            raise MessageError("bytes after the head of a message without a body")
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size != len(rest):
        raise MessageError("the body's length does not match")
    return rest


def _head(fields: dict[str, Any], body: bytes | None) -> bytes:
    fields["v"] = VERSION
    if body is not None:
        fields["body"] = len(body)
    head = json.dumps(fields, separators=(",", ":")).encode()
    return head + b"\n" + body if body is not None else head


def _namespace(obj: Mapping[str, Any], namespace: str) -> None:
    if obj.get("ns") != namespace:
        raise MessageError(f"for another namespace ({str(obj.get('ns'))[:64]!r})")


@dataclass(frozen=True)
class Ask:
    """A node asks the cluster to hand ``command`` to a listener of ``path``.

    ``command`` is the request (full, or address-only for a rendezvous on the
    origin) or the accept; ``body`` is a request body travelling whole inside
    NATS (events; small inline requests), None otherwise.
    """

    kind: AskKind
    namespace: str
    path: str
    origin: str
    timeout: float
    command: RequestCommand | AcceptCommand
    body: bytes | None = None

    def serialize(self) -> bytes:
        fields = {"ns": self.namespace, "kind": self.kind.value, "path": self.path,
                  "origin": self.origin, "timeout": self.timeout,
                  "command": self.command.serialize()}
        return _head(fields, self.body)


def parse_ask(data: bytes, namespace: str) -> Ask:
    """An :class:`Ask` for ``namespace``, checked: the command fits the kind, its
    address is a rendezvous address of the same entity."""
    obj, rest = _split(data)
    _namespace(obj, namespace)
    try:
        kind = _ASK_KINDS[obj["kind"]]
        command = parse_relay_command(_text(obj, "command"))
    except (KeyError, TypeError) as exc:
        raise MessageError(f"unknown kind {str(obj.get('kind'))[:16]!r}") from exc
    except (ValueError, MalformedMessage) as exc:
        raise MessageError(str(exc)) from exc
    path = _text(obj, "path")
    wanted = AcceptCommand if kind is AskKind.ACCEPT else RequestCommand  # a census: address-only
    if not isinstance(command, wanted):
        raise MessageError(f"a {kind.value} ask must carry a {wanted.__name__}")
    _check_address(command.address, path, "accept" if kind is AskKind.ACCEPT else "request")
    return Ask(kind, namespace, path, _text(obj, "origin"), _seconds(obj, "timeout"),
               command, _body(obj, rest))


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


@dataclass(frozen=True)
class Answer:
    """The asked node's answer to an :class:`Ask`."""

    status: AnswerStatus
    node: str
    count: int = 0
    response: ResponseCommand | None = None
    body: bytes | None = None

    def serialize(self) -> bytes:
        fields: dict[str, Any] = {"status": self.status.value, "node": self.node}
        if self.status in (AnswerStatus.DELIVERED, AnswerStatus.COUNTED):
            fields["count"] = self.count
        if self.response is not None:
            fields["response"] = self.response.serialize()
        return _head(fields, self.body)


def parse_answer(data: bytes) -> Answer:
    obj, rest = _split(data)
    try:
        status = _STATUSES[obj["status"]]
    except (KeyError, TypeError) as exc:
        raise MessageError(f"unknown status {str(obj.get('status'))[:16]!r}") from exc
    response = None
    if status is AnswerStatus.REPLIED:
        try:
            command = parse_listener_command(_text(obj, "response"))
        except MalformedMessage as exc:
            raise MessageError(str(exc)) from exc
        if not isinstance(command, ResponseCommand):
            raise MessageError("a reply must carry a response command")
        response = command
    body = _body(obj, rest)
    return Answer(status, _text(obj, "node"), _count(obj, "count"), response, body)


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
    """A node's presence: its rendezvous URL and listener counts; ``leaving`` on a clean stop."""

    namespace: str
    node: str
    url: str
    entities: tuple[EntityFact, ...] = ()
    leaving: bool = False

    def serialize(self) -> bytes:
        fields = {"ns": self.namespace, "node": self.node, "url": self.url,
                  "entities": [e.to_json() for e in self.entities], "leaving": self.leaving}
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
    facts = tuple(EntityFact.from_json(e) for e in entities)
    return Heartbeat(namespace, _text(obj, "node"), _text(obj, "url"), facts, leaving)
