"""Debian's Chromium, headless, driven by chromedriver (selenium), and a page to run in it.

The browser is the system one (``apt-packages.txt``: chromium, chromium-driver):
nothing is downloaded.  The page comes from a tiny HTTP server of its own on
127.0.0.1, so that its origin is not the relay's and every call it makes to the
relay is cross-origin, as on a real site.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Page", "chromium_driver", "page_server", "require_chromium"]

#: Flags that work on a headless CI machine without a GPU, a sandbox or a network.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
_PAGE = b"<!doctype html><meta charset=utf-8><title>a page calling the relay</title>"


def require_chromium() -> tuple[str, str]:
    """The paths of chromium and chromedriver; skips (not root) or fails (root) without them.

    As root, ``make test`` has just run ``scripts/apt-bootstrap``, so a missing
    browser is a broken set-up, not a reason to skip.
    """
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = ("needs Debian's chromium and chromium-driver (apt-packages.txt: "
              "run scripts/apt-bootstrap apt-packages.txt as root)")
    if os.geteuid() != 0:
        pytest.skip(reason)
    pytest.fail(reason)


@contextmanager
def chromium_driver(profile: Path) -> Iterator[Any]:
    """One headless Chromium with a fresh profile, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(_PAGE)))
        self.end_headers()
        self.wfile.write(_PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Page:
    """The page's server: ``origin`` is what the browser sends as ``Origin``."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.origin = f"http://127.0.0.1:{server.server_address[1]}"


@contextmanager
def page_server() -> Iterator[Page]:
    """Serve the (empty) page on 127.0.0.1, port 0, until exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Page(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
