"""Optional dependencies and plug-in modules: import them, or say clearly what is missing.

The core install (``pip install ecglens``) reads, harmonises, predicts and reports. Training, the clinical
analyses, the web service, ONNX export and attributions need extras; :data:`EXTRAS` maps each optional top-level
package to its extra, and :func:`require` imports one or raises
:class:`~ecglens.exceptions.MissingDependencyError` telling the user what to install.

>>> L = require("lightning", "training")             # doctest: +SKIP

:func:`import_submodules` imports every module of a plug-in package (readers, models) for the registries,
naming the module that fails instead of leaving a silently partial registry.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType

from .exceptions import MissingDependencyError

__all__ = ["EXTRAS", "import_submodules", "missing_dependency_error", "require"]

#: optional top-level package -> the extra of ``ecglens`` that installs it (see pyproject.toml)
EXTRAS: dict[str, str] = {
    "lightning": "train",
    "pytorch_lightning": "train",
    "lifelines": "clinical",
    "neurokit2": "clinical",
    "fastapi": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "onnx": "export",
    "onnxruntime": "export",
    "captum": "explain",
    "pyarrow": "parquet",
    "dask": "distributed",
    "distributed": "distributed",
}


def missing_dependency_error(package: str, feature: str | None = None) -> MissingDependencyError | None:
    """The error for a missing optional ``package`` (a dotted name is fine), or None when it is not optional.

    Parameters
    ----------
    package : str
        The module that failed to import, e.g. ``"lightning"`` or ``"lifelines.statistics"``.
    feature : str, optional
        What needs it, for the message (``"training"``); default: the package's extra.
    """
    top = package.split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    err = MissingDependencyError(
        f"{top} is not installed but is needed for {feature or extra}. Install the extra that brings it: "
        f"pip install \"ecglens[{extra}]\" (or \"ecglens[all]\" for every optional feature)."
    )
    err.name = top
    return err


def require(module: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"lifelines.statistics"``) or raise an error naming the extra to install.

    Parameters
    ----------
    module : str
        Dotted module name whose top-level package is in :data:`EXTRAS`.
    feature : str, optional
        What needs it, for the message (``"survival analysis"``).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingDependencyError
        The package is not installed; the message says ``pip install "ecglens[EXTRA]"``.
    """
    if module.split(".")[0] not in EXTRAS:
        raise KeyError(f"{module!r} is not an optional dependency of ecglens; add it to EXTRAS first.")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] != module.split(".")[0]:
            raise  # the optional package is there but one of *its* dependencies is missing
        raise missing_dependency_error(module, feature) from err


def import_submodules(package: str, path: Iterable[str], skip: Iterable[str] = (), kind: str = "module") -> None:
    """Import every submodule of ``package`` whose name does not start with ``_`` (and is not in ``skip``).

    Parameters
    ----------
    package : str
        The package's dotted name (``"ecglens.io"``).
    path : iterable of str
        The package's ``__path__``.
    skip : iterable of str
        Submodule names to leave out (``{"registry"}``).
    kind : str
        What the modules hold, for the message (``"reader"``).

    Raises
    ------
    ImportError
        A submodule failed to import (any exception); the message names it and the cause is chained.
    """
    skipped = set(skip)
    for mod in pkgutil.iter_modules(list(path)):
        if mod.name.startswith("_") or mod.name in skipped:
            continue
        name = f"{package}.{mod.name}"
        try:
            importlib.import_module(name)
        except Exception as err:
            raise ImportError(f"the {kind} module {name} failed to import ({type(err).__name__}: {err}), so the "
                              f"{kind} registry would be incomplete. Fix or remove that module, or install what "
                              "it needs, and try again.", name=name) from err
