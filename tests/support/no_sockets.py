"""The pure tier's guard: no network socket, no connect, no name lookup.

Pure tests (``tests/hc``, ``tests/soap``, and the modules that say so with
``pytestmark = pytest.mark.usefixtures("no_sockets")``) exercise protocol logic on
bytes and values.  :func:`refuse_sockets` makes any attempt to reach the network
from one of them fail at once with :class:`NetworkInPureTest`, naming the call,
instead of quietly passing or hanging on a socket.

Unix-domain sockets stay allowed: ``socket.socketpair()`` is how an event loop
wakes itself up, and it reaches nothing outside the process.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["NetworkInPureTest", "refuse_sockets"]


class NetworkInPureTest(AssertionError):
    """A test of the pure tier tried to create, bind, connect or resolve a socket."""


def _refusal(what: str) -> NetworkInPureTest:
    return NetworkInPureTest(
        f"{what} in a pure test: this tier runs without network. Drive the protocol "
        "object with bytes (an in-memory pair), or move the test to an asyncio tier."
    )


def _guarded_init(original: Callable[..., None]) -> Callable[..., None]:
    def init(self: socket.socket, family: int = -1, *args: Any, **kwargs: Any) -> None:
        # socketpair() and fromfd() hand an existing descriptor: AF_UNIX is harmless.
        if family not in (-1, socket.AF_UNIX):
            raise _refusal(f"socket.socket({socket.AddressFamily(family).name})")
        original(self, family, *args, **kwargs)
        if self.family != socket.AF_UNIX:
            self.detach()
            raise _refusal(f"socket.socket({self.family.name})")
    return init


def _refused(what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        shown = ", ".join(repr(a) for a in args if not isinstance(a, socket.socket))
        raise _refusal(f"{what}({shown})")
    return refuse


def refuse_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every network socket operation raise :class:`NetworkInPureTest` (undone by
    ``monkeypatch`` when the test ends)."""
    monkeypatch.setattr(socket.socket, "__init__", _guarded_init(socket.socket.__init__))
    for method in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, method, _refused(f"socket.{method}"))
    for function in ("create_connection", "create_server", "getaddrinfo", "gethostbyname"):
        monkeypatch.setattr(socket, function, _refused(f"socket.{function}"))
