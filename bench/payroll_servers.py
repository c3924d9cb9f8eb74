"""S2's two ways of serving the same Spyne payroll service (samples/payroll).

``python -m bench.payroll_servers direct PORT``: Spyne's WsgiApplication in
waitress (a production WSGI server, 4 threads), the service as users run it today.

``python -m bench.payroll_servers relay RELAY_BASE ENTITY``: the same Spyne
``Application`` on RelayServiceHost (BasicHttpRelayBinding), behind the relay.

S8: ``direct12 PORT`` serves the SOAP 1.2 payroll (``payroll12_app``) in waitress, and
``ws2007 RELAY_BASE ENTITY`` hosts it with WS2007HttpRelayBinding (SOAP 1.2 + WS-Addressing
over HTTP, as NetTcp's envelopes), ``nettcp RELAY_BASE ENTITY`` / ``hybrid RELAY_BASE ENTITY`` with
NetTcpRelayBinding (relayed; Hybrid with the direct endpoint on 127.0.0.1), and
``nettcp-inline RELAY_BASE ENTITY`` relayed with ``inline_calls=True`` (no worker thread).

All print ``READY`` once serving.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from bench.aio import run
from bench.keys import KEY, KEY_NAME
from samples.payroll.services import payroll12_app, payroll_app


def direct(port: int, soap12: bool = False) -> None:
    import waitress
    from spyne.server.wsgi import WsgiApplication

    app = payroll12_app() if soap12 else payroll_app()
    server = waitress.create_server(WsgiApplication(app), host="127.0.0.1", port=port,
                                    threads=4, backlog=1024)
    print("READY", flush=True)
    server.run()


async def _host(app: Any, relay_base: str, entity: str, binding: Any) -> None:
    """``app`` behind the relay at ``entity`` with ``binding``, until killed."""
    from bindings import RelayServiceHost, TokenProvider

    host = RelayServiceHost(app, f"{relay_base}/{entity}", binding=binding,
                            token_provider=TokenProvider.shared_access_key(KEY_NAME, KEY))
    async with host:
        print("READY", flush=True)
        await asyncio.Event().wait()


async def relayed(relay_base: str, entity: str) -> None:
    from bindings import BasicHttpRelayBinding

    await _host(payroll_app(), relay_base, entity, BasicHttpRelayBinding())


async def ws2007(relay_base: str, entity: str) -> None:
    from bindings import WS2007HttpRelayBinding

    await _host(payroll12_app(), relay_base, entity, WS2007HttpRelayBinding())


async def sessions(relay_base: str, entity: str, hybrid: bool, inline: bool = False) -> None:
    from bindings import ConnectionMode, NetTcpRelayBinding

    mode = ConnectionMode.HYBRID if hybrid else ConnectionMode.RELAYED
    binding = NetTcpRelayBinding(connection_mode=mode, hybrid_host="127.0.0.1", inline_calls=inline)
    await _host(payroll12_app(), relay_base, entity, binding)


if __name__ == "__main__":
    if sys.argv[1] in ("direct", "direct12"):
        direct(int(sys.argv[2]), soap12=sys.argv[1] == "direct12")
    elif sys.argv[1] == "ws2007":
        run(ws2007(sys.argv[2], sys.argv[3]))
    elif sys.argv[1] in ("nettcp", "nettcp-inline", "hybrid"):
        run(sessions(sys.argv[2], sys.argv[3], hybrid=sys.argv[1] == "hybrid",
                     inline=sys.argv[1] == "nettcp-inline"))
    else:
        run(relayed(sys.argv[2], sys.argv[3]))
