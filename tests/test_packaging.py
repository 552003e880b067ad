"""Packaging: the lean core, optional extras, shipped configs, registries, and the CLI's output policy.

The import checks run in a fresh interpreter (``subprocess``), because the test process itself has long imported
torch and Lightning; they list which heavy packages a task left in ``sys.modules``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

import ecglens
from ecglens import models
from ecglens._optional import EXTRAS, import_submodules, require
from ecglens.cli import _cli_output, app
from ecglens.configs import config_dir, find_config, list_configs
from ecglens.exceptions import ConfigError, EcglensError, MissingDependencyError
from ecglens.io import registry as io_registry
from ecglens.models import _registry as model_registry

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}
EXAMPLE = Path(ecglens.__file__).parent / "examples" / "sim_500hz_12lead.hea"
#: what reading, predicting and reporting must never import
TRAINING_AND_CLINICAL = ("lightning", "pytorch_lightning", "lifelines", "neurokit2")

_PROBE = """
import json, sys
def loaded():
    return sorted(m for m in {names!r} if m in sys.modules)
steps = {{}}
{body}
print(json.dumps(steps))
"""


def _probe(body: str, names: tuple[str, ...], cwd: Path) -> dict[str, list[str]]:
    """Run ``body`` in a fresh interpreter; ``steps[name] = loaded()`` records heavy modules after each step."""
    code = _PROBE.format(names=names, body=body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env=ENV)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_reading_imports_no_torch_and_prediction_no_training_or_clinical_package(tmp_path):
    body = (f"import ecglens\necg = ecglens.read_ecg({str(EXAMPLE)!r})\nsteps['read'] = loaded()\n"
            "pred = ecglens.Predictor.from_pretrained('age-sex').predict_ecg(ecg)\n"
            "assert pred.outputs['age'] > 0\nsteps['predict'] = loaded()")
    steps = _probe(body, ("torch", *TRAINING_AND_CLINICAL), tmp_path)
    assert steps == {"read": [], "predict": ["torch"]}


def test_predict_report_and_info_commands_import_no_training_or_clinical_package(tmp_path):
    commands = {
        "predict": ["-q", "predict", str(EXAMPLE), "--model", "age-sex", "-o", str(tmp_path / "p.csv")],
        "report": ["-q", "report", str(EXAMPLE), "--out", str(tmp_path / "r.html"), "--method", "saliency"],
        "info": ["info", str(EXAMPLE)],
        "info_model": ["info", "age-sex"],
    }
    body = "from ecglens.cli import app\n" + "\n".join(
        f"assert app({argv!r}) == 0\nsteps[{name!r}] = loaded()" for name, argv in commands.items())
    steps = _probe(body, TRAINING_AND_CLINICAL, tmp_path)
    assert steps == {name: [] for name in commands}
    assert (tmp_path / "p.csv").is_file() and (tmp_path / "r.html").is_file()


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_core_dependencies_leave_training_and_clinical_packages_to_extras():
    project = _pyproject()["project"]
    core = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    assert core.isdisjoint({"lightning", "lifelines", "neurokit2", "captum", "fastapi", "onnx", "onnxruntime"})
    extras = project["optional-dependencies"]
    assert {"train", "clinical", "serve", "export", "explain", "parquet", "distributed", "all", "dev"} <= set(extras)
    assert extras["all"] == ["ecglens[train,clinical,serve,export,explain,parquet,distributed]"]
    listed = " ".join(d for name, deps in extras.items() for d in deps)
    for package, extra in EXTRAS.items():  # every optional package named by the error messages is in its extra
        assert extra in extras
        assert package in {"pytorch_lightning", "multipart"} or package in " ".join(extras[extra]), package
    assert "lightning" in listed and "lifelines" in listed and "neurokit2" in listed


def test_require_names_the_extra_to_install(monkeypatch):
    for name in ("lifelines", "lifelines.statistics"):  # importing them now fails as if not installed
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError, match=r'pip install "ecglens\[clinical\]"') as info:
        require("lifelines.statistics", "survival analysis")
    assert isinstance(info.value, ImportError) and isinstance(info.value, EcglensError)
    assert info.value.name == "lifelines" and "survival analysis" in str(info.value)
    assert require("captum").__name__ == "captum"
    with pytest.raises(KeyError, match="not an optional dependency"):
        require("numpy")


def test_survival_analysis_without_lifelines_says_which_extra(monkeypatch):
    from ecglens.evaluate.survival import c_index

    monkeypatch.setitem(sys.modules, "lifelines.utils", None)
    with pytest.raises(MissingDependencyError, match=r"ecglens\[clinical\]"):
        c_index([1.0, 2.0], [0.5, 0.1], [1, 1])


def test_train_command_without_lightning_says_which_extra(tmp_path):
    code = ("import sys\nsys.modules['lightning'] = None\nfrom ecglens.cli import app\n"
            "sys.exit(app(['train', 'quick_synthetic', '--out', 'run']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env=ENV)
    assert done.returncode == 2, done.stderr
    assert 'pip install "ecglens[train]"' in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


# ------------------------------------------------------------------------------------------ shipped configs
def test_shipped_configs_are_package_data_and_the_repository_link_points_at_them():
    assert (REPO / "configs").is_symlink() and (REPO / "configs").resolve() == config_dir().resolve()
    assert {"age_sex", "quick_synthetic", "finetune_mi", "study_simulate"} <= set(list_configs())
    data = _pyproject()["tool"]["setuptools"]["package-data"]["ecglens"]
    assert "configs/*.yaml" in data and "py.typed" in data
    assert (Path(ecglens.__file__).parent / "py.typed").is_file()


@pytest.mark.parametrize("spelling", ["age_sex", "age_sex.yaml", "configs/age_sex.yaml"])
def test_find_config_falls_back_to_the_shipped_config(spelling, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here, as after `pip install ecglens`
    assert find_config(spelling) == config_dir() / "age_sex.yaml"


def test_find_config_prefers_an_existing_file_and_lists_shipped_names_when_lost(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "configs" / "age_sex.yaml"
    own.parent.mkdir()
    own.write_text("name: mine\n")
    assert find_config("configs/age_sex.yaml") == Path("configs/age_sex.yaml")
    with pytest.raises(ConfigError, match="quick_synthetic"):
        find_config("no_such_config")
    with pytest.raises(ConfigError, match="not found, and no shipped config"):
        find_config(tmp_path / "elsewhere" / "age_sex.yaml")  # a real path is never swapped for a shipped file


# ------------------------------------------------------------------------------------------------- registries
def _broken_module(folder: Path, name: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text("raise RuntimeError('boom at import')\n")
    return folder


@pytest.mark.parametrize(("package", "registry", "listing"), [
    (models, model_registry, model_registry.list_models),
    (ecglens.io, io_registry, io_registry.list_readers),
])
def test_a_registry_with_a_failing_module_raises_naming_it_and_stays_unloaded(package, registry, listing, tmp_path,
                                                                            monkeypatch):
    extra = _broken_module(tmp_path / "plugins", "zz_broken_plugin")
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(extra)])
    monkeypatch.setattr(registry, "_LOADED", False)
    for _ in range(2):  # not marked loaded: the second call tries again and fails the same way
        with pytest.raises(ImportError, match=rf"{package.__name__}\.zz_broken_plugin.*boom at import") as info:
            listing()
        assert isinstance(info.value.__cause__, RuntimeError) and registry._LOADED is False
    monkeypatch.setattr(package, "__path__", [p for p in package.__path__ if p != str(extra)])
    assert listing() and registry._LOADED is True


def test_import_submodules_imports_every_public_module(tmp_path, monkeypatch):
    pkg = tmp_path / "pluginpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text("import pluginpkg\npluginpkg.seen = True\n")
    (pkg / "_private.py").write_text("raise RuntimeError('private modules are not imported')\n")
    (pkg / "skipped.py").write_text("raise RuntimeError('skipped modules are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pluginpkg

    import_submodules("pluginpkg", pluginpkg.__path__, skip={"skipped"}, kind="plugin")
    assert pluginpkg.seen is True
    for name in ("pluginpkg", "pluginpkg.good"):
        monkeypatch.delitem(sys.modules, name)


# --------------------------------------------------------------------------------------------- CLI output policy
def test_cli_boundary_hides_third_party_noise_but_never_the_eval_mode_warning(recwarn):
    possible_user_warning = type("PossibleUserWarning", (UserWarning,), {})  # Lightning's, by name
    ours = str(Path(ecglens.__file__).parent / "train" / "loop.py")
    eval_mode = "Found 2 module(s) in eval mode at the start of training."
    with _cli_output(0):
        warnings.warn_explicit("does not have many workers", possible_user_warning, "/x/lightning/a.py", 1)
        warnings.warn_explicit(eval_mode, possible_user_warning, "/x/lightning/fit_loop.py", 1)
        warnings.warn_explicit("LeafSpec is deprecated", FutureWarning, "/x/torch/utils/_pytree.py", 1)
        warnings.warn_explicit("old API", DeprecationWarning, "/x/pandas/core/frame.py", 1)
        warnings.warn_explicit("ecglens' own", FutureWarning, ours, 1)
        warnings.warn_explicit("a real user warning", UserWarning, "/x/lightning/b.py", 1)
    assert [str(w.message) for w in recwarn] == [eval_mode, "ecglens' own", "a real user warning"]
    warnings.warn_explicit("after the command", FutureWarning, "/x/torch/y.py", 1)  # the filter is gone again
    assert str(recwarn[-1].message) == "after the command"


@pytest.mark.parametrize(("verbosity", "shown"), [(-1, {"warning"}), (0, {"GPU available", "ecglens info",
                                                                          "warning"})])
def test_cli_log_levels_and_lightning_tips(verbosity, shown, caplog, capsys, monkeypatch):
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    # lightning stops propagation at "lightning.pytorch" when imported while the root logger has no handler
    monkeypatch.setattr(logging.getLogger("lightning.pytorch"), "propagate", True)
    caplog.set_level(logging.INFO, logger=lightning_log.name)
    with _cli_output(verbosity):
        lightning_log.info("GPU available: False, used: False")
        lightning_log.info("💡 Tip: For seamless cloud logging, try installing [litlogger](https://pypi.org/)")
        lightning_log.warning("warning")
        logging.getLogger("ecglens.data.cache").info("ecglens info")
    err = capsys.readouterr()
    lightning_shown = {r.getMessage() for r in caplog.records if r.name == lightning_log.name}
    assert {m for m in ("GPU available", "warning") if any(m in s for s in lightning_shown)} == shown - {
        "ecglens info"}
    assert not any("Tip" in s for s in lightning_shown)
    assert ("ecglens info" in err.err) == ("ecglens info" in shown) and err.out == ""
    assert not lightning_log.filters and not logging.getLogger("ecglens").handlers  # restored


def test_cli_stdout_holds_only_the_result(tmp_path, capsys):
    assert app(["info", "--json", str(EXAMPLE)]) == 0
    assert json.loads(capsys.readouterr().out)["leads"]  # the whole of stdout is one JSON document
    out = tmp_path / "preds.csv"
    for flag, quiet in ((), False), (("--quiet",), True):
        assert app([*flag, "predict", str(EXAMPLE), "-o", str(out)]) == 0
        done = capsys.readouterr()
        lines = done.out.splitlines()  # one record: its table, then the file written
        assert [line.split()[0] for line in lines[:3]] == ["record", "status", "age"]
        # the result only (non-empty columns, then the file written): no progress bar, no log
        written = pd.read_csv(out)
        shown = [c for c in written if written[c].notna().all()]  # the non-empty columns of the one record
        assert lines[-1] == f"wrote {out}" and [line.split()[0] for line in lines[:-1]] == shown
        assert ("ECG/s" in done.err) is not quiet  # the progress bar is on stderr, and off with --quiet


def test_console_script_entry_point_exits_with_the_commands_code(tmp_path):
    """``ecglens.cli:main`` (the console script) ends the process with the command's exit code, its output
    flushed, after freezing the objects left (no final garbage collection)."""
    code = "import sys; from ecglens.cli import main; sys.argv = ['ecglens'] + sys.argv[1:]; main()"
    ok = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True, text=True, cwd=tmp_path,
                        timeout=300, check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("ecglens ")
    bad = subprocess.run([sys.executable, "-c", code, "info", str(tmp_path / "missing.hea")], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300, check=False)
    assert bad.returncode == 2 and "error" in bad.stderr
