"""A listener's control channel read by picows' C WebSocket parser (``pip install soaprelay[fast]``).

:func:`open_websocket_picows` is :func:`hc.asyncio.connection.open_websocket` with
picows (https://github.com/tarasko/picows) doing the Upgrade handshake and parsing
the frames in C, straight out of the socket's buffer (an ``asyncio.BufferedProtocol``,
no ``bytes`` per read).  Everything else stays ours and is the same code as the pure
path: each frame goes to the machine's :meth:`~hc.protocol.ControlChannel.receive_frame`
(the control-channel rules, fragments, sizes, UTF-8, Ping and the closing handshake
are judged there), the events are dispatched once per read, and what the machine
queues is framed and masked by :mod:`hc.framing` and leaves in one ``write`` on the
socket, as before: picows' own ``send`` writes every frame at once, and an answer's
command and body in two writes wake the relay twice (bench/results/issue11-listener.md,
Round 6).  The pure :class:`~hc.asyncio.connection.WebSocketProtocol` is the reference
and the fallback when picows is not installed (:data:`AVAILABLE`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hc.asyncio.connection import Connector, Machine, WebSocketProtocol, tcp_connector
from hc.exceptions import RemoteProtocolError
from hc.frames import Opcode
from hc.handshake import HandshakeRejected, Headers, Response, Target

try:
    import picows

    # ws_connect's protocol, not its connection: the socket comes from our Connector
    # (proxies, TLS, the tests' memory pipes), as on the pure path.
    from picows.picows import WSProtocol  # type: ignore[attr-defined]
    from picows.url import parse_url
except ImportError:  # pragma: no cover - the pure path is the fallback
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = ["AVAILABLE", "open_websocket_picows"]

#: picows' own log lines ("Disconnected" per socket...) below warnings are not wanted.
_picows_log = logging.getLogger("picows.hc")
_picows_log.setLevel(logging.WARNING)

if AVAILABLE:
    _OPCODES = {kind: Opcode(kind.value) for kind in picows.WSMsgType}

    class _Frames(picows.WSListener):  # type: ignore[misc]
        """picows' callbacks, handed to the :class:`WebSocketProtocol` that runs the machine."""

        def __init__(self, protocol: WebSocketProtocol) -> None:
            super().__init__()
            self.protocol = protocol

        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            # Before any frame that came with the 101: from here on the machine writes.
            self.protocol.upgraded(transport.underlying_transport, _response(transport.response))

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            # (picows' flags are ints; the compiled core takes bools only)
            self.protocol.frame_received(
                _OPCODES[frame.msg_type], bool(frame.fin), frame.get_payload_as_bytes(),
                bool(frame.rsv1 or frame.rsv2 or frame.rsv3), bool(frame.last_in_buffer))

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            self.protocol.connection_lost(None)

        def pause_writing(self) -> None:
            self.protocol.pause_writing()

        def resume_writing(self) -> None:
            self.protocol.resume_writing()


def _response(answer: picows.WSUpgradeResponse, body: bytes = b"") -> Response:
    status = int(answer.status)
    headers = tuple((str(name), str(value)) for name, value in answer.headers.items())
    return Response(status, getattr(answer.status, "phrase", ""), headers, body)


def _rejected(exc: picows.WSHandshakeError) -> RemoteProtocolError:
    """picows' handshake failure as :func:`~hc.asyncio.connection.open_websocket` tells it."""
    answer = exc.response
    if answer is None or int(answer.status) == 101:
        return RemoteProtocolError(f"invalid handshake answer: {exc}")
    return HandshakeRejected(_response(answer, exc.raw_body or answer.body or b""))


async def open_websocket_picows(
    url: str,
    machine: Machine,
    *,
    max_frame_size: int,
    headers: Headers = (),
    on_event: Callable[[object], None] | None = None,
    connector: Connector | None = None,
    timeout: float = 30.0,
) -> WebSocketProtocol:
    """Connect to ``url`` with picows parsing, complete the handshake, return the protocol (OPEN).

    ``max_frame_size``: picows drops a longer frame before buffering it (1009).

    Raises:
        HandshakeRejected: the server answered something other than 101 (its status and body).
        RemoteProtocolError: the answer was not a valid handshake response.
        OSError, TimeoutError: the server could not be reached in ``timeout`` seconds.
        RuntimeError: picows is not installed.
    """
    if not AVAILABLE:
        raise RuntimeError("picows is not installed (pip install soaprelay[fast])")
    target, parsed = Target.parse(url), parse_url(url)
    protocol = WebSocketProtocol(machine, b"", "", (), on_event)
    made: list[WSProtocol] = []

    def make() -> asyncio.Protocol:
        ws = WSProtocol(
            parsed.netloc, parsed.resource_name, True, lambda: _Frames(protocol), _picows_log,
            True,  # disconnect on an exception from our callbacks (a bug: they raise none)
            None,  # no handshake timeout of its own: ours, below
            False, 10.0, 10.0, picows.WSAutoPingStrategy.PING_WHEN_IDLE,  # no auto-ping: KeepAlive
            False,  # no auto-pong: the machine answers Pings
            max_frame_size, list(headers), 16 * 1024,
        )
        made.append(ws)
        return ws  # type: ignore[no-any-return]

    connect = connector or tcp_connector
    async with asyncio.timeout(timeout):
        transport = await connect(make, target)
        try:
            await made[0].wait_until_handshake_complete()
        except picows.WSHandshakeError as exc:
            transport.close()
            raise _rejected(exc) from exc
        except BaseException:
            transport.close()
            raise
    if not protocol.handshake.done():  # lost before the 101
        transport.close()
        raise ConnectionError("connection lost before the handshake")
    return protocol
