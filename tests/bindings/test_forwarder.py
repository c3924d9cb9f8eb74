"""Forwarder: relayed requests replayed against a local aiohttp service on port 0."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from lxml import etree

from bindings.exceptions import ConfigurationError
from bindings.forwarder import Forwarder
from bindings.handler import RelayedRequest, RelayedResponse, iter_bytes
from soap import ns

PUBLIC = "https://relay.example.com:9351"

WSDL = """<?xml version="1.0"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t">
  <wsdl:types><xsd:schema><xsd:import schemaLocation="{base}/legacy/Service.asmx?xsd=1"/>
  </xsd:schema></wsdl:types>
  <wsdl:service name="S"><wsdl:port name="P" binding="B">
    <soap:address location="{base}/legacy/Service.asmx"/>
  </wsdl:port></wsdl:service>
</wsdl:definitions>"""


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    seen = {"path": request.path_qs, "method": request.method, "headers": dict(request.headers),
            "chunked": request.headers.get("Transfer-Encoding") == "chunked"}
    return web.Response(body=body, status=200, headers={"X-Seen": json.dumps(seen),
                                                        "Content-Type": "application/octet-stream"})


async def big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    for i in range(10):
        await response.write(bytes([i]) * 30_000)
    await response.write_eof()
    return response


async def teapot(request: web.Request) -> web.Response:
    return web.Response(status=418, reason="Short And Stout", text="tea",
                        headers={"X-Custom": "yes", "Keep-Alive": "timeout=5"})


async def wsdl(request: web.Request) -> web.Response:
    base = f"http://{request.host}"
    return web.Response(text=WSDL.format(base=base), content_type="text/xml")


@pytest.fixture
async def service() -> AsyncIterator[str]:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/legacy/echo{tail:.*}", echo)
    app.router.add_get("/legacy/big", big)
    app.router.add_get("/legacy/teapot", teapot)
    app.router.add_get("/legacy/Service.asmx", wsdl)
    app.router.add_get("/legacy/contract", wsdl)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def relayed(target: str, *, method: str = "GET", body: bytes = b"",
            headers: tuple[tuple[str, str], ...] = ()) -> RelayedRequest:
    return RelayedRequest(method, target, headers, iter_bytes(body), PUBLIC, "payroll",
                          remote=("10.9.8.7", 1234))


async def read_all(response: RelayedResponse) -> bytes:
    if isinstance(response.body, bytes):
        return response.body
    return b"".join([chunk async for chunk in response.body])


async def test_maps_the_path_and_keeps_method_body_and_headers(service: str) -> None:
    forwarder = Forwarder(service + "/legacy")
    try:
        response = await forwarder(relayed(
            "/payroll/echo/a?x=1", method="POST", body=b"<in/>",
            headers=(("Content-Type", "text/xml"), ("SOAPAction", "urn:a"),
                     ("Connection", "X-Hop"), ("X-Hop", "secret"), ("Via", "1.1 relay")),
        ))
        assert response.status == 200 and await read_all(response) == b"<in/>"
        seen = json.loads(dict(response.headers)["X-Seen"])
        assert (seen["path"], seen["method"], seen["chunked"]) == ("/legacy/echo/a?x=1", "POST", False)
        headers = {k.lower(): v for k, v in seen["headers"].items()}
        assert headers["soapaction"] == "urn:a" and headers["content-type"] == "text/xml"
        assert "x-hop" not in headers and headers["via"] == "1.1 relay"
        assert headers["x-forwarded-host"] == "relay.example.com:9351"
        assert headers["x-forwarded-proto"] == "https" and headers["x-forwarded-for"] == "10.9.8.7"
        assert headers["host"].startswith("127.0.0.1:")
    finally:
        await forwarder.aclose()


async def test_status_reason_and_headers_come_back_without_hop_by_hop(service: str) -> None:
    forwarder = Forwarder(service + "/legacy/")
    try:
        response = await forwarder(relayed("/payroll/teapot"))
        assert (response.status, response.reason) == (418, "Short And Stout")
        names = {k.lower() for k, _ in response.headers}
        assert "x-custom" in names and "keep-alive" not in names and "content-length" not in names
        assert await read_all(response) == b"tea"
    finally:
        await forwarder.aclose()


async def test_large_bodies_stream_both_ways(service: str) -> None:
    forwarder = Forwarder(service + "/legacy")
    try:
        response = await forwarder(relayed("/payroll/big"))
        assert not isinstance(response.body, bytes)  # streamed, not buffered
        data = await read_all(response)
        assert len(data) == 300_000 and data[-1] == 9
        payload = b"x" * (3 * 1024 * 1024)
        echoed = await forwarder(relayed("/payroll/echo", method="POST", body=payload))
        assert await read_all(echoed) == payload
        assert json.loads(dict(echoed.headers)["X-Seen"])["chunked"] is True
    finally:
        await forwarder.aclose()


@pytest.mark.parametrize(
    "target, xsd",
    [
        ("/payroll/Service.asmx?wsdl", "/payroll/Service.asmx?xsd=1"),
        ("/payroll/contract", "/payroll/Service.asmx?xsd=1"),  # found by its wsdl:definitions root
    ],
)
async def test_wsdl_addresses_are_rewritten_to_the_relay(service: str, target: str, xsd: str) -> None:
    forwarder = Forwarder(service + "/legacy")
    try:
        response = await forwarder(relayed(target, headers=(("Accept-Encoding", "gzip"),)))
        assert response.status == 200 and isinstance(response.body, bytes)
        root = etree.fromstring(response.body)
        address = root.find(f".//{{{ns.WSDL_SOAP11}}}address")
        assert address is not None and address.get("location") == f"{PUBLIC}/payroll/Service.asmx"
        imported = root.find(f".//{{{ns.XSD}}}import")
        assert imported is not None and imported.get("schemaLocation") == PUBLIC + xsd
        assert b"127.0.0.1" not in response.body
    finally:
        await forwarder.aclose()


async def test_an_unreachable_target_is_a_502_naming_it() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = f"http://127.0.0.1:{port}"
    forwarder = Forwarder(target, connect_timeout=5)
    try:
        response = await forwarder(relayed("/payroll/x"))
        assert response.status == 502 and target.encode() in await read_all(response)
        soap = await forwarder(relayed("/payroll", method="POST", body=b"<x/>",
                                       headers=(("Content-Type", "text/xml"),)))
        assert soap.status == 502 and b"Fault" in await read_all(soap)
    finally:
        await forwarder.aclose()


@pytest.mark.parametrize("target", ["127.0.0.1:8080", "ftp://h/x", "http://h/x?y=1"])
def test_bad_targets_are_configuration_errors(target: str) -> None:
    with pytest.raises(ConfigurationError):
        Forwarder(target)
