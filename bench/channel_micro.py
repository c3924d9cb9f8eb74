"""The relay's side of a control channel alone, in memory: CPU per request and answer.

``python -m bench.channel_micro [ROUNDS]``: a ``relay.listeners.ListenerConnection``
over a transport that only counts bytes; 20,000 requests (1 KiB bodies, three
headers) are queued 32 per loop turn, written, and answered by pre-built listener
frames (1 KiB bodies), fed 32 answers per chunk.  Prints the CPU time
(``time.process_time``) per request and answer for each round; the lowest is the
least disturbed by other work on the machine.  No socket, no event-loop I/O:
what it measures is the relay's own code (serialising, framing, parsing,
resolving the request's future), which S1's relay CPU includes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from hc.messages import RequestCommand, ResponseCommand
from hc.protocol import ControlChannel, Role
from relay.listeners import ListenerConnection

_N = 20_000
_BATCH = 32
_HEADERS = (("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", '"urn:x"'), ("Host", "h"))
_BODY = b"x" * 1024


class _CountingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: Any) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False


def _answers() -> list[bytes]:
    listener = ControlChannel(Role.LISTENER)
    for n in range(1, _N + 1):
        listener.send_response(ResponseCommand(str(n), 200, "OK", _HEADERS, True), _BODY)
    frames = listener.data_to_send()  # two per answer
    return [b"".join(frames[i : i + 2 * _BATCH]) for i in range(0, len(frames), 2 * _BATCH)]


async def _round(chunks: list[bytes]) -> float:
    connection = ListenerConnection("echo", token_expiry=float("inf"), check_renewal=float,
                                    clock=time.time)
    wire = connection.connect(_CountingTransport())
    ids = iter(range(1, _N + 1))
    started = time.process_time()
    for chunk in chunks:
        pending = []
        for _ in range(_BATCH):
            n = next(ids)
            command = RequestCommand(f"ws://h/$hc/echo?sb-hc-action=request&sb-hc-id=r{n}", str(n),
                                     "/echo", "POST", _HEADERS, True, ("127.0.0.1", 5555))
            request = connection.new_request(command, _BODY)
            connection.post_inline(request, _BODY)
            pending.append(request)
        wire.flush()
        wire.feed_data(chunk)
        for request in pending:
            assert request.answered
            connection.forget(request)
    return (time.process_time() - started) / _N * 1e6


def main(rounds: int) -> None:
    chunks = _answers()
    for _ in range(rounds):
        print(f"{asyncio.run(_round(chunks)):.1f} us CPU per request and answer (relay side)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
