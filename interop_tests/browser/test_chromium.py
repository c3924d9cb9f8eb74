"""A real browser as a sender: headless Chromium calling the relay from another origin.

One browser, one relay and its listeners for the module.  The page is served by
a server of its own (``chromium.page_server``), so every call is cross-origin:

* ``app`` lists the page's origin in ``cors_origins`` and needs a token: the
  relay answers the preflight of a ``fetch`` carrying ``ServiceBusAuthorization``,
  and its own 401 is readable (status, fault or JSON, ``WWW-Authenticate``);
* ``own`` is open and has no ``cors_origins``: the listener's CORS headers are
  the only ones, and they arrive as the listener wrote them;
* ``elsewhere`` lists another origin: the page cannot read the relay's 401;
* ``chat``: WebSockets, closed by the listener or by the page, always cleanly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from bindings.host import RelayServiceHost
from interop_tests.browser.chromium import Page, chromium_driver, page_server, require_chromium
from interop_tests.browser.ws_listener import EchoThenClose
from relay.namespace import EntityConfig
from tests.support.relay import RelayThread, relay_thread

pytestmark = pytest.mark.browser

FETCH = """
const [url, init, done] = arguments;
fetch(url, init)
  .then(async (r) => done({status: r.status, body: await r.text(),
                           headers: Object.fromEntries(r.headers.entries())}))
  .catch((e) => done({error: String(e)}));
