"""RelayServiceHost end to end: hosted apps called through a real relay on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import requests
from spyne import Application, Integer, ServiceBase
from spyne.protocol.soap import Soap11

from bindings import (
    BasicHttpRelayBinding,
    HostStatus,
    NetOnewayRelayBinding,
    RelayServiceHost,
)
from bindings.exceptions import ListenerRejected
from bindings.handler import RelayedRequest, RelayedResponse
from bindings.oneway import oneway
from bindings.tokens import SecurityToken, TokenProvider
from bindings.zeep_transport import relay_client
from hc.sas import create_token
from relay.namespace import EntityConfig
from samples.payroll.services import payroll_app
from tests.support.clock import T0, ManualClock
from tests.support.relay import (
    TEST_KEY,
    TEST_KEY_NAME,
    RelayHandle,
    Relays,
    RelayThread,
    relay_thread,
)

StartResponse = Callable[..., Any]


def environ_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Echo the body and report the environ keys a relayed app cares about."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    keys = ("wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME",
            "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD")
    seen = json.dumps({key: environ.get(key) for key in keys})
    size = int(environ.get("QUERY_STRING", "").partition("size=")[2] or 0)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("X-Seen", seen)])
    return [body or b"-", b"z" * size]


def provider() -> TokenProvider:
    return TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY)


def host_for(relay: RelayHandle, app: object, entity: str = "echo", **options: Any) -> RelayServiceHost:
    options.setdefault("token_provider", provider())
    return RelayServiceHost(app, f"sb://127.0.0.1:{relay.port}/{entity}", **options)


def send(relay: RelayHandle, path: str, *, body: bytes = b"", method: str = "POST",
         headers: dict[str, str] | None = None) -> requests.Response:
    entity = path.split("?")[0].strip("/").split("/")[0]
    all_headers = {"ServiceBusAuthorization": relay.token(entity), **(headers or {})}
    return requests.request(method, f"{relay.base_url}/{path}", data=body, headers=all_headers,
                            timeout=30)


def test_a_wsgi_app_sees_the_relay_origin(relay: RelayThread) -> None:
    seen_statuses: list[HostStatus] = []
    with host_for(relay, environ_app, on_status=seen_statuses.append) as host:
        assert host.status is HostStatus.ONLINE and host.last_error is None
        assert host.public_address == f"{relay.base_url}/echo"
        response = send(relay, "echo/sub/path?a=1", body=b"<ping/>")
    assert host.status is HostStatus.CLOSED
    assert seen_statuses == [HostStatus.CONNECTING, HostStatus.ONLINE, HostStatus.CLOSING,
                             HostStatus.CLOSED]
    assert response.status_code == 200 and response.content == b"<ping/>"
    seen = json.loads(response.headers["X-Seen"])
    assert seen == {"wsgi.url_scheme": "http", "HTTP_HOST": f"127.0.0.1:{relay.port}",
                    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(relay.port),
                    "SCRIPT_NAME": "/echo", "PATH_INFO": "/sub/path", "QUERY_STRING": "a=1",
                    "REQUEST_METHOD": "POST"}


def test_bodies_over_64_kib_both_ways(relay: RelayThread) -> None:
    with host_for(relay, environ_app):
        big_response = send(relay, "echo?size=300000", body=b"small")
        big_request = send(relay, "echo", body=b"q" * 200_000)
    assert big_response.status_code == 200 and len(big_response.content) == 300_005
    assert big_response.content.endswith(b"z" * 1000)
    assert big_request.status_code == 200 and big_request.content == b"q" * 200_000


def test_two_listeners_share_the_load(relay: RelayThread) -> None:
    def tagged(tag: bytes) -> Callable[..., Iterable[bytes]]:
        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [tag]
        return app

    with host_for(relay, tagged(b"A"), listeners=2) as first, host_for(relay, tagged(b"B")):
        assert first.listener_statuses == (HostStatus.ONLINE, HostStatus.ONLINE)
        answers = {send(relay, "echo", method="GET").content for _ in range(40)}
    assert answers == {b"A", b"B"}


def test_the_relay_answers_502_when_no_listener_is_online() -> None:
    with relay_thread(EntityConfig("static")) as relay:
        with host_for(relay, environ_app, entity="static"):
            assert send(relay, "static", body=b"1").status_code == 200
        gone = send(relay, "static", body=b"2", headers={"Content-Type": "text/xml"})
    assert gone.status_code == 502 and b"No service is hosted" in gone.content


def test_a_wrong_key_fails_open_with_the_relays_reason(relay: RelayThread) -> None:
    host = host_for(relay, environ_app,
                    token_provider=TokenProvider.shared_access_key(TEST_KEY_NAME, "wrong-key"))
    with pytest.raises(ListenerRejected) as caught:
        host.open(timeout=10)
    assert caught.value.status == 401 and host.status is HostStatus.CLOSED
    assert isinstance(host.last_error, ListenerRejected)


def test_a_spyne_service_is_called_with_zeep_through_the_relay(relay: RelayThread) -> None:
    cs = relay.connection_string + ";EntityPath=payroll"
    with RelayServiceHost(payroll_app(), connection_string=cs):
        wsdl = send(relay, "payroll?wsdl", method="GET")
        client = relay_client(f"{relay.base_url}/payroll?wsdl", token_provider=provider())
        salary = client.service.GetSalary(7)
    assert salary == Decimal("5120.50")
    assert f'location="{relay.base_url}/payroll"'.encode() in wsdl.content


def test_one_way_hosts_acknowledge_with_202_before_running(relay: RelayThread) -> None:
    received: list[bytes] = []
    release, done = threading.Event(), threading.Event()

    def slow(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        release.wait(10)
        received.append(environ["wsgi.input"].read())
        done.set()
        start_response("200 OK", [])
        return []

    with host_for(relay, slow, entity="events", binding=NetOnewayRelayBinding()):
        response = send(relay, "events", body=b"<tick/>")
        assert response.status_code == 202 and not done.is_set()
        release.set()
        assert done.wait(10)
    assert received == [b"<tick/>"]


def test_close_lets_an_in_flight_call_finish(relay: RelayThread) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started.set()
        release.wait(10)
        start_response("200 OK", [])
        return [b"finished"]

    host = host_for(relay, slow)
    host.open()
    results: list[requests.Response] = []
    caller = threading.Thread(target=lambda: results.append(send(relay, "echo")))
    caller.start()
    assert started.wait(10)
    closer = threading.Thread(target=host.close)
    closer.start()
    release.set()
    closer.join(20)
    caller.join(20)
    assert results[0].status_code == 200 and results[0].content == b"finished"
    assert host.status is HostStatus.CLOSED


def blocking_oneway_app(started: threading.Event, release: threading.Event,
                        finished: threading.Event) -> Application:
    class Work(ServiceBase):  # type: ignore[misc]
        @oneway(Integer)
        def DoWork(ctx, n):  # type: ignore[no-untyped-def]
            started.set()
            release.wait(20)
            finished.set()

    return Application([Work], tns="urn:work", in_protocol=Soap11(validator="lxml"),
                       out_protocol=Soap11())


def test_close_waits_for_acknowledged_one_way_work(relay: RelayThread) -> None:
    started, release, finished, closed = (threading.Event() for _ in range(4))
    app = blocking_oneway_app(started, release, finished)

    def on_status(status: HostStatus) -> None:
        if status is HostStatus.CLOSED:
            closed.set()

    host = host_for(relay, app, entity="work", binding=NetOnewayRelayBinding(),
                    on_status=on_status)
    host.open()
    envelope = ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
                ' xmlns:w="urn:work"><s:Body><w:DoWork><w:n>1</w:n></w:DoWork></s:Body>'
                "</s:Envelope>")
    response = send(relay, "work", body=envelope.encode(),
                    headers={"Content-Type": "text/xml; charset=utf-8"})
    assert response.status_code == 202 and started.wait(10)
    finished_when_closed: list[bool] = []
    closer = threading.Thread(target=lambda: (host.close(),
                                              finished_when_closed.append(finished.is_set())))
    closer.start()
    assert closed.wait(10)  # the listeners are closed: only the one-way work is left
    closer.join(0.5)
    assert closer.is_alive(), "close() returned while acknowledged one-way work still ran"
    release.set()
    closer.join(20)
    assert finished_when_closed == [True]


def test_calls_run_at_once_up_to_max_concurrent_calls(relay: RelayThread) -> None:
    calls = 10  # more than the event loop's default pool here: min(32, cpus + 4)
    barrier = threading.Barrier(calls, timeout=10)

    def meet(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            start_response("503 Service Unavailable", [])
            return [b"not all calls ran at once"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"met"]

    binding = BasicHttpRelayBinding(max_concurrent_calls=calls)
    with host_for(relay, meet, entity="meet", binding=binding):
        with ThreadPoolExecutor(calls) as pool:
            answers = list(pool.map(lambda _: send(relay, "meet", method="GET"), range(calls)))
    assert [(a.status_code, a.content) for a in answers] == [(200, b"met")] * calls


async def test_the_async_face_in_the_tests_loop(arelay: RelayHandle) -> None:
    async def handler(request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, "OK", (("Content-Type", "text/plain"),),
                               b"async " + await request.read())

    host = host_for(arelay, handler, binding=BasicHttpRelayBinding())
    serving = asyncio.ensure_future(host.serve())
    headers = {"ServiceBusAuthorization": arelay.token("echo")}
    # serve() started the host: entering just waits for ONLINE
    async with host, aiohttp.ClientSession() as session:
        response = await session.post(f"{arelay.base_url}/echo", data=b"hi", headers=headers)
        assert (response.status, await response.read()) == (200, b"async hi")
    await asyncio.wait_for(serving, 10)
    assert host.status is HostStatus.CLOSED


@pytest.fixture
def local_service() -> Iterator[str]:
    """A plain local HTTP service (waitress would do too) for the forwarder."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, environ_app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_the_forwarder_hosts_a_local_service(relay: RelayThread, local_service: str) -> None:
    from bindings.forwarder import Forwarder

    with host_for(relay, Forwarder(local_service + "/legacy"), entity="fwd"):
        response = send(relay, "fwd/x?y=2", body=b"data")
    assert response.status_code == 200 and response.content == b"data"
    seen = json.loads(response.headers["X-Seen"])
    assert (seen["PATH_INFO"], seen["QUERY_STRING"]) == ("/legacy/x", "y=2")


