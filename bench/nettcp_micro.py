"""A NetTcp call's SOAP work alone, in memory: zeep's side and the host's, per call.

``python -m bench.nettcp_micro [CALLS] [--side client|host|both] [--dry]``: S8's call
(``GetSalary(7)`` of the SOAP 1.2 payroll, samples/payroll) made ``CALLS`` times
(default 5,000) by a zeep client built as ``relay_client`` builds it for a
``NetTcpRelayBinding`` (WS-Addressing, the session plugin), whose transport hands
the request's bytes straight to a host's :class:`~bindings.nettcp.pipeline.SessionPipeline`
and the reply's bytes back, each parsed by the channel's ``parse_message`` as the
lane and the host's channel parse them.  No socket, no loop, no thread: what is left
is the SOAP work of both ends (zeep, our plugins and transport, the channel's parse,
our pipeline, Spyne, lxml), which S8's client and host CPU include.

With ``--side client`` the host's reply is made once and replayed (only the client's
work is timed), with ``--side host`` the client's request likewise; ``--dry`` builds
everything and makes one call (for ``valgrind --tool=callgrind``: run with CALLS and
with ``--dry``, subtract, divide).  Prints CPU time (``time.process_time``) per call.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import threading
import time
from typing import Any

from bench.keys import KEY, KEY_NAME
from bindings import NetTcpRelayBinding, TokenProvider, relay_client
from bindings.address import RelayAddress
from bindings.nettcp.framing import ChannelMessage, parse_message
from bindings.nettcp.pipeline import SessionPipeline
from bindings.nettcp.session import ServiceSession
from bindings.nettcp.zeep_nettcp import MESSAGE_ID, NetTcpRelayTransport, channel_response
from samples.payroll.services import payroll12_app

ADDRESS = "http://127.0.0.1:9350/payroll12"


def _serve_wsdl(document: bytes) -> http.server.HTTPServer:
    """An HTTP server on 127.0.0.1 (port 0) answering every GET with ``document``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Channel:
    """What a ServiceSession asks of its channel here: nothing (no callbacks)."""

    binding = NetTcpRelayBinding()


class Ends:
    """A zeep client and a host pipeline joined in memory."""

    def __init__(self) -> None:
        app = payroll12_app()
        self.binding = NetTcpRelayBinding()
        self.pipeline = SessionPipeline(app, self.binding, RelayAddress.parse(ADDRESS))
        server = _serve_wsdl(self.pipeline.relay_app.wsdl(ADDRESS))
        loop = asyncio.new_event_loop()
        self.session = ServiceSession("urn:uuid:micro", _Channel(), loop)  # type: ignore[arg-type]
        port = server.server_address[1]
        self.client = relay_client(f"http://127.0.0.1:{port}/payroll12?wsdl", binding=self.binding,
                                   token_provider=TokenProvider.shared_access_key(KEY_NAME, KEY),
                                   proxy=None)
        server.shutdown()
        transport = self.client.transport
        assert isinstance(transport, NetTcpRelayTransport)
        transport.post = self._post  # type: ignore[method-assign]
        self.replay_reply: bytes | None = None
        self.request: bytes | None = None

    def host(self, data: bytes) -> bytes:
        """The host's side of one request: the channel's parse, the pipeline."""
        message = parse_message(data, self.binding.reader_quotas, self.binding.max_received_message_size)
        reply = self.pipeline.run(message, self.session)
        assert reply is not None
        return reply

    def _post(self, address: str, message: bytes | str, headers: dict[str, str]) -> Any:
        data = message.encode() if isinstance(message, str) else message
        message_id = headers.get(MESSAGE_ID, "")
        self.request = data
        if self.replay_reply is not None:
            raw = self.replay_reply.replace(b"{RELATES_TO}", message_id.encode())
        else:
            raw = self.host(data)
        reply: ChannelMessage = parse_message(raw, self.binding.reader_quotas,
                                              self.binding.max_received_message_size)
        return channel_response(reply)

    def call(self) -> None:
        assert self.client.service.GetSalary(7) is not None

    def client_only(self) -> None:
        """From now on the host is not run: its reply is replayed (RelatesTo set per call)."""
        self.call()
        assert self.request is not None
        message_id = parse_message(self.request, self.binding.reader_quotas,
                                   self.binding.max_received_message_size).headers.message_id
        assert message_id is not None
        reply = self.host(self.request)
        self.replay_reply = reply.replace(message_id.encode(), b"{RELATES_TO}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", type=int, nargs="?", default=5000)
    parser.add_argument("--side", choices=("client", "host", "both"), default="both")
    parser.add_argument("--dry", action="store_true", help="build, one call, no loop")
    args = parser.parse_args(argv)
    ends = Ends()
    ends.call()
    if args.side == "client":
        ends.client_only()
    request = ends.request
    assert request is not None
    step = ends.call if args.side != "host" else (lambda: ends.host(request))
    if args.dry:
        step()
        return
    for _ in range(min(200, args.calls)):  # warm
        step()
    started = time.process_time()
    for _ in range(args.calls):
        step()
    spent = time.process_time() - started
    print(f"{args.side}: {spent / args.calls * 1e6:.1f} us CPU per call ({args.calls} calls)")


if __name__ == "__main__":
    main()
