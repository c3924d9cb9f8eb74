"""NATS subject names for one namespace. No I/O.

``soaprelay.<ns>.hc.<entity>``   connect asks (request, accept), queue group ``listeners``:
                                 NATS hands each ask to ONE node with a listener on it
``soaprelay.<ns>.ev.<entity>``   events: every node with a listener on it answers
``soaprelay.<ns>.nodes``         each node's presence and listener counts (heartbeat)
``soaprelay.<ns>.console``       the console's views: every node answers with its part

``<ns>`` and ``<entity>`` are base64url without padding (letters, digits, ``-``,
``_``), so no name can reach into another's subjects with ``.``, ``*`` or ``>``.
"""

from __future__ import annotations

import base64
import binascii
import functools

__all__ = ["QUEUE_GROUP", "Subjects", "token_of", "untoken"]

#: The queue group of the connect-ask subjects.
QUEUE_GROUP = "listeners"


@functools.lru_cache(maxsize=4096)
def token_of(text: str) -> str:
    """``text`` as one safe NATS subject token (cached: every ask names its entity's)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def untoken(token: str) -> str:
    """The text a :func:`token_of` token stands for; ValueError if it is not one."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a subject token: {token[:64]!r}") from exc


#: Most entities whose subjects a :class:`Subjects` keeps made (then it starts again).
_KEPT = 4096


class Subjects:
    """The subjects of namespace ``namespace``.

    A plain class, not a frozen dataclass: each ask names its entity's subject (on
    the asking node once, on the asked node twice), so each entity's are made once
    and kept (at most :data:`_KEPT` entities' at a time), not formatted per call.
    """

    __slots__ = ("_connect", "_event", "namespace", "prefix")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.prefix = f"soaprelay.{token_of(namespace)}"
        self._connect: dict[str, str] = {}
        self._event: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Subjects({self.namespace!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Subjects) and other.namespace == self.namespace

    def __hash__(self) -> int:
        return hash(self.namespace)

    def connect(self, path: str) -> str:
        subject = self._connect.get(path)
        return subject if subject is not None else self._make(self._connect, "hc", path)

    def event(self, path: str) -> str:
        subject = self._event.get(path)
        return subject if subject is not None else self._make(self._event, "ev", path)

    def _make(self, kept: dict[str, str], kind: str, path: str) -> str:
        if len(kept) >= _KEPT:
            kept.clear()
        subject = kept[path] = f"{self.prefix}.{kind}.{token_of(path)}"
        return subject

    @property
    def nodes(self) -> str:
        return f"{self.prefix}.nodes"

    @property
    def console(self) -> str:
        return f"{self.prefix}.console"
