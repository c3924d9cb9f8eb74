"""The payroll sample's WCF client, ``make demo-wcf`` (``python -m samples.payroll.wcf``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from interop_tests.wcf.mono import require_mono
from tests.support.procs import ROOT, child_env

pytestmark = pytest.mark.wcf


def test_make_demo_wcf_calls_the_payroll_service_through_the_relay() -> None:
    require_mono()
    done = subprocess.run([sys.executable, "-m", "samples.payroll.wcf"], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GetSalary(7)  = 5120.50" in done.stdout
    assert "FaultException Client.UnknownEmployee: No employee has the id 99" in done.stdout
    assert done.stdout.rstrip().endswith("through the relay.")
