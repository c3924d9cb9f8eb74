"""The WCF peers' fixtures: the C# programs, compiled once per test run."""

from __future__ import annotations

import pytest

from interop_tests.wcf.mono import Programs, compile_programs


@pytest.fixture(scope="session")
def wcf_programs(tmp_path_factory: pytest.TempPathFactory) -> Programs:
    """``WcfClient.exe`` and ``WcfService.exe``, built with mcs into a temporary folder."""
    return compile_programs(tmp_path_factory.mktemp("wcf-programs"))