def test_soaprelay_forward_runs_until_sigint(relay: RelayThread, local_service: str) -> None:
    command = [sys.executable, "-m", "soaprelay", "forward", "--connection-string",
               relay.connection_string, "--entity", "legacy", "--to", local_service]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        try:
            lines: queue.Queue[str] = queue.Queue()
            stdout = process.stdout
            assert stdout is not None
            threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
            first = lines.get(timeout=30)
            assert first.strip() == (
                f"soaprelay: forwarding {relay.base_url}/legacy -> {local_service}")
            response = send(relay, "legacy/a", body=b"via cli")
            assert response.status_code == 200 and response.content == b"via cli"
            process.send_signal(signal.SIGINT)
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)


async def test_a_permanent_refusal_ends_serve_and_stays_offline(arelay: RelayHandle) -> None:
    host = host_for(arelay, environ_app,
                    token_provider=TokenProvider.shared_access_key(TEST_KEY_NAME, "wrong-key"))
    with pytest.raises(ListenerRejected, match="401"):
        await asyncio.wait_for(host.serve(), 10)
    assert host.status is HostStatus.OFFLINE and isinstance(host.last_error, ListenerRejected)
    await host.aclose()
    assert host.status is HostStatus.CLOSED


class ShortTokens(TokenProvider):
    """Real SAS tokens that the relay checks :data:`LIFE` seconds before they expire.

    Each token is signed 100 s after the last, on the relay's :class:`ManualClock`,
    which is set :data:`LIFE` seconds before the new token's expiry as it is issued;
    the host is told the same life.  ``renewed`` is set at the third token: two
    renewals, each at 80% of LIFE, take longer than LIFE, so the first has expired.
    """

    LIFE = 1.0

    def __init__(self, relay_clock: ManualClock) -> None:
        self.relay_clock, self.issued, self.renewed = relay_clock, 0, asyncio.Event()

    def get_token(self, audience: str) -> SecurityToken:
        self.issued += 1
        if self.issued >= 3:
            self.renewed.set()
        signed_at = T0 + 100 * self.issued
        text = create_token(audience, TEST_KEY_NAME, TEST_KEY, ttl=100, now=signed_at)
        self.relay_clock.now = signed_at + 100 - self.LIFE
        return SecurityToken(text, time.time() + self.LIFE)


