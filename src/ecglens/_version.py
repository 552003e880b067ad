"""The ecglens version and the source commit (one place; lower floors import them from here, never from the
package root).

The version comes from git tags through setuptools-scm (tag ``v0.2.0`` -> ``0.2.0``; commits after it ->
``0.2.1.devN+g<commit>``). ``pip install``, ``pip wheel`` and ``python -m build`` write it, with the commit,
into ``_build_info.py`` beside this file (generated, never committed; an sdist carries it, so a wheel built from
the sdist knows it too). A tree with neither git nor that file (e.g. a ``git archive`` tarball) builds as
:data:`FALLBACK_VERSION` (``[tool.setuptools_scm] fallback_version`` in pyproject.toml) and, used without
installing, reports ``FALLBACK_VERSION + "+unknown"``.

:func:`source_commit` is what checkpoints record beside the version: the live ``git`` commit when the package
runs from a git checkout (an editable install or ``PYTHONPATH=src``), else the commit of the build.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__all__ = ["FALLBACK_VERSION", "__version__", "source_commit"]

#: the version of a tree without git metadata (keep equal to pyproject.toml's fallback_version)
FALLBACK_VERSION = "0.1.0"


def _build_info() -> tuple[str, str | None]:
    try:
        from ._build_info import commit as built_commit  # type: ignore[import-not-found]
        from ._build_info import version as built_version  # type: ignore[import-not-found]
    except ImportError:
        return f"{FALLBACK_VERSION}+unknown", None
    commit = str(built_commit or "")
    commit = commit[1:] if commit.startswith("g") else commit  # setuptools-scm's node is "g<hash>" for git
    return str(built_version), (commit if commit and commit != "None" else None)


__version__, _BUILD_COMMIT = _build_info()


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The commit of the running ecglens source: ``git rev-parse HEAD`` (``+dirty`` when its ``src`` has
    uncommitted changes) in a git checkout of ecglens, else the commit recorded at build time, else ``None``."""
    here = Path(__file__).resolve().parent
    root = here.parent.parent
    if (root / "pyproject.toml").is_file() and (root / ".git").exists():
        try:
            head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", str(here)],
                                   capture_output=True, text=True, timeout=10, check=True).stdout.strip()
            return head + ("+dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return _BUILD_COMMIT
