"""SOAP calls to the chaos echo service through the relay, and the books they are kept in.

Every call carries a unique id; the answer must be ``LISTENER|id`` for that very id.
:class:`Ledger` keeps every outcome and says what went wrong: a 200 with another
call's answer (misrouted), an id the service ran twice (doubled), a call that got
neither an answer nor a clear status within its deadline (lost or hung).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.chaos.echo_service import TNS

__all__ = ["CallResult", "Ledger", "call", "envelope", "new_id", "percentile", "ran_on", "runs_per_id"]

SOAP11 = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"Echo"'}
_ANSWER = re.compile(rb"<(?:\w+:)?EchoResult>([^<]*)</")
_REASON = re.compile(rb"<(?:\w+:)?(?:faultstring|Text)[^>]*>([^<]*)</")
_IDS = itertools.count(1)


def new_id(prefix: str = "c") -> str:
    return f"{prefix}{next(_IDS)}-{time.monotonic_ns() % 10**9}"


def envelope(call_id: str, delay: float = 0.0) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:c="{TNS}"><soap:Body><c:Echo><c:id>{call_id}</c:id>'
        f"<c:delay>{delay}</c:delay></c:Echo></soap:Body></soap:Envelope>"
    ).encode()


@dataclass
class CallResult:
    """One call's outcome: ``status`` 0 means no HTTP answer at all (see ``error``)."""

    call_id: str
    status: int
    listener: str | None
    answered_id: str | None
    started: float
    elapsed: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.answered_id == self.call_id


async def call(session: aiohttp.ClientSession, url: str, token: str, call_id: str | None = None,
               *, delay: float = 0.0, timeout: float = 30.0) -> CallResult:
    """POST one Echo to ``url``; never raises for network trouble (status 0 instead)."""
    call_id = call_id or new_id()
    started = time.monotonic()
    headers = {**SOAP11, "ServiceBusAuthorization": token}
    try:
        async with session.post(url, data=envelope(call_id, delay), headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        return CallResult(call_id, 0, None, None, started, time.monotonic() - started,
                          f"{type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started
    found = _ANSWER.search(body)
    if status != 200 or found is None:
        return CallResult(call_id, status, None, None, started, elapsed, _reason(body))
    listener, _, answered = found.group(1).decode().partition("|")
    return CallResult(call_id, status, listener, answered, started, elapsed)


def _reason(body: bytes) -> str:
    """A fault's reason text, else the start of the body."""
    fault = _REASON.search(body)
    return (fault.group(1) if fault else body[:200]).decode("utf-8", "replace")


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) of ``values``; 0 for none."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[
        min(998, max(0, round(fraction * 1000) - 1))]


@dataclass
class Ledger:
    """Every call's outcome, checked for misrouted and doubled answers."""

    results: list[CallResult] = field(default_factory=list)

    def add(self, result: CallResult) -> CallResult:
        self.results.append(result)
        return result

    @property
    def succeeded(self) -> list[CallResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[CallResult]:
        return [r for r in self.results if not r.ok]

    def misrouted(self) -> list[CallResult]:
        """200 answers that carry another call's id (or none)."""
        return [r for r in self.results if r.status == 200 and r.answered_id != r.call_id]

    def latencies(self) -> list[float]:
        return sorted(r.elapsed for r in self.succeeded)

    def summary(self) -> str:
        statuses = Counter(r.status for r in self.results)
        errors = Counter(r.error[:80] for r in self.failed)
        return f"{len(self.results)} calls, statuses {dict(statuses)}, errors {dict(errors)}"


def runs_per_id(*records: Path) -> Counter[str]:
    """How often the service ran each id, from ``--record`` files (``NAME id`` lines)."""
    runs: Counter[str] = Counter()
    for path in records:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                runs[line.split(" ", 1)[1]] += 1
    return runs


async def ran_on(records: dict[str, Path], call_id: str, timeout: float = 15.0) -> str:
    """The listener whose ``--record`` file shows ``call_id`` running (waits up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, path in records.items():
            if path.exists() and f"{name} {call_id}\n" in path.read_text(encoding="utf-8"):
                return name
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no listener started {call_id} within {timeout:g} s")
