"""The shape of the package (issue #19): small modules and the floors of ``.importlinter``.

The floors themselves (no upward import at module level or inside a function, no cycle between sibling
modules) are import-linter contracts in ``.importlinter``, run here in-process.
"""

from __future__ import annotations

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


def test_import_contracts_hold(capsys, monkeypatch):
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is not installed (pip install -e '.[dev]')")
    monkeypatch.chdir(REPO)
    code = cli.lint_imports(config_filename=str(REPO / ".importlinter"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out[-4000:]
