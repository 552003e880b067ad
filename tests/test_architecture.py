"""The shape of the package (issue #19): small modules and the floors of ``.importlinter``.

The floors themselves (no upward import at module level or inside a function, no cycle between sibling
modules) are import-linter contracts in ``.importlinter``, run here in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "ecglens"
MAX_LINES = 700


def test_no_module_is_over_700_lines():
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert sizes, "no modules found"
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"split these modules along their jobs (over {MAX_LINES} lines): {too_long}"


def test_import_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[dev]')")
    # in a subprocess: import-linter configures logging (dictConfig), which would disable our loggers here
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(REPO / '.importlinter')!r}, no_cache=True, no_logo=True))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
