"""The compiled copy of the tree that ``tests/test_compiled.py`` runs its tests on,
built in the background from the start of the run.

mypyc and the C compiler need about three minutes of one core, while most of the
suite waits on sockets and child processes: the build starts as soon as pytest knows
the compiled-build tests are selected (``tests/conftest.py``), and the first test that
needs it waits for what is left.  The child is stopped by PID and its folder removed
when the run ends.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["CompiledBuild"]

ROOT = Path(__file__).resolve().parents[2]


class CompiledBuild:
    """``scripts/compiled_tree.py`` into a fresh folder, running from construction."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="soaprelay-compiled-"))
        self.tree = self.folder / "tree"
        self._log = (self.folder / "compile.log").open("w+", encoding="utf-8")
        self._child = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "compiled_tree.py"), str(self.tree)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 900.0) -> Path:
        """The compiled tree, once built; fails the caller with mypyc's output if not."""
        code = self._child.wait(timeout)
        self._log.seek(0)
        assert code == 0, f"compiled_tree.py exited {code}:\n{self._log.read()[-4000:]}"
        return self.tree

    def stop(self) -> None:
        """Kill the build if it still runs; remove its folder."""
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
