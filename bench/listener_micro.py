"""The SDK listener's whole per-request path in memory: CPU per answered request.

``python -m bench.listener_micro [ROUNDS [REQUESTS]] [--dry] [--profile]``: a real
``hc.asyncio.HybridConnectionListener`` whose control channel is a transport
that only keeps the bytes (the handshake answered in memory, no socket), with an
echo ``request_handler`` as ``bench/echo_listener.py``'s.  A relay-role
``hc.protocol.ControlChannel`` frames 20,000 requests (1 KiB SOAP bodies, the
headers the relay passes on) in chunks of 32, as S3 sends them at c=32; each
chunk is fed to the listener's protocol as one read, the loop runs until all 32
answers are written; one chunk's answers in 16 are parsed (outside the clock)
to check each request got its echo.  Prints the listener's CPU time per request
(``time.process_time``); the lowest round is the least disturbed by other work
on the machine.  ``--dry`` runs the same rounds without requests (the harness's
own cost: subtract it from callgrind's instruction count); ``--profile`` prints
cProfile's busiest functions of the clocked part.  What it measures is the
listener's Python (frame parsing, the command's JSON, the request/response
objects, the task, the answer's framing and masking) and the event loop's
scheduling, not syscalls.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.echo_listener import handler
from bench.relay_micro import KeepingTransport
from hc.asyncio import HybridConnectionListener
from hc.events import ResponseReceived
from hc.handshake import Target, accept_response
from hc.messages import RequestCommand
from hc.protocol import ControlChannel, Role

_N = 20_000
_CONNS = 32
_BODY = b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'>" + b"x" * 960
_HEADERS = (
    ("Host", "127.0.0.1:8080"), ("Content-Type", "text/xml; charset=utf-8"),
    ("SOAPAction", '"urn:echo"'), ("Content-Length", str(len(_BODY))),
)


class _Connector:
    """Answers the control channel's Upgrade in memory and keeps its protocol."""

    def __init__(self) -> None:
        self.protocol: asyncio.Protocol | None = None
        self.transport = KeepingTransport()

    async def __call__(self, factory: Callable[[], asyncio.Protocol], target: Target) -> asyncio.BaseTransport:
        protocol = self.protocol = factory()
        protocol.connection_made(self.transport)
        head = self.transport.chunks.pop()
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        asyncio.get_running_loop().call_soon(protocol.data_received, accept_response(key.decode()))
        return self.transport


def _request_chunks(n: int) -> list[bytes]:
    """``n`` requests as the relay frames them, ``_CONNS`` per chunk."""
    relay = ControlChannel(Role.RELAY)
    chunks = []
    for start in range(0, n, _CONNS):
        for ident in range(start, start + _CONNS):
            address = f"ws://127.0.0.1:8080/$hc/echo?sb-hc-action=request&sb-hc-id=r{ident}"
            relay.send_request(RequestCommand(address, str(ident), "/echo", "POST", _HEADERS, True,
                                              ("127.0.0.1", 40000 + ident % 1000)), _BODY)
        chunks.append(b"".join(relay.data_to_send()))
    return chunks


def _check(reader: ControlChannel, written: list[bytes], count: int) -> None:
    for chunk in written:
        reader.receive_data(chunk)
    written.clear()
    answers = [e for e in reader.events_received() if isinstance(e, ResponseReceived)]
    assert len(answers) == count, f"{len(answers)} answers to {count} requests"
    assert all(a.command.status_code == 200 and a.body == _BODY for a in answers), answers[0]


async def _round(n: int = _N, dry: bool = False, profile: cProfile.Profile | None = None) -> float:
    connector = _Connector()
    listener = HybridConnectionListener("http://127.0.0.1:8080/echo", None, connector=connector,
                                        keep_alive_interval=0)
    listener.request_handler = handler
    await listener.open()
    protocol, written = connector.protocol, connector.transport.chunks
    assert protocol is not None
    reader = ControlChannel(Role.RELAY)
    chunks = _request_chunks(n // _CONNS * _CONNS)
    cpu = 0.0
    for turn, chunk in enumerate(chunks):
        if profile is not None:
            profile.enable()
        started = time.process_time()
        if not dry:  # from the loop, as a socket's read comes (not from inside this task)
            asyncio.get_running_loop().call_soon(protocol.data_received, chunk)
        for _ in range(3):  # the tasks run, write their answers, the flush goes out
            await asyncio.sleep(0)
        cpu += time.process_time() - started
        if profile is not None:
            profile.disable()
        assert dry or written, "no answer written"
        if not dry and turn % 16 == 0:  # a sample: parsing them all would outweigh the listener
            _check(reader, written, _CONNS)  # under callgrind, where --dry is subtracted
        written.clear()
    closing = asyncio.get_running_loop().create_task(listener.close())
    await asyncio.sleep(0)
    reader.send_close(1000)  # the relay's side of the closing handshake
    protocol.data_received(b"".join(reader.data_to_send()))
    await closing
    return cpu / max(1, len(chunks) * _CONNS) * 1e6


def main(rounds: int, n: int, dry: bool, profiled: bool = False) -> None:
    profile = cProfile.Profile() if profiled else None
    try:
        import uvloop
        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    for _ in range(rounds):
        print(f"{run(_round(n, dry, profile)):.1f} us CPU per request{' (dry)' if dry else ''}")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 5, int(args[1]) if len(args) > 1 else _N, "--dry" in sys.argv,
         "--profile" in sys.argv)
