"""WsgiHandler: the PEP 3333 environ and running an app in a worker thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from lxml import etree

from bindings.handler import RelayedRequest, RelayedResponse, iter_bytes, settle
from bindings.wsgi_host import ENVELOPE_KEY, WsgiHandler, XmlCheck, build_environ
from soap import ns
from soap.envelope import Envelope, SoapVersion

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network


def relayed(
    target: str = "/payroll/v2/run?x=1&y=%20z",
    *,
    method: str = "POST",
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/xml; charset=utf-8"),),
    body: bytes = b"<hello/>",
    public_base: str = "http://relay.example.com:9350",
    entity: str = "payroll",
) -> RelayedRequest:
    return RelayedRequest(method, target, headers, iter_bytes(body), public_base, entity,
                          remote=("10.0.0.7", 5555))


def test_environ_shows_the_relay_origin_and_splits_the_entity() -> None:
    request = relayed(headers=(
        ("Content-Type", "text/xml"),
        ("SOAPAction", '"urn:Run"'),
        ("Accept", "a"),
        ("accept", "b"),
        ("Via", "1.1 relay"),
    ))
    env = build_environ(request, b"<hello/>")
    assert env["wsgi.url_scheme"] == "http"
    assert (env["SERVER_NAME"], env["SERVER_PORT"], env["HTTP_HOST"]) == (
        "relay.example.com", "9350", "relay.example.com:9350")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == (
        "/payroll", "/v2/run", "x=1&y=%20z")
    assert (env["REQUEST_METHOD"], env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == (
        "POST", "text/xml", "8")
    assert env["HTTP_SOAPACTION"] == '"urn:Run"' and env["HTTP_ACCEPT"] == "a, b"
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("10.0.0.7", "5555")
    assert env["wsgi.input"].read() == b"<hello/>" and env["wsgi.version"] == (1, 0)


def test_environ_for_https_default_port_and_the_entity_root() -> None:
    env = build_environ(relayed("/Payroll?wsdl", public_base="https://relay.example.com"), b"")
    assert (env["wsgi.url_scheme"], env["SERVER_PORT"], env["HTTP_HOST"]) == (
        "https", "443", "relay.example.com")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == ("/Payroll", "", "wsdl")


def test_environ_paths_are_decoded_latin1_and_prefixes_match_whole_segments() -> None:
    env = build_environ(relayed("/payroll/caf%C3%A9"), b"")
    assert env["PATH_INFO"] == "/caf\xc3\xa9"  # PEP 3333: bytes as latin-1
    other = build_environ(relayed("/payrollX/a"), b"")
    assert (other["SCRIPT_NAME"], other["PATH_INFO"]) == ("", "/payrollX/a")


def test_headers_with_underscores_cannot_spoof_others() -> None:
    env = build_environ(relayed(headers=(("X_Forwarded_For", "1.2.3.4"), ("Host", "10.0.0.5"))), b"")
    assert "HTTP_X_FORWARDED_FOR" not in env
    assert env["HTTP_HOST"] == "relay.example.com:9350"  # never the private host


class Recorder:
    """A WSGI app that records its environ and the thread it ran in."""

    def __init__(self) -> None:
        self.environ: dict[str, Any] = {}
        self.thread: threading.Thread | None = None
        self.closed = False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.environ, self.thread = environ, threading.current_thread()
        body = environ["wsgi.input"].read()
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Len", str(len(body)))])
        return self._chunks(body)

    def _chunks(self, body: bytes) -> Iterator[bytes]:
        try:
            yield b"got "
            yield body
        finally:
            self.closed = True


async def test_handler_runs_the_app_in_a_worker_thread() -> None:
    app = Recorder()
    response = await WsgiHandler(app)(relayed())
    assert (response.status, response.reason) == (201, "Created")
    assert ("X-Len", "8") in response.headers
    assert response.body == b"got <hello/>"
    assert app.thread is not threading.current_thread() and app.closed
    assert app.environ["SCRIPT_NAME"] == "/payroll"


class Result(list[bytes]):
    """A WSGI result recording ``discard()`` and ``close()`` calls and their threads."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__(chunks)
        self.calls: list[tuple[str, threading.Thread]] = []

    def discard(self) -> None:
        self.calls.append(("discard", threading.current_thread()))

    def close(self) -> None:
        self.calls.append(("close", threading.current_thread()))


@pytest.mark.parametrize("sent, calls", [(True, ["close"]), (False, ["discard", "close"])])
async def test_the_write_callable_and_close_once_the_response_was_sent(
    sent: bool, calls: list[str]
) -> None:
    result = Result([b"", b"body"])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("200 OK", [])
        write(b"legacy ")
        return result

    handler = WsgiHandler(app)
    response = await handler(relayed())
    assert response.body == b"legacy body"
    assert result.calls == []  # PEP 3333 close() waits until the response went out
    await settle(response, sent=sent)
    assert [name for name, _ in result.calls] == calls
    assert all(thread is not threading.current_thread() for _, thread in result.calls)
    await handler.aclose()


