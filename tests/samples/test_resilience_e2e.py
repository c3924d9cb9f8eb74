"""What a user sees when things go wrong: restarts, crashes, bad XML, bad tokens."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import zeep

from bindings import (
    BasicHttpRelayBinding,
    HostStatus,
    RelayServiceHost,
    TokenProvider,
    relay_client,
)
from hc.connection_string import ConnectionString
from hc.sas import create_token
from relay.namespace import EntityConfig
from samples.payroll import services
from samples.payroll.client import contract_client
from tests.support.relay import Relays, RelayThread

ROOT = Path(__file__).resolve().parents[2]
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&lol2;</soap:Body></soap:Envelope>"""


def test_listeners_come_back_by_themselves_after_a_relay_restart(relays: Relays) -> None:
    first = relays.in_thread()
    port = first.port
    cs = ConnectionString.parse(first.connection_string).with_entity("payroll")
    back_online = threading.Event()
    seen: list[HostStatus] = []

    def on_status(status: HostStatus) -> None:
        seen.append(status)
        if status is HostStatus.ONLINE and HostStatus.CONNECTING in seen:
            back_online.set()

    with RelayServiceHost(services.payroll_app(), connection_string=cs, on_status=on_status):
        client = relay_client(f"{cs.http_base}/payroll?wsdl", connection_string=cs)
        assert client.service.GetSalary(7) is not None
        seen.clear()
        back_online.clear()
        relays.stop(first)
        relays.in_thread(port=port)
        assert back_online.wait(30), f"host never came back online: {seen}"
        assert client.service.GetSalary(7) is not None


def test_killed_listener_gives_the_client_a_clear_fault_within_2s(relay: RelayThread, tmp_path: Path) -> None:
    cs = ConnectionString.parse(relay.connection_string).with_entity("stuck")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.samples.stuck_listener", str(cs)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        client = contract_client(services.payroll_app, BasicHttpRelayBinding(), cs, tmp_path)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            call = pool.submit(client.service.GetSalary, 7)
            assert proc.stdout.readline().strip() == "GOT"
            proc.kill()
            killed = time.monotonic()
            with pytest.raises(zeep.exceptions.Fault) as fault:
                call.result(timeout=10)
            assert time.monotonic() - killed < 2.0
        assert "disconnected" in fault.value.message and "TrackingId:" in fault.value.message
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_no_listener_on_a_configured_entity_is_a_fault_at_once(
    relays: Relays, tmp_path: Path
) -> None:
    relay = relays.in_thread(EntityConfig("payroll"))
    cs = ConnectionString.parse(relay.connection_string).with_entity("payroll")
    client = contract_client(services.payroll_app, BasicHttpRelayBinding(), cs, tmp_path)
    began = time.monotonic()
    with pytest.raises(zeep.exceptions.Fault) as fault:
        client.service.GetSalary(7)
    elapsed = time.monotonic() - began
    assert "No service is hosted at the specified address." in fault.value.message
    assert "TrackingId:" in fault.value.message
    assert elapsed < 1.0, f"the fault took {elapsed:.2f} s"


def test_bad_xml_gets_a_fault_and_the_service_keeps_serving(relay: RelayThread) -> None:
    cs = ConnectionString.parse(relay.connection_string).with_entity("payroll")
    headers = {"ServiceBusAuthorization": relay.token("payroll"), "Content-Type": "text/xml; charset=utf-8"}
    with RelayServiceHost(services.payroll_app(), connection_string=cs):
        for body in (BILLION_LAUGHS, b"<soap:Envelope><unclosed>", b"not xml at all"):
            resp = requests.post(f"{relay.base_url}/payroll", data=body, headers=headers, timeout=10)
            assert resp.status_code in (400, 500)
            assert b"Fault" in resp.content and b"lollol" not in resp.content
        client = relay_client(f"{cs.http_base}/payroll?wsdl", connection_string=cs)
        assert client.service.GetSalary(7) is not None


def test_wrong_or_expired_tokens_are_clear_errors(relay: RelayThread, tmp_path: Path) -> None:
    cs = ConnectionString.parse(relay.connection_string).with_entity("payroll")
    with RelayServiceHost(services.payroll_app(), connection_string=cs):
        contract_client(services.payroll_app, BasicHttpRelayBinding(), cs, tmp_path)
        wsdl = str(tmp_path / "payroll.wsdl")
        wrong = TokenProvider.shared_access_key(cs.key_name or "", "not-the-key-not-the-key")
        expired = TokenProvider.shared_access_signature(
            create_token(f"{cs.http_base}/payroll", cs.key_name or "", cs.key or "", ttl=-60)
        )
        for provider, words in ((wrong, "signature"), (expired, "expired")):
            client = relay_client(wsdl, connection_string=cs, token_provider=provider)
            with pytest.raises(zeep.exceptions.Fault) as fault:
                client.service.GetSalary(7)
            assert words in fault.value.message and "TrackingId:" in fault.value.message
