"""S2's two ways of serving the same Spyne payroll service (samples/payroll).

``python -m bench.payroll_servers direct PORT``: Spyne's WsgiApplication in
waitress (a production WSGI server, 4 threads), the service as users run it today.

``python -m bench.payroll_servers relay RELAY_BASE ENTITY``: the same Spyne
``Application`` on RelayServiceHost (BasicHttpRelayBinding), behind the relay.

Both print ``READY`` once serving.
"""

from __future__ import annotations

import asyncio
import sys

from bench.aio import run
from bench.keys import KEY, KEY_NAME
from samples.payroll.services import payroll_app


def direct(port: int) -> None:
    import waitress
    from spyne.server.wsgi import WsgiApplication

    server = waitress.create_server(WsgiApplication(payroll_app()), host="127.0.0.1", port=port,
                                    threads=4, backlog=1024)
    print("READY", flush=True)
    server.run()


async def relayed(relay_base: str, entity: str) -> None:
    from bindings import BasicHttpRelayBinding, RelayServiceHost, TokenProvider

    host = RelayServiceHost(payroll_app(), f"{relay_base}/{entity}", binding=BasicHttpRelayBinding(),
                            token_provider=TokenProvider.shared_access_key(KEY_NAME, KEY))
    async with host:
        print("READY", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[1] == "direct":
        direct(int(sys.argv[2]))
    else:
        run(relayed(sys.argv[2], sys.argv[3]))
