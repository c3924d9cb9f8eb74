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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Subjects:
    """The subjects of namespace ``namespace``."""

    namespace: str

    @property
    def prefix(self) -> str:
        return f"soaprelay.{token_of(self.namespace)}"

    def connect(self, path: str) -> str:
        return f"{self.prefix}.hc.{token_of(path)}"

    def event(self, path: str) -> str:
        return f"{self.prefix}.ev.{token_of(path)}"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}.nodes"

    @property
    def console(self) -> str:
        return f"{self.prefix}.console"
