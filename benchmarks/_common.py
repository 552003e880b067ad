"""What the benchmarks share: another commit's source tree as a baseline, the ratio table, the results file.

Imported by the benchmark scripts, which run as ``python benchmarks/NAME.py`` (this folder is then first on
``sys.path``); not part of the installed package.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def tree_env(tree: Path | None) -> dict[str, str]:
    """The environment of a process that runs ``tree``'s ecglens (its ``src`` first on ``PYTHONPATH``), or this
    checkout's when ``tree`` is None. A tree is any commit's files, e.g. ``git worktree add /tmp/base <commit>``."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree / "src"), env.get("PYTHONPATH", "")]))
    return env


def print_ratio_table(medians: Mapping[str, Mapping[str, float]], steps: Sequence[str], first: str,
                      unit: str = "", width: int = 18, digits: int = 3) -> None:
    """One row per step: each tree's median and, when there is a ``baseline`` tree, this / baseline."""
    trees = list(medians)
    baseline = "baseline" in medians
    print(f"{first:<{width}}" + "".join(f"{name + unit:>18}" for name in trees)
          + (f"{'this / baseline':>18}" if baseline else ""))
    for step in steps:
        row = f"{step:<{width}}" + "".join(f"{medians[name][step]:>18.{digits}f}" for name in trees)
        if baseline:
            row += f"{medians['this'][step] / medians['baseline'][step]:>18.2f}"
        print(row)


def machine() -> dict[str, Any]:
    """Python version, CPU count and load average: what a reader needs to weigh the times."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()}


def write_results(path: Path, result: Mapping[str, Any]) -> None:
    """Write ``result`` as indented JSON to ``path`` (folders made) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
