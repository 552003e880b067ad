"""The ``ecglens`` command line: thin commands over the public API.

Each command lives in its own module of this package and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (called with the parsed namespace, returning an exit code). Modules are discovered
automatically, so adding a command never edits this file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from ..exceptions import EcglensError

__all__ = ["app", "build_parser"]

#: commands listed first in ``--help``; any other discovered command follows alphabetically
_ORDER = ("demo", "info", "prepare", "train", "finetune", "ensemble", "evaluate", "predict", "report", "serve",
          "export", "experiment", "survival", "study")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every discovered sub-command."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ecglens",
        description="Deep learning on resting 12-lead ECGs: read, prepare, train, evaluate, predict, serve.",
    )
    parser.add_argument("--version", action="version", version=f"ecglens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def app(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ecglens`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except EcglensError as err:
        print(f"ecglens {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (`ecglens ... | head`): stop quietly
        with contextlib.suppress(OSError, ValueError):  # no second error when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer stopped this way
    return int(code or 0)


def main() -> None:  # pragma: no cover - python -m ecglens.cli
    sys.exit(app())
