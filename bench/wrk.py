"""S1 and S3 load: wrk in its own process, a fixed 1 KiB SOAP POST, bounded in time.

The Lua script sets the method, body and headers and prints one JSON line from
wrk's ``done`` hook: requests, duration, errors and latency percentiles (us).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SOAP_1K", "WrkResult", "run_wrk", "write_script"]

_ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    '<soap:Body><Echo xmlns="urn:soap-relay:bench"><payload>{pad}</payload></Echo>'
    "</soap:Body></soap:Envelope>"
)
#: The S1 request body: a SOAP 1.1 envelope of exactly 1,024 bytes.
SOAP_1K = _ENVELOPE.format(pad="x" * (1024 - len(_ENVELOPE.format(pad="")))).encode()
assert len(SOAP_1K) == 1024

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def write_script(path: Path, headers: dict[str, str], body: bytes = SOAP_1K) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n" + _DONE)
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> WrkResult:
    """One bounded wrk run (one thread; ``connections`` keep-alive connections)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    data = json.loads(line[len("BENCH ") :])
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"] + data["status_errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )
