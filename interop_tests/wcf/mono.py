"""Mono for the WCF interop tests: find it, compile the C# programs once, run them.

Debian's ``mono-complete`` (``apt-packages.txt``) brings ``mcs`` and a real
``System.ServiceModel``.  :func:`compile_programs` builds both programs into a
folder with ``mcs`` (about a second each); the ``wcf_programs`` fixture does it
once per test run.  Nothing is downloaded and no NuGet package is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["SOURCES", "ClientLine", "Programs", "compile_programs", "require_mono"]

HERE = Path(__file__).parent
#: program -> the C# files it is built from
SOURCES = {
    "WcfClient.exe": ("Client.cs", "SpyneContracts.cs", "WcfContracts.cs", "RelayToken.cs"),
    "WcfService.exe": ("Service.cs", "WcfContracts.cs"),
}
REFERENCES = ("System.ServiceModel", "System.Runtime.Serialization")
#: Seconds one compile or one client run may take.
TIMEOUT = 60.0


def require_mono() -> tuple[str, str]:
    """The paths of mcs and mono; skips (not root) or fails (root) without them.

    As root, ``make test`` has just run ``scripts/apt-bootstrap``, so a missing
    Mono is a broken set-up, not a reason to skip.
    """
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    if mcs and mono:
        return mcs, mono
    reason = ("needs Debian's mono-complete (mcs, mono, System.ServiceModel; apt-packages.txt:"
              " run scripts/apt-bootstrap apt-packages.txt as root)")
    if os.geteuid() != 0:
        pytest.skip(reason)
    pytest.fail(reason)


@dataclass(frozen=True)
class ClientLine:
    """One line of ``WcfClient.exe``: ``COMMAND<TAB>KIND<TAB>FIELDS...``."""

    command: str
    kind: str  # "ok", "fault" or "error"
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, line: str) -> ClientLine:
        command, kind, *fields = line.split("\t")
        return cls(command, kind, tuple(fields))

    @property
    def value(self) -> str:
        """The result of an ``ok`` line; anything else fails the test with the line."""
        assert self.kind == "ok", f"{self.command}: expected a result, got {self}"
        return self.fields[0]


@dataclass(frozen=True)
class Programs:
    """The compiled programs and the mono to run them with."""

    mono: str
    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    def client(
        self, address: str, binding: str, contract: str, token_place: str, token: str,
        *commands: str,
    ) -> list[ClientLine]:
        """Run ``WcfClient.exe`` once; one parsed line per command."""
        argv = [self.mono, str(self.path("WcfClient.exe")), address, binding, contract,
                token_place, token or "-", *commands]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert done.returncode == 0, f"WcfClient.exe failed ({done.returncode}): {done.stderr}"
        lines = [ClientLine.parse(line) for line in done.stdout.splitlines() if "\t" in line]
        assert [line.command for line in lines] == list(commands), done.stdout + done.stderr
        return lines


def compile_programs(folder: Path) -> Programs:
    """Build every program of :data:`SOURCES` into ``folder`` with mcs."""
    mcs, mono = require_mono()
    for program, sources in SOURCES.items():
        argv = [mcs, "-nologo", "-warnaserror", "-optimize+", f"-out:{folder / program}",
                *(f"-r:{name}" for name in REFERENCES), *(str(HERE / s) for s in sources)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert done.returncode == 0, f"mcs could not build {program}:\n{done.stdout}{done.stderr}"
    return Programs(mono, folder)
