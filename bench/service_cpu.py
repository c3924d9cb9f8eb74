"""Service-side CPU per SOAP call, in-process: the handler RelayServiceHost hosts, no sockets.

``python -m bench.service_cpu [N]`` calls the payroll service's handler (as
:func:`bindings.app_handler.make_handler` builds it) N times with a zeep-like
``GetSalary`` envelope, for BasicHttp (SOAP 1.1) and WS2007 (SOAP 1.2 with
WS-Addressing), and prints the process CPU time per call (the minimum and the
median of five rounds: on a shared machine the minimum is what to compare).  It measures what the
listener spends between "body received" and "reply bytes ready": reading the
body under the reader quotas, the hosting pipeline, Spyne and the reply.
"""

from __future__ import annotations

import asyncio
import sys
import time
from statistics import median

from bindings.app_handler import make_handler
from bindings.binding import BasicHttpRelayBinding, RelayBinding, WS2007HttpRelayBinding
from bindings.handler import RelayedRequest, RelayedResponse, iter_bytes
from samples.payroll.services import payroll12_app, payroll_app

#: Rounds per case: the machine may be shared, the minimum is the figure to compare.
_ROUNDS = 5
_SOAP11 = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<soap-env:Body><ns0:GetSalary xmlns:ns0="urn:soap-relay:payroll"><ns0:employee_id>7</ns0:employee_id>'
    b"</ns0:GetSalary></soap-env:Body></soap-env:Envelope>"
)
_SOAP12 = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<soap-env:Envelope xmlns:soap-env="http://www.w3.org/2003/05/soap-envelope">'
    b'<soap-env:Header xmlns:wsa="http://www.w3.org/2005/08/addressing">'
    b"<wsa:Action>urn:soap-relay:payroll/GetSalary</wsa:Action>"
    b"<wsa:MessageID>urn:uuid:0b6f2f5e-6c9a-4d0e-9a57-3c1f3e1c2b11</wsa:MessageID>"
    b"<wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address>"
    b"</wsa:ReplyTo><wsa:To>http://127.0.0.1:9350/payroll</wsa:To></soap-env:Header>"
    b'<soap-env:Body><ns0:GetSalary xmlns:ns0="urn:soap-relay:payroll"><ns0:employee_id>7</ns0:employee_id>'
    b"</ns0:GetSalary></soap-env:Body></soap-env:Envelope>"
)


def _request(body: bytes, content_type: str) -> RelayedRequest:
    return RelayedRequest(
        "POST", "/payroll", (("Content-Type", content_type),), iter_bytes(body),
        "http://127.0.0.1:9350", "payroll", ("127.0.0.1", 5000),
    )


async def _measure(app: object, binding: RelayBinding, body: bytes, content_type: str,
                   calls: int, rounds: int = _ROUNDS) -> list[float]:
    """CPU microseconds per call, one figure per round of ``calls`` calls."""
    handler = make_handler(app, binding)
    for _ in range(50):  # warm up: Spyne's caches, the pool's threads
        await handler(_request(body, content_type))
    per_round = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            response = await handler(_request(body, content_type))
            assert isinstance(response, RelayedResponse) and response.status == 200, response
        per_round.append((time.process_time() - start) / calls * 1e6)
    closer = getattr(handler, "aclose", None)
    if closer is not None:
        await closer()
    return per_round


async def main(calls: int) -> None:
    cases = [
        ("BasicHttp SOAP 1.1", payroll_app(), BasicHttpRelayBinding(), _SOAP11,
         "text/xml; charset=utf-8"),
        ("WS2007 SOAP 1.2 + WS-Addressing", payroll12_app(), WS2007HttpRelayBinding(), _SOAP12,
         "application/soap+xml; charset=utf-8"),
    ]
    for name, app, binding, body, content_type in cases:
        rounds = sorted(await _measure(app, binding, body, content_type, calls))
        print(f"{name}: min {rounds[0]:.0f} us, median {median(rounds):.0f} us CPU per call"
              f" ({len(rounds)} rounds of {calls} calls)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
