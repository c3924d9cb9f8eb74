"""The relay's event fan-out in memory: CPU per event to 1,000 subscribers (S5 without sockets).

``python -m bench.fanout_micro [ROUNDS [EVENTS [SUBSCRIBERS]]] [--dry]``: a real
``relay.front.Front`` on a real ``RelayState`` with one event entity and
SUBSCRIBERS (1,000 by default) listener control channels writing to transports
that only keep the bytes.  Each event is a 1 KiB SOAP POST; every subscriber's
acknowledgement (202, no body, one frame as ``bench.swarm`` sends it) is fed to
its channel, and the sender must get its 202 with ``Relay-Delivered``.

Prints the relay's CPU time per event (``time.process_time`` around the relay's
calls only; building the acknowledgements is left out); the lowest round is the
least disturbed by other work on the machine.  ``--dry`` does everything but
the relay's part, so that ``valgrind --tool=callgrind`` instruction counts of a
run minus a dry run are the relay's own (as ``bench.relay_micro``).
"""

from __future__ import annotations

import asyncio
import gc
import re
import sys
import time
from typing import Any

from bench.keys import KEY, KEY_NAME, token
from bench.relay_micro import KeepingTransport
from hc.entities import EntityKind, Rights
from hc.frames import apply_mask
from hc.messages import ResponseCommand
from hc.protocol import ControlChannel, Role
from relay.front import Front
from relay.listeners import ListenerConnection
from relay.namespace import EntityConfig, NamespaceConfig, SasRule
from relay.observe.settings import ObserveSettings
from relay.state import RelayState

_BODY = b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'>" + b"x" * 960
_ID = re.compile(rb'"id":"([^"]+)"')


def _state(subscribers: int) -> RelayState:
    config = NamespaceConfig(
        observe=ObserveSettings(enabled=False),
        name="micro", host="127.0.0.1", port=0,
        rules=(SasRule(KEY_NAME, KEY, Rights.MANAGE | Rights.LISTEN | Rights.SEND),),
        entities=(EntityConfig.for_kind("fan", EntityKind.EVENT, max_listeners=subscribers),),
    )
    return RelayState.of(config)


def _request() -> bytes:
    head = (
        "POST /fan HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        "Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"urn:event\"\r\n"
        f"ServiceBusAuthorization: {token('http://127.0.0.1:8080')}\r\n"
        f"Content-Length: {len(_BODY)}\r\n\r\n"
    )
    return head.encode() + _BODY


def _acks(written: list[list[bytes]]) -> list[bytes]:
    """Each subscriber's acknowledgement of the request it was written (masked, as a client's)."""
    out = []
    for chunks in written:
        match = _ID.search(b"".join(chunks))
        assert match is not None, "a subscriber got no request"
        channel = ControlChannel(Role.LISTENER, mask=apply_mask)
        channel.send_response(ResponseCommand(match.group(1).decode(), 202, "Accepted"))
        out.append(b"".join(channel.data_to_send()))
        chunks.clear()
    return out


async def _turns(n: int = 4) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def _round(events: int, subscribers: int, dry: bool) -> float:
    state = _state(subscribers)
    state.loop = asyncio.get_running_loop()
    front = Front(state, fallback=lambda: asyncio.Protocol())
    entity = state.registry.get("fan")
    assert entity is not None
    outs = [KeepingTransport() for _ in range(subscribers)]
    wires = []
    for out in outs:
        connection = ListenerConnection("fan", token_expiry=float("inf"), check_renewal=float,
                                        clock=time.time)
        wires.append(connection.connect(out))
        entity.add(connection)
    sender, sender_out = front(), KeepingTransport()
    sender.connection_made(sender_out)
    request = _request()
    relay_cpu = 0.0
    for _ in range(events):
        started = time.process_time()
        if not dry:
            sender.data_received(request)
            await _turns()
        relay_cpu += time.process_time() - started
        # a dry run builds as many acknowledgements, and feeds none
        written = [out.chunks for out in outs] if not dry else [[b'"id":"%d"' % i] for i in range(subscribers)]
        acks = _acks(written)
        if dry:
            acks.clear()
        started = time.process_time()
        for wire, ack in zip(wires, acks):
            wire.feed_data(ack)
        await _turns()
        relay_cpu += time.process_time() - started
        if not dry:
            answer = b"".join(sender_out.chunks)
            assert answer.startswith(b"HTTP/1.1 202") and f"Relay-Delivered: {subscribers}\r\n".encode() \
                in answer, answer[:300]
            sender_out.chunks.clear()
    front.close()
    return relay_cpu / max(events, 1) * 1e3


def main(rounds: int, events: int, subscribers: int, dry: bool) -> None:
    gc.set_threshold(50_000, 10, 10)  # as relay.server.run does
    try:
        import uvloop
        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    for _ in range(rounds):
        print(f"{run(_round(events, subscribers, dry)):.2f} ms CPU per event to {subscribers} subscribers")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:] if not a.startswith("--")] + [5, 20, 1000][len(
        [a for a in sys.argv[1:] if not a.startswith("--")]):]
    main(args[0], args[1], args[2], "--dry" in sys.argv)
