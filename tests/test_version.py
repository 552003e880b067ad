"""The version from git tags (setuptools-scm) and the commit every checkpoint records.

A temporary clone of this repository is tagged and built with ``pip wheel`` (no build isolation: setuptools-scm
comes with the dev extra), so the test checks what a fresh clone, an sdist-less ``git archive`` tree and an
installed wheel report. It skips where the tests do not run from a git checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ecglens
from ecglens._version import FALLBACK_VERSION, source_commit

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _wheel(tree: Path, out: Path) -> tuple[str, str]:
    """Build a wheel of ``tree``; returns (its file name, its generated _build_info.py)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(tree)], check=True, capture_output=True, text=True, timeout=300)
    wheel = next(out.glob("ecglens-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        return wheel.name, zf.read("ecglens/_build_info.py").decode()


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools_scm", reason="the version from git tags needs setuptools-scm (dev extra)")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    dest = tmp_path_factory.mktemp("clone") / "ecglens"
    subprocess.run(["git", "clone", "-q", "--no-tags", str(ROOT), str(dest)], check=True, timeout=120)
    return dest


def test_a_tagged_clone_builds_its_tag_and_records_the_commit(clone: Path, tmp_path: Path) -> None:
    _git("-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "v9.8.7", "-m", "test release", cwd=clone)
    name, info = _wheel(clone, tmp_path)
    assert name.startswith("ecglens-9.8.7-")
    head = _git("rev-parse", "HEAD", cwd=clone)
    assert 'version = "9.8.7"' in info and f'commit = "g{head[:7]}' in info


def test_a_tree_without_git_builds_the_fallback_version(clone: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=clone, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    name, info = _wheel(tree, tmp_path / "whl")
    assert name.startswith(f"ecglens-{FALLBACK_VERSION}-") and f'version = "{FALLBACK_VERSION}"' in info


def test_source_commit_is_the_checkout_head_and_the_version_is_a_string() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert source_commit().split("+")[0] == _git("rev-parse", "HEAD", cwd=ROOT)
    assert isinstance(ecglens.__version__, str) and ecglens.__version__[0].isdigit()


def test_changelog_and_citation_are_well_formed() -> None:
    import yaml

    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog and f"## [{FALLBACK_VERSION}]" in changelog
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["version"] == FALLBACK_VERSION
    assert all(ref["title"] and ref["authors"] for ref in citation["references"])