async def test_renewed_tokens_keep_the_listener_online(relays: Relays) -> None:
    clock = ManualClock()
    # No grace: the relay closes a listener (1008) the moment its token expires.
    relay = await relays.in_loop(token_grace=0.0, clock=clock)
    tokens, statuses = ShortTokens(clock), []
    host = host_for(relay, environ_app, token_provider=tokens, on_status=statuses.append)
    async with host, aiohttp.ClientSession() as session:
        await asyncio.wait_for(tokens.renewed.wait(), 10)
        headers = {"ServiceBusAuthorization": relay.token("echo")}
        response = await session.post(f"{relay.base_url}/echo", data=b"still", headers=headers)
        assert (response.status, await response.read()) == (200, b"still")
    assert statuses[:2] == [HostStatus.CONNECTING, HostStatus.ONLINE]
    assert HostStatus.CONNECTING not in statuses[2:]  # never dropped for an expired token


def test_one_spyne_application_behind_two_hosts_has_two_whole_wsdls(relay: RelayThread) -> None:
    app = payroll_app()  # one Application object: Spyne keeps its WSDL builder on it
    cs = relay.connection_string
    with RelayServiceHost(app, connection_string=cs + ";EntityPath=first"), \
            RelayServiceHost(app, connection_string=cs + ";EntityPath=second"):
        salaries = []
        for entity in ("first", "second"):
            wsdl = send(relay, f"{entity}?wsdl", method="GET")
            assert wsdl.status_code == 200
            assert b"<wsdl:service" in wsdl.content and b"<wsdl:portType" in wsdl.content
            assert f'location="{relay.base_url}/{entity}"'.encode() in wsdl.content
            client = relay_client(f"{relay.base_url}/{entity}?wsdl", token_provider=provider())
            salaries.append(client.service.GetSalary(7))
    assert salaries == [Decimal("5120.50"), Decimal("5120.50")]


def test_a_listener_advertising_a_bad_size_is_refused_with_400(relay: RelayThread) -> None:
    url = (f"{relay.ws_url}/$hc/sizes?sb-hc-action=listen&sb-hc-id=1"
           "&sb-relay-max-message-size=12abc")
    response = requests.get(url.replace("ws", "http", 1), timeout=10, headers={
        "ServiceBusAuthorization": relay.token("sizes"), "Connection": "Upgrade",
        "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status_code == 400 and b"sb-relay-max-message-size" in response.content