"""
WS_SESSIONS = """
const [url, numbers, mode, done] = arguments;
(async () => {
  const results = [];
  for (const n of numbers) {
    results.push(await new Promise((resolve) => {
      const ws = new WebSocket(url);
      let echoed = null;
      ws.onopen = () => ws.send(`${n} ${mode}`);
      ws.onmessage = (e) => {
        echoed = e.data;
        if (mode === "page-closes") ws.close(4100 + n, `page ${n}`);
      };
      ws.onclose = (e) => resolve({n, echoed, wasClean: e.wasClean, code: e.code, reason: e.reason});
    }));
  }
  return results;
})().then(done, (e) => done({error: String(e)}));
"""
#: Consecutive listener-closed sessions; before the closing handshake fix about one
#: in three ended with wasClean = false.
SESSIONS = 30


@dataclass
class Recorder:
    """A WSGI app that answers with CORS headers of its own and records each method."""

    origin: str
    methods: list[str] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.methods.append(environ["REQUEST_METHOD"])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        start_response("200 OK", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Access-Control-Allow-Origin", self.origin),
            ("Access-Control-Expose-Headers", "X-Listener"),
            ("X-Listener", "wsgi"),
        ])
        return [b"listener got: " + body]


@dataclass
class Site:
    relay: RelayThread
    page: Page
    driver: Any
    chat: EchoThenClose
    apps: dict[str, Recorder]

    def fetch(self, path: str, **init: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.driver.execute_async_script(
            FETCH, f"{self.relay.base_url}/{path}", init
        )
        return result

    def websockets(self, numbers: list[int], mode: str) -> list[dict[str, Any]]:
        token = quote(self.relay.token("chat"), safe="")
        url = f"{self.relay.ws_url}/$hc/chat?sb-hc-action=connect&sb-hc-token={token}"
        results: list[dict[str, Any]] = self.driver.execute_async_script(WS_SESSIONS, url, numbers, mode)
        return results


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_chromium()
    with ExitStack() as stack:
        page = stack.enter_context(page_server())
        relay = stack.enter_context(relay_thread(
            EntityConfig("app", cors_origins=(page.origin,)),
            EntityConfig("own", requires_client_authorization=False),
            EntityConfig("elsewhere", cors_origins=("https://app.example",)),
            EntityConfig("chat"),
        ))
        apps = {path: Recorder(page.origin) for path in ("app", "own")}
        for path, app in apps.items():
            stack.enter_context(RelayServiceHost(
                app, f"{relay.base_url}/{path}", connection_string=relay.connection_string
            ))
        chat = EchoThenClose(relay.ws_url, "chat", relay.token("chat"))
        running = asyncio.run_coroutine_threadsafe(chat.run(), relay.loop)
        stack.callback(running.cancel)
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(chat.online.wait(), 10), relay.loop).result(15)
        driver = stack.enter_context(chromium_driver(Path(tmp_path_factory.mktemp("chromium"))))
        driver.get(page.origin + "/")
        yield Site(relay, page, driver, chat, apps)


def test_a_page_sends_with_its_token_and_reads_the_listeners_answer(site: Site) -> None:
    answer = site.fetch("app", method="POST", body="hello", headers={
        "Content-Type": "text/plain", "ServiceBusAuthorization": site.relay.token("app"),
    })

    assert answer.get("error") is None, answer
    assert (answer["status"], answer["body"]) == (200, "listener got: hello")
    assert answer["headers"]["x-listener"] == "wsgi"
    assert "OPTIONS" not in site.apps["app"].methods  # the relay answered the preflight


@pytest.mark.parametrize(("content_type", "expected"), [
    ("text/xml; charset=utf-8", "<soap:Fault>"),
    ("application/json", '"code": "Unauthorized"'),
])
def test_a_page_reads_the_relays_401_and_its_challenge(site: Site, content_type: str, expected: str) -> None:
    answer = site.fetch("app", method="POST", body="<x/>", headers={"Content-Type": content_type})

    assert answer.get("error") is None, answer
    assert answer["status"] == 401
    assert expected in answer["body"] and "token is required" in answer["body"]
    assert answer["headers"]["www-authenticate"] == 'SharedAccessSignature realm="127.0.0.1"'
    assert answer["headers"]["x-relay-tracking-id"] in answer["body"]


def test_the_listeners_own_cors_headers_arrive_unchanged(site: Site) -> None:
    answer = site.fetch("own", method="POST", body="plain", headers={"Content-Type": "text/plain"})
    direct = requests.post(f"{site.relay.base_url}/own", data=b"plain",
                           headers={"Origin": site.page.origin}, timeout=10)

    assert (answer.get("status"), answer.get("body")) == (200, "listener got: plain"), answer
    assert answer["headers"]["x-listener"] == "wsgi"
    cors = {k: v for k, v in direct.headers.items() if k.lower().startswith("access-control-")}
    assert cors == {"Access-Control-Allow-Origin": site.page.origin,
                    "Access-Control-Expose-Headers": "X-Listener"}
    assert "Vary" not in direct.headers


def test_an_origin_not_listed_cannot_read_the_relays_errors(site: Site) -> None:
    answer = site.fetch("elsewhere", method="POST", body="x", headers={"Content-Type": "text/plain"})
    direct = requests.post(f"{site.relay.base_url}/elsewhere", data=b"x",
                           headers={"Origin": site.page.origin}, timeout=10)

    assert answer == {"error": "TypeError: Failed to fetch"}
    assert direct.status_code == 401 and "Access-Control-Allow-Origin" not in direct.headers


def test_websockets_closed_by_the_listener_close_cleanly_with_its_code(site: Site) -> None:
    results = site.websockets(list(range(SESSIONS)), "listener-closes")

    assert [(r["n"], r["echoed"], r["wasClean"], r["code"], r["reason"]) for r in results] == [
        (n, f"{n} listener-closes", True, 4000 + n, f"bye {n}") for n in range(SESSIONS)
    ], json.dumps([r for r in results if not r["wasClean"]])


def test_websockets_closed_by_the_page_close_cleanly_and_reach_the_listener(site: Site) -> None:
    results = site.websockets(list(range(5)), "page-closes")
    closes = asyncio.run_coroutine_threadsafe(
        asyncio.wait_for(site.chat.wait_sender_closes(5), 10), site.relay.loop
    ).result(15)

    assert [(r["wasClean"], r["code"], r["reason"]) for r in results] == [
        (True, 4100 + n, f"page {n}") for n in range(5)
    ]
    assert sorted(closes) == [(4100 + n, f"page {n}") for n in range(5)]
