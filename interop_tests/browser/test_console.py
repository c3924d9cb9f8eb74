"""The console in a real browser: headless Chromium (Debian's) driven as a person would.

One relay (in a thread), the desk service (``tests/support/desk.py``, Spyne behind
our bindings) and zeep as the SOAP client.  The person signs in with a connection
string, watches the desk's listener come and go, turns body capture on, sees a
zeep call and a zeep fault arrive in the inspector, opens the call, replays it,
and invokes Echo from the test client.  A fault string carrying HTML must show
as text: no element is made of it and no script runs (an XSS attempt that fails).

``SOAPRELAY_CONSOLE_SCREENSHOT=docs/console.png`` saves the screenshot the README shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from zeep.exceptions import Fault

from bindings.tokens import TokenProvider
from bindings.zeep_transport import relay_client
from interop_tests.browser.chromium import chromium_driver
from tests.support.desk import desk_host
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread, relay_thread

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
WAIT = 30.0


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayThread]:
    with relay_thread() as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_driver(tmp_path_factory.mktemp("chromium")) as driver:
        driver.set_window_size(1400, 1000)
        yield driver


def wait_for(driver: Any, check: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(check, message=what)


def text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))


def click(driver: Any, css: str) -> None:
    """Click the first element ``css`` finds; again if the live table was redrawn under it."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked(d: Any) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
        except StaleElementReferenceException:
            return False
        return True

    wait_for(driver, clicked, f"a click on {css}")


def sign_in(driver: Any, relay: RelayThread) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{relay.base_url}/$console/")
    box = driver.find_element(By.ID, "credential")
    box.send_keys(relay.connection_string)
    click(driver, "#sign-in")
    wait_for(driver, lambda d: d.find_element(By.ID, "app").is_displayed(), "signed in")
    token = driver.execute_script("return sessionStorage.getItem('soaprelay.token')")
    assert token.startswith("SharedAccessSignature ") and TEST_KEY not in token
    assert TEST_KEY not in driver.execute_script("return JSON.stringify(localStorage)")


def test_a_person_uses_the_console(relay: RelayThread, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(f"{relay.base_url}/$console/")
    assert driver.find_element(By.ID, "login").is_displayed()
    sign_in(driver, relay)
    with desk_host(relay):
        wait_for(driver, lambda d: "desk" in text(d, "#listeners tbody"), "the listener appears")
        assert "ListenerConnected" in text(driver, "#presence")
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                 "#entities tr[data-entity=desk] input.capture"), "the desk entity row")
        click(driver, "#entities tr[data-entity=desk] input.capture")
        wait_for(driver, lambda d: relay.server.state.observer.captures("desk"), "capture on")

        client = relay_client(f"{relay.base_url}/desk?wsdl",
                              token_provider=TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY))
        assert client.service.Echo("hello from zeep") == "hello from zeep"
        with pytest.raises(Fault):
            client.service.Echo("fault:" + XSS)

        click(driver, "#tabs button[data-tab=inspector]")
        wait_for(driver, lambda d: "Server.Refused" in text(d, "#calls tbody"), "the fault arrives")
        rows = text(driver, "#calls tbody")
        assert "Echo" in rows and "200" in rows and XSS in rows  # shown as text, not markup
        assert driver.find_elements(By.CSS_SELECTOR, "#tab-inspector img, #tab-inspector script") == []

        seq = next(r.get_attribute("data-seq") for r in driver.find_elements(By.CSS_SELECTOR, "#calls tbody tr")
                   if "Echo" in r.text and " 200 " in f" {r.text} ")
        click(driver, f"#calls tbody tr[data-seq='{seq}']")
        wait_for(driver, lambda d: "hello from zeep" in text(d, "#d-req-body"), "the call's body")
        click(driver, "#replay")
        wait_for(driver, lambda d: text(d, "#r-status").startswith("200"), "the replay's answer")
        assert "hello from zeep" in text(driver, "#r-body")

        click(driver, "#tabs button[data-tab=client]")
        click(driver, "#load-wsdl")
        wait_for(driver, lambda d: "Echo" in text(d, "#operations"), "the WSDL's operations")
        click(driver, "#operations button.operation")
        driver.find_element(By.CSS_SELECTOR, "#op-fields input[data-field=text]").send_keys(
            "from the test client")
        click(driver, "#invoke")
        wait_for(driver, lambda d: "from the test client" in text(d, "#c-response"), "invoked")
        assert text(driver, "#c-status").startswith("200")
        assert "<soap:Envelope" in text(driver, "#c-request")

        click(driver, "#tabs button[data-tab=inspector]")
        click(driver, "#calls tbody tr.fault")
        wait_for(driver, lambda d: "Server.Refused" in text(d, "#d-summary"), "the fault's detail")
        assert XSS in text(driver, "#d-summary")
        shot = os.environ.get("SOAPRELAY_CONSOLE_SCREENSHOT")
        if shot:
            driver.save_screenshot(str(Path(shot)))
    click(driver, "#tabs button[data-tab=namespace]")
    wait_for(driver, lambda d: "desk" not in text(d, "#listeners tbody"), "the listener goes")
    assert "ListenerDisconnected" in text(driver, "#presence")
    assert driver.execute_script("return window.__pwned") is None


def test_the_console_refuses_a_wrong_credential(relay: RelayThread, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(f"{relay.base_url}/$console/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{relay.base_url}/$console/")
    wrong = relay.connection_string.replace(TEST_KEY, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=")
    driver.find_element(By.ID, "credential").send_keys(wrong)
    click(driver, "#sign-in")
    wait_for(driver, lambda d: "401" in text(d, "#login-error"), "refused")
    assert not driver.find_element(By.ID, "app").is_displayed()
    assert driver.execute_script("return sessionStorage.getItem('soaprelay.token')") is None
