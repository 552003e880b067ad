"""YAML configs shipped with ecglens: the shipped models' training runs and the reproduced experiments.

They are package data, so an installed ecglens finds them without a clone; in a clone, ``configs/`` at the
repository root is a link to this folder. :func:`find_config` turns what a user typed into a file: an existing
path is used as it is, otherwise a shipped config's name (``age_sex``, ``age_sex.yaml`` or
``configs/age_sex.yaml``) is looked up here.

>>> from ecglens.configs import find_config, list_configs
>>> find_config("age_sex").name
'age_sex.yaml'
>>> "quick_synthetic" in list_configs()
True
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..exceptions import ConfigError

__all__ = ["config_dir", "find_config", "list_configs"]

_SUFFIXES = (".yaml", ".yml")


def config_dir() -> Path:
    """The folder holding the shipped configs (inside the installed package)."""
    return Path(str(resources.files(__name__)))


def list_configs() -> list[str]:
    """Names of the shipped configs (file names without ``.yaml``), sorted."""
    return sorted(p.stem for p in config_dir().glob("*.yaml"))


def find_config(name_or_path: str | os.PathLike[str]) -> Path:
    """The config file a user means: an existing file, else the shipped config of that name.

    Parameters
    ----------
    name_or_path : str or path-like
        A YAML file (used when it exists), or a shipped config's name: ``"age_sex"``, ``"age_sex.yaml"`` or
        ``"configs/age_sex.yaml"`` (the spelling of the README, which works outside a clone too).

    Returns
    -------
    Path
        The file to read.

    Raises
    ------
    ConfigError
        Neither an existing file nor a shipped config; the message lists the shipped ones.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.parent in (Path("."), Path("configs")) and path.suffix in ("", *_SUFFIXES):
        shipped = config_dir() / f"{path.stem if path.suffix else path.name}.yaml"
        if shipped.is_file():
            return shipped
    raise ConfigError(f"Config file {name_or_path} not found, and no shipped config has that name. Pass an "
                      f"existing YAML file or one of the shipped configs: {', '.join(list_configs())}.")
