"""The relay's whole per-request path in memory: CPU per relayed request.

``python -m bench.relay_micro [ROUNDS [REQUESTS]] [--dry] [--no-observe]``: a real ``relay.front.Front`` on a real
``RelayState`` with one listener whose control channel writes to a transport
that only keeps the bytes.  Each round sends 20,000 SOAP requests (1 KiB bodies,
a SAS token in ``ServiceBusAuthorization``) on 32 keep-alive connections, one
request per connection per turn, as S1 does at c=32 (``REQUESTS``, 20,000 by default); a listener-role
``hc.protocol.ControlChannel`` reads what the relay wrote and answers each with
a 1 KiB body.  Prints the relay's CPU time per request (``time.process_time``,
the simulated listener's work left out); the lowest round is the least
disturbed by other work on the machine.  No socket: what it measures is the
relay's Python (HTTP head, access check, command, framing, the answer's
parsing and HTTP response) and its event loop's scheduling, not syscalls.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from typing import Any

from bench.keys import KEY, KEY_NAME, token
from hc.entities import EntityKind, Rights
from hc.events import RequestReceived
from hc.messages import ResponseCommand
from hc.protocol import ControlChannel, Role
from relay.front import Front
from relay.listeners import ListenerConnection
from relay.namespace import EntityConfig, NamespaceConfig, SasRule
from relay.observe.settings import ObserveSettings
from relay.rawws import apply_mask
from relay.state import RelayState

_N = 20_000
_CONNS = 32
_BODY = b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'>" + b"x" * 960
_HEADERS = (("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", "1024"))


class KeepingTransport(asyncio.Transport):
    """Keeps what is written to it (by the relay, a listener); reports a peer, no TLS."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []

    def write(self, data: Any) -> None:
        self.chunks.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _state(observe: bool = True) -> RelayState:
    config = NamespaceConfig(
        observe=ObserveSettings(enabled=observe),
        name="micro", host="127.0.0.1", port=0,
        rules=(SasRule(KEY_NAME, KEY, Rights.MANAGE | Rights.LISTEN | Rights.SEND),),
        entities=(EntityConfig.for_kind("echo", EntityKind.REQUEST_RESPONSE),),
    )
    return RelayState.of(config)


def _request() -> bytes:
    head = (
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        "Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"urn:echo\"\r\n"
        f"ServiceBusAuthorization: {token('http://127.0.0.1:8080')}\r\n"
        f"Content-Length: {len(_BODY)}\r\n\r\n"
    )
    return head.encode() + _BODY


def _answer_chunks(first: int, n: int, per: int = _CONNS) -> list[bytes]:
    """The simulated listener's answers to request ids ``first`` .. ``first + n - 1``
    (the relay numbers its requests in the order it queues them), ``per`` per chunk."""
    listener = ControlChannel(Role.LISTENER, mask=apply_mask)
    chunks = []
    for start in range(first, first + n, per):
        for ident in range(start, start + per):
            listener.send_response(ResponseCommand(str(ident), 200, "OK", _HEADERS, True), _BODY)
        chunks.append(b"".join(listener.data_to_send()))
    return chunks


def _first_id(written: list[bytes]) -> int:
    """The id of the one request the relay wrote so far."""
    reader = ControlChannel(Role.LISTENER)
    for chunk in written:
        reader.receive_data(chunk)
    written.clear()
    requests = [e for e in reader.events_received() if isinstance(e, RequestReceived)]
    assert len(requests) == 1, requests
    return int(requests[0].command.id)


async def _round(n: int = _N, dry: bool = False, observe: bool = True) -> float:
    loop = asyncio.get_running_loop()
    state = _state(observe)
    state.loop = loop
    front = Front(state, fallback=lambda: asyncio.Protocol())
    entity = state.registry.get("echo")
    assert entity is not None
    connection = ListenerConnection("echo", token_expiry=float("inf"), check_renewal=float,
                                    clock=time.time)
    channel_out = KeepingTransport()
    wire = connection.connect(channel_out)
    entity.add(connection)
    senders = [front() for _ in range(_CONNS)]
    outs = [KeepingTransport() for _ in senders]
    for sender, out in zip(senders, outs):
        sender.connection_made(out)
    request = _request()
    senders[0].data_received(request)  # one call to learn where the relay's ids are
    for _ in range(3):
        await asyncio.sleep(0)
    first = _first_id(channel_out.chunks)
    wire.feed_data(_answer_chunks(first, 1, per=1)[0])
    outs[0].chunks.clear()
    answers = _answer_chunks(first + 1, n // _CONNS * _CONNS)
    relay_cpu = 0.0
    for chunk in [] if dry else answers:
        started = time.process_time()
        for sender in senders:
            sender.data_received(request)
        for _ in range(3):  # the wire flushes (and tasks, if any, start and post)
            await asyncio.sleep(0)
        channel_out.chunks.clear()
        wire.feed_data(chunk)
        for _ in range(3):  # tasks, if any, write their answers
            await asyncio.sleep(0)
        relay_cpu += time.process_time() - started
        for out in outs:
            assert out.chunks, "a request got no answer"
            out.chunks.clear()
    front.close()
    return relay_cpu / max(1, len(answers) * _CONNS) * 1e6


def main(rounds: int, n: int, dry: bool, observe: bool) -> None:
    gc.set_threshold(50_000, 10, 10)  # as relay.server.run does
    try:
        import uvloop
        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    for _ in range(rounds):
        print(f"{run(_round(n, dry, observe)):.1f} us CPU per relayed request")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 5, int(args[1]) if len(args) > 1 else _N, "--dry" in sys.argv,
         "--no-observe" not in sys.argv)
