"""A listener process whose service never answers: it prints GOT and blocks.

``python -m tests.samples.stuck_listener CONNECTION_STRING`` prints ``READY`` once
online; tests kill it mid-call to check what the client sees.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from bindings import RelayServiceHost


def stuck_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    print("GOT", flush=True)
    threading.Event().wait()  # the service hangs; the test kills this process
    return [b""]


def main() -> None:
    with RelayServiceHost(stuck_app, connection_string=sys.argv[1]):
        print("READY", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
