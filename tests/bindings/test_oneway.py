"""The one-way decision (OnewayRule), asked by every hosting path, and AfterResponse."""

from __future__ import annotations

import pytest

from bindings.acknowledge import Acknowledging
from bindings.app_handler import make_handler
from bindings.binding import (
    BasicHttpRelayBinding,
    NetEventRelayBinding,
    NetOnewayRelayBinding,
    RelayBinding,
    WS2007HttpRelayBinding,
)
from bindings.handler import RelayedRequest, RelayedResponse, iter_bytes, settle
from bindings.oneway import AfterResponse, Delivery, OnewayRule
from bindings.spyne_host import SpyneRelayApp
from bindings.wsgi_host import WsgiHandler
from samples.payroll.services import TNS, payroll_app, timesheet_app

SUBMIT = f"{{{TNS}}}SubmitTimesheet"
GET_SALARY = f"{{{TNS}}}GetSalary"


@pytest.mark.parametrize(
    ("binding", "every"),
    [
        (BasicHttpRelayBinding(), False),
        (WS2007HttpRelayBinding(), False),
        (NetOnewayRelayBinding(), True),
        (NetEventRelayBinding(), True),
    ],
)
def test_a_binding_decides_for_handlers_that_are_not_spyne(
    binding: RelayBinding, every: bool
) -> None:
    rule = OnewayRule.for_binding(binding)
    expected = Delivery.ACKNOWLEDGE if every else Delivery.REPLY
    assert rule.delivery("POST") is expected
    assert rule.delivery("put") is expected  # methods compare case-insensitively
    assert rule.delivery("GET") is rule.delivery("head") is Delivery.REPLY


def test_spyne_on_a_request_response_binding_acknowledges_only_oneway_operations() -> None:
    rule = OnewayRule.for_spyne(timesheet_app(), BasicHttpRelayBinding())
    assert rule == OnewayRule(request_tags=frozenset({SUBMIT}))
    assert rule.delivery("POST", SUBMIT) is Delivery.ACKNOWLEDGE
    assert rule.delivery("POST", "{urn:other}SubmitTimesheet") is Delivery.REPLY
    assert rule.delivery("POST", None) is Delivery.REPLY  # an empty Body
    assert rule.delivery("GET", SUBMIT) is Delivery.REPLY
    assert OnewayRule.for_spyne(payroll_app(), BasicHttpRelayBinding()).delivery(
        "POST", GET_SALARY
    ) is Delivery.REPLY


def test_spyne_on_a_oneway_binding_acknowledges_its_operations_but_not_unknown_ones() -> None:
    rule = OnewayRule.for_spyne(payroll_app(), NetOnewayRelayBinding())
    assert rule.delivery("POST", GET_SALARY) is Delivery.ACKNOWLEDGE
    assert rule.delivery("POST", f"{{{TNS}}}NoSuchOperation") is Delivery.REPLY  # Spyne's fault


def test_hosting_asks_the_rule_it_was_given() -> None:
    spyne = make_handler(timesheet_app(), NetEventRelayBinding())
    assert isinstance(spyne, WsgiHandler) and isinstance(spyne.app, SpyneRelayApp)
    assert spyne.app.oneway.delivery("POST", SUBMIT) is Delivery.ACKNOWLEDGE
    spyne.app.close()

    async def handler(request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200)

    wrapped = make_handler(handler, NetOnewayRelayBinding())
    assert isinstance(wrapped, Acknowledging) and wrapped.rule.every_message
    assert make_handler(handler, BasicHttpRelayBinding()) is handler


async def test_acknowledging_answers_what_its_rule_calls_a_reply_itself() -> None:
    ran: list[str] = []

    async def handler(request: RelayedRequest) -> RelayedResponse:
        ran.append(request.method)
        return RelayedResponse(200, "OK", body=b"answer")

    only_puts = Acknowledging(handler, OnewayRule(every_message=False))
    post = RelayedRequest("POST", "/e", (), iter_bytes(b"x"), "http://relay:1", "e")
    response = await only_puts(post)
    assert (response.status, response.body, ran) == (200, b"answer", ["POST"])
    everything = Acknowledging(handler)
    post = RelayedRequest("POST", "/e", (), iter_bytes(b"x"), "http://relay:1", "e")
    response = await everything(post)
    assert response.status == 202 and ran == ["POST"]
    await settle(response, sent=True)
    await everything.aclose()
    assert ran == ["POST", "POST"]


def test_after_response_runs_its_job_once_and_never_after_discard() -> None:
    ran: list[int] = []
    body = AfterResponse(lambda: ran.append(1))
    assert list(body) == []
    body.close()
    body.close()
    assert ran == [1]
    dropped = AfterResponse(lambda: ran.append(2))
    dropped.discard()
    dropped.close()
    assert ran == [1]
