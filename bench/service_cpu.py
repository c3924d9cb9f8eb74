"""Service-side CPU per SOAP call, in-process and in one thread: no sockets, no pool.

``python -m bench.service_cpu [N]`` runs the payroll service's handler (as
:func:`bindings.app_handler.make_handler` builds it for RelayServiceHost) on a
zeep-like ``GetSalary`` envelope: the body read under the reader quotas
(``WsgiHandler.prepare``), then the hosted WSGI app (the Spyne pipeline),
reply bytes included.  Cases: BasicHttp (SOAP 1.1), WS2007 (SOAP 1.2 with
WS-Addressing) and MESSAGE security (a signed request, a signed reply; the
requests are signed beforehand with the test PKI, so only the service's side
is timed).

Per case it prints the Python function calls per request (cProfile: does not
depend on the machine's load) and the CPU time per request, the minimum of
seven rounds of N (the machine may be shared; the minimum is what to compare).
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from lxml import etree

from bindings.app_handler import make_handler
from bindings.binding import (
    BasicHttpRelayBinding,
    EndToEndSecurityMode,
    RelayBinding,
    WS2007HttpRelayBinding,
)
from bindings.handler import RelayedRequest, iter_bytes
from bindings.wsgi_host import ENVELOPE_KEY, ReadRequest, WsgiHandler, build_environ
from samples.payroll.services import TNS, payroll12_app, payroll_app, signed_payroll_app

_ROUNDS = 7
_S11 = "http://schemas.xmlsoap.org/soap/envelope/"
_S12 = "http://www.w3.org/2003/05/soap-envelope"
_GET_SALARY = f'<ns0:GetSalary xmlns:ns0="{TNS}"><ns0:employee_id>7</ns0:employee_id></ns0:GetSalary>'
_SOAP11 = (
    f'<?xml version="1.0" encoding="utf-8"?><soap-env:Envelope xmlns:soap-env="{_S11}">'
    f"<soap-env:Body>{_GET_SALARY}</soap-env:Body></soap-env:Envelope>"
).encode()
_SOAP12 = (
    f'<?xml version="1.0" encoding="utf-8"?><soap-env:Envelope xmlns:soap-env="{_S12}">'
    '<soap-env:Header xmlns:wsa="http://www.w3.org/2005/08/addressing">'
    f"<wsa:Action>{TNS}/GetSalary</wsa:Action>"
    "<wsa:MessageID>urn:uuid:0b6f2f5e-6c9a-4d0e-9a57-3c1f3e1c2b11</wsa:MessageID>"
    "<wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address>"
    "</wsa:ReplyTo><wsa:To>http://127.0.0.1:9350/payroll</wsa:To></soap-env:Header>"
    f"<soap-env:Body>{_GET_SALARY}</soap-env:Body></soap-env:Envelope>"
).encode()
_CT11, _CT12 = "text/xml; charset=utf-8", "application/soap+xml; charset=utf-8"


def _request(body: bytes, content_type: str) -> RelayedRequest:
    return RelayedRequest(
        "POST", "/payroll", (("Content-Type", content_type),), iter_bytes(body),
        "http://127.0.0.1:9350", "payroll", ("127.0.0.1", 5000),
    )


async def _one(handler: WsgiHandler, body: bytes, content_type: str) -> None:
    """One request as the handler serves it, the app called in this thread."""
    prepared = await handler.prepare(_request(body, content_type))
    assert isinstance(prepared, ReadRequest), prepared
    environ = build_environ(prepared, await prepared.read())
    if prepared.envelope is not None:
        environ[ENVELOPE_KEY] = prepared.envelope
    status: list[str] = []
    reply = b"".join(handler.app(environ, lambda s, h, *_: status.append(s)))
    assert status[0].startswith("200") and reply, (status, reply)


def _signed_requests() -> Iterator[bytes]:
    """GetSalary requests signed by the test PKI's client, a fresh signature each."""
    from tests.bindings.test_wssecurity import client_settings

    hook = client_settings().client_hook(EndToEndSecurityMode.MESSAGE)
    assert hook is not None
    while True:
        root = etree.fromstring(_SOAP11)
        hook.egress(root, {})
        yield bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


async def _measure(name: str, app: object, binding: RelayBinding, bodies: Callable[[], bytes],
                   content_type: str, calls: int, security: Any = None) -> None:
    handler = make_handler(app, binding, security)
    assert isinstance(handler, WsgiHandler)
    work = [bodies() for _ in range(50 + _ROUNDS * calls + 100)]  # made before the clock runs
    for body in work[:50]:  # warm up: Spyne's caches
        await _one(handler, body, content_type)
    best, at = float("inf"), 50
    for _ in range(_ROUNDS):
        start = time.process_time()
        for body in work[at : at + calls]:
            await _one(handler, body, content_type)
        best, at = min(best, (time.process_time() - start) / calls * 1e6), at + calls
    profile = cProfile.Profile()
    profile.enable()
    for body in work[at : at + 100]:
        await _one(handler, body, content_type)
    profile.disable()
    per_request = pstats.Stats(profile).total_calls / 100  # type: ignore[attr-defined]
    print(f"{name}: {per_request:.0f} Python calls per request; min {best:.0f} us CPU per"
          f" request ({_ROUNDS} rounds of {calls})")
    await handler.aclose()


async def main(calls: int) -> None:
    await _measure("BasicHttp SOAP 1.1", payroll_app(), BasicHttpRelayBinding(),
                   lambda: _SOAP11, _CT11, calls)
    await _measure("WS2007 SOAP 1.2 + WS-Addressing", payroll12_app(), WS2007HttpRelayBinding(),
                   lambda: _SOAP12, _CT12, calls)
    from tests.bindings.test_wssecurity import service_settings

    signed = _signed_requests()
    await _measure("MESSAGE security, signed both ways", signed_payroll_app(),
                   BasicHttpRelayBinding(security=EndToEndSecurityMode.MESSAGE),
                   lambda: next(signed), _CT11, max(10, calls // 5), service_settings())


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
