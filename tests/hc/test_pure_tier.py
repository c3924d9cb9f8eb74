"""The pure tier's guard trips: a test here cannot reach the network, even by accident."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.support.no_sockets import NetworkInPureTest


def test_creating_an_inet_socket_fails_loudly() -> None:
    with pytest.raises(NetworkInPureTest, match=r"socket\.socket\(AF_INET\) in a pure test"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(NetworkInPureTest, match="AF_INET6"):
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)


def test_connecting_resolving_and_serving_fail_loudly() -> None:
    with pytest.raises(NetworkInPureTest, match=r"create_connection\(\('127.0.0.1', 9\)"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with pytest.raises(NetworkInPureTest, match="getaddrinfo"):
        socket.getaddrinfo("localhost", 80)
    with pytest.raises(NetworkInPureTest, match="create_server"):
        socket.create_server(("127.0.0.1", 0))


def test_a_unix_socket_cannot_connect_either() -> None:
    with socket.socket(socket.AF_UNIX) as unix:
        with pytest.raises(NetworkInPureTest, match=r"socket\.connect\('/nowhere'\)"):
            unix.connect("/nowhere")


def test_an_event_loop_still_starts_but_cannot_connect() -> None:
    """A loop's self-pipe is a Unix socketpair (allowed); its connections are not."""

    async def dial() -> None:
        await asyncio.open_connection("127.0.0.1", 9)

    with pytest.raises(NetworkInPureTest, match="in a pure test"):
        asyncio.run(dial())