async def test_aclose_closes_the_app_and_the_handlers_own_pool() -> None:
    class ClosableApp(Recorder):
        app_closed: threading.Thread | None = None

        def close(self) -> None:
            self.app_closed = threading.current_thread()

    app = ClosableApp()
    handler = WsgiHandler(app, max_workers=3)
    await handler(relayed())
    assert app.thread is not None and app.thread.name.startswith("relay-wsgi")
    await handler.aclose()
    assert app.app_closed is not threading.current_thread()
    with pytest.raises(RuntimeError):  # the pool is shut down
        handler.executor.submit(print)


def boom(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    raise ValueError("secret internal detail /srv/app.py line 7")


@pytest.mark.parametrize(
    "content_type, envelope_ns, code",
    [
        ("text/xml; charset=utf-8", ns.SOAP11_ENV, "Server"),
        ('application/soap+xml; charset=utf-8; action="urn:x"', ns.SOAP12_ENV, "Receiver"),
    ],
)
async def test_an_exception_is_a_soap_fault_without_the_traceback(
    content_type: str, envelope_ns: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = await WsgiHandler(boom)(relayed(headers=(("Content-Type", content_type),)))
    assert response.status == 500
    assert isinstance(response.body, bytes)
    assert b"secret internal detail" not in response.body and b"Traceback" not in response.body
    root = etree.fromstring(response.body)
    assert root.tag == f"{{{envelope_ns}}}Envelope"
    assert code in etree.tostring(root).decode()
    assert dict(response.headers)["Content-Type"].startswith(content_type.split(";")[0])
    assert "secret internal detail" in caplog.text  # logged server-side


async def test_an_exception_on_a_plain_request_is_plain_text() -> None:
    response = await WsgiHandler(boom)(relayed(headers=(("Content-Type", "application/json"),)))
    assert response.status == 500 and dict(response.headers)["Content-Type"].startswith("text/plain")
    assert isinstance(response.body, bytes) and b"secret" not in response.body


async def test_an_exception_while_iterating_is_a_fault_and_close_still_runs() -> None:
    app = Recorder()

    def failing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = app(environ, start_response)

        def chunks() -> Iterator[bytes]:
            yield from result  # type: ignore[misc]
            raise OSError("disk gone")

        return chunks()

    response = await WsgiHandler(failing)(relayed())
    assert response.status == 500 and app.closed


async def test_a_body_over_max_body_is_413() -> None:
    response = await WsgiHandler(Recorder(), max_body=4)(relayed(body=b"12345"))
    assert response.status == 413
    ok = await WsgiHandler(Recorder(), max_body=8)(relayed(body=b"12345678"))
    assert ok.status == 201


async def chunks_counted(parts: list[bytes], served: list[int]) -> Any:
    for part in parts:
        served.append(len(part))
        yield part


async def test_prepare_stops_reading_at_the_first_byte_over_the_limit() -> None:
    served: list[int] = []
    request = relayed(body=b"")
    request.body = chunks_counted([b"<a>", b"x" * 60, b"x" * 60, b"x" * 60, b"</a>"], served)
    response = await WsgiHandler(Recorder(), max_body=100).prepare(request)
    assert isinstance(response, RelayedResponse) and response.status == 413
    assert served == [3, 60, 60]  # the third chunk went over: no more was read
    assert b"(100 bytes) was exceeded (MaxReceivedMessageSize)" in bytes(response.body)
    assert b"<faultcode>soap:Client</faultcode>" in bytes(response.body)


@pytest.mark.parametrize(("content_type", "status", "envelope_ns"), [
    ("text/xml", 500, ns.SOAP11_ENV), ("application/soap+xml", 400, ns.SOAP12_ENV),
])
async def test_a_quota_excess_is_a_client_fault_of_the_requests_version(
    content_type: str, status: int, envelope_ns: str
) -> None:
    deep = b"<a>" * 40 + b"</a>" * 40
    handler = WsgiHandler(Recorder())
    response = await handler(relayed(headers=(("Content-Type", content_type),), body=deep))
    assert response.status == status
    root = etree.fromstring(bytes(response.body))
    assert root.tag == f"{{{envelope_ns}}}Envelope"
    assert "The maximum depth (32) was exceeded while reading XML (reader quota MaxDepth)" in (
        "".join(root.itertext()))


async def test_bodies_that_are_not_xml_are_held_to_the_size_only() -> None:
    deep = b"<a>" * 40 + b"</a>" * 40
    app = Recorder()
    plain = await WsgiHandler(app)(relayed(headers=(("Content-Type", "text/plain"),), body=deep))
    assert plain.status == 201  # the Recorder's answer: the app saw it
    always = WsgiHandler(app, xml_check=XmlCheck.ALWAYS, soap_version=SoapVersion.SOAP12)
    refused = await always(relayed(headers=(("Content-Type", "text/plain"),), body=deep))
    assert refused.status == 400 and b"MaxDepth" in bytes(refused.body)


async def test_the_checked_envelope_is_handed_to_the_app() -> None:
    seen: list[object] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(environ.get(ENVELOPE_KEY))
        start_response("200 OK", [])
        return []

    body = b'<s:Envelope xmlns:s="%s"><s:Body><x/></s:Body></s:Envelope>' % ns.SOAP11_ENV.encode()
    await WsgiHandler(app)(relayed(body=body))
    (envelope,) = seen
    assert isinstance(envelope, Envelope) and envelope.body_payload.tag == "x"
