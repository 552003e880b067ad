"""One self-describing model file: safetensors weights + a JSON description of everything needed to use them.

A checkpoint is a single ``.safetensors`` file. Its tensors are the model's ``state_dict``; its metadata entry
``"ecglens"`` is a JSON document with

* ``model``: registry name, keyword arguments, ``in_leads``, ``num_outputs`` (``create_model`` rebuilds it);
* ``preprocess``: the :class:`~ecglens.signal.transforms.Preprocess` spec (the input contract: fs, duration,
  leads, filters, normalisation);
* ``task``: the :class:`~ecglens.artifact.outputs.OutputSpec` (with the fitted label mean / std; training
  writes a :class:`~ecglens.data.targets.TaskSpec`, which is one);
* ``config``: the resolved training config; ``metrics``: validation metrics (flat ``name -> number``, plus
  ``split`` / ``folds`` / ``n`` saying where they were measured); ``calibration`` (optional): a
  :class:`~ecglens.artifact.calibration.Calibration` fitted on validation data (``ecglens calibrate``);
  files written before it existed load with ``calibration=None``; ``ecglens_version`` (from git tags,
  :mod:`ecglens._version`), ``commit`` (the git commit of the ecglens source that wrote it; ``None`` if unknown),
  ``created``.

Loading never unpickles anything: safetensors holds tensors and strings only. Shipped models live in the
package folder ``ecglens/weights/<name>.safetensors`` and are loaded by bare name
(``load_checkpoint("age-sex")``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__, source_commit
from ..exceptions import CheckpointError, ConfigError, EcglensError, LeadError
from ..jsonutil import json_ready
from .calibration import Calibration
from .formats import (
    SAFETENSORS,
    file_forward,
    list_shipped_exports,
    register_loader,
    shipped_names,
    weights_dir,
)
from .outputs import OutputSpec
from .windows import mean_over_windows, windowed_raw

if TYPE_CHECKING:  # torch is imported where a model is built, saved or run, so reading metadata does not need it
    import torch
    from torch import nn

__all__ = [
    "FORMAT",
    "Checkpoint",
    "PRETRAINED_ALIASES",
    "list_pretrained",
    "load_checkpoint",
    "pretrained_aliases",
    "read_checkpoint_metadata",
    "resolve_checkpoint",
    "save_checkpoint",
    "update_checkpoint",
]

#: value of the ``format`` metadata entry of every ecglens checkpoint
FORMAT = "ecglens-checkpoint/1"
_META_KEY = "ecglens"
_SUFFIX = SAFETENSORS.suffix


def _config_dict(config: Any) -> dict[str, Any] | None:
    """The stored form of a training config: a dataclass's ``to_dict()`` / fields, or a plain mapping."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return json_ready(config)
    return json_ready(dict(config))


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    model_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    task: OutputSpec | None = None,
    preprocess: Any = None,
    config: Any = None,
    metrics: dict[str, Any] | None = None,
    *,
    in_leads: int | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Write ``model`` and its description to one ``.safetensors`` file (atomically).

    Parameters
    ----------
    path : path
        Output file (``.safetensors`` is appended when missing).
    model : nn.Module
        The trained model (any device; weights are stored on CPU).
    model_name, model_kwargs : str, dict
        How ``ecglens.models.create_model`` rebuilds it (default: the model's ``model_name`` /
        ``model_kwargs`` attributes, which ``create_model`` sets).
    task : OutputSpec
        The fitted task (label statistics included), e.g. a :class:`~ecglens.data.targets.TaskSpec`.
    preprocess : Preprocess or None
        The input contract the model was trained with.
    config : TrainConfig or dict or None
        The resolved training config.
    metrics : dict or None
        Validation metrics (NaN stored as null).
    in_leads : int, optional
        Input leads (default: ``model.in_leads``, else ``len(preprocess.leads)``).
    calibration : Calibration, optional
        Post-hoc calibration fitted on validation data (:func:`ecglens.artifact.calibration.fit_calibration`).

    Returns
    -------
    Path
        The written file.
    """
    import torch
    from safetensors.torch import save_model

    path = Path(path)
    path = path if path.suffix == _SUFFIX else path.with_name(path.name + _SUFFIX)
    model_name = model_name or getattr(model, "model_name", None)
    if not model_name or task is None:
        raise CheckpointError(
            "save_checkpoint needs the model's registry name (model_name=...) and its task."
        )
    in_leads = in_leads or getattr(model, "in_leads", None) or len(getattr(preprocess, "leads", ()) or ())
    if not in_leads:
        raise CheckpointError("Cannot tell the model's input leads: pass in_leads=... to save_checkpoint.")

    meta = {
        "format": FORMAT,
        "model": {
            "name": model_name,
            "kwargs": json_ready(
                model_kwargs if model_kwargs is not None else getattr(model, "model_kwargs", {})
            ),
            "in_leads": int(in_leads),
            "num_outputs": int(task.num_outputs),
        },
        "preprocess": None if preprocess is None else json_ready(preprocess.to_dict()),
        "task": json_ready(task.to_dict()),
        "config": _config_dict(config),
        "metrics": json_ready(metrics or {}),
        "calibration": None if calibration is None else json_ready(calibration.to_dict()),
        "ecglens_version": __version__,
        "commit": source_commit(),
        "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_model(model, str(tmp), metadata={"format": FORMAT, _META_KEY: json.dumps(meta, allow_nan=False)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def update_checkpoint(source: str | os.PathLike[str], out: str | os.PathLike[str], *,
                      calibration: Calibration | None = None, metrics: dict[str, Any] | None = None,
                      note: str | None = None) -> Path:
    """Copy a checkpoint with new ``calibration`` and / or ``metrics`` (weights unchanged, written atomically).

    Parameters
    ----------
    source : path or shipped name
        The checkpoint to copy (never modified unless ``out`` is the same file).
    out : path
        The new ``.safetensors`` file.
    calibration : Calibration, optional
        Replaces the stored calibration (``None``: keep it).
    metrics : dict, optional
        Replaces the stored metrics (``None``: keep them).
    note : str, optional
        Appended to the metadata's ``history`` list (what was done, e.g. the command).

    Returns
    -------
    Path
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = resolve_checkpoint(source)
    meta = read_checkpoint_metadata(src)
    with safe_open(str(src), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    if calibration is not None:
        meta["calibration"] = json_ready(calibration.to_dict())
    if metrics is not None:
        meta["metrics"] = json_ready(metrics)
    if note:
        meta["history"] = [*meta.get("history", []), {"note": note, "source": src.name,
                           "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}]
    path = Path(out)
    path = path if path.suffix == _SUFFIX else path.with_name(path.name + _SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, _META_KEY: json.dumps(meta, allow_nan=False)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------------------------- lookup


#: Other names of shipped models, alias -> shipped name. ``mi`` is the PTB-XL superclass model: its ``p_MI`` output
#: is the probability of myocardial infarction (one network gives all five superclasses at no extra cost).
PRETRAINED_ALIASES: dict[str, str] = {"mi": "superclasses"}


def list_pretrained() -> list[str]:
    """Names of the checkpoints shipped in the package (``ecglens/weights/<name>.safetensors``), no aliases."""
    return shipped_names(_SUFFIX)


def pretrained_aliases() -> dict[str, str]:
    """The aliases of :data:`PRETRAINED_ALIASES` whose model is shipped in this install, alias -> shipped name."""
    shipped = set(list_pretrained())
    return {alias: name for alias, name in PRETRAINED_ALIASES.items() if name in shipped}


def _is_bare_name(text: str) -> bool:
    return not (text.endswith(_SUFFIX) or "/" in text or os.sep in text or Path(text).exists())


def resolve_checkpoint(path_or_name: str | os.PathLike[str]) -> Path:
    """The file of a checkpoint path or of a shipped model's bare name; :class:`CheckpointError` if none."""
    text = os.fspath(path_or_name)
    available = list_pretrained()
    aliases = pretrained_aliases()
    exports = list_shipped_exports()
    listing = (
        f"Shipped models: {', '.join(available)}" + "".join(f"; {a} (= {n})" for a, n in aliases.items())
        + (f"; exported files (predict, evaluate, serve): {', '.join(exports)}" if exports else "") + "."
        if available else "No models are shipped in this install."
    )
    if _is_bare_name(text):
        candidate = weights_dir() / f"{aliases.get(text, text)}{_SUFFIX}"
        if candidate.is_file():
            with resources.as_file(candidate) as real:
                return Path(real)
        if text in exports:
            raise CheckpointError(
                f"{text!r} is a shipped exported file ({text}.onnx: no PyTorch weights); predict or evaluate with "
                f"it (`ecglens predict --model {text}`, Predictor.from_pretrained({text!r})), or load its float "
                "checkpoint for anything else."
            )
        raise CheckpointError(
            f"Unknown model name {text!r}. {listing} Or pass the path of a .safetensors "
            "checkpoint (written by `ecglens train`)."
        )
    path = Path(text)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file {path} not found. {listing}")
    return path


def read_checkpoint_metadata(path_or_name: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON description of a checkpoint (model, preprocess, task, config, metrics...), no weights."""
    from safetensors import SafetensorError, safe_open

    path = resolve_checkpoint(path_or_name)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({err}). Re-export it with "
            "`ecglens train` / save_checkpoint."
        ) from None
    if _META_KEY not in meta:
        raise CheckpointError(
            f"{path} is a safetensors file but not an ecglens checkpoint (no 'ecglens' metadata); "
            "save models with ecglens.artifact.save_checkpoint."
        )
    try:
        return json.loads(meta[_META_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: the ecglens metadata is not valid JSON ({err}).") from None


# ----------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint: the model (eval mode) and everything it was trained with.

    Attributes
    ----------
    model : nn.Module
        In eval mode, on ``map_location``.
    model_name, model_kwargs, in_leads : str, dict, int
        How the model was built.
    task : OutputSpec
        Output names, label statistics, postprocessing (``TaskSpec.from_outputs(task)`` to train it).
    preprocess : Preprocess or None
        The input contract (fs, n_samples, leads, filters, normalisation).
    config, metrics : dict
        The resolved training config and the validation metrics.
    calibration : Calibration or None
        Post-hoc calibration (``None``: the model's raw outputs are used as they are).
    version, created : str
        ecglens version that wrote it and when (UTC, ISO 8601).
    path : Path
        The file.
    """

    model: nn.Module
    model_name: str
    model_kwargs: dict[str, Any]
    in_leads: int
    task: OutputSpec
    preprocess: Any
    config: dict[str, Any] | None
    metrics: dict[str, Any]
    version: str
    created: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    calibration: Calibration | None = None

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.task.output_names

    @property
    def n_parameters(self) -> int | None:
        """Parameters of the PyTorch model (``None`` for a checkpoint read from an exported file, which has none)."""
        return None if self.model is None else int(sum(p.numel() for p in self.model.parameters()))

    def summary(self) -> dict[str, Any]:
        """Plain description: model, parameter count, outputs, input contract, metrics, version, file."""
        pre = self.preprocess.to_dict() if self.preprocess is not None else None
        return {
            "path": str(self.path), "model": self.model_name, "model_kwargs": dict(self.model_kwargs),
            "parameters": self.n_parameters, "in_leads": int(self.in_leads),
            "task": self.task.name, "outputs": list(self.output_names), "preprocess": pre,
            "metrics": dict(self.metrics),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "ecglens_version": self.version, "commit": self.meta.get("commit"),
            "created": self.created,
        }

    def __repr__(self) -> str:
        pre = self.preprocess
        contract = f"{pre.fs:g} Hz x {pre.seconds:g} s, {len(pre.leads)} leads" if pre is not None else "none"
        n_params = "no PyTorch" if self.n_parameters is None else f"{self.n_parameters:,}"
        return (f"Checkpoint({self.path.name}: {self.model_name}, {n_params} parameters, task {self.task.name!r} "
                f"-> {', '.join(self.output_names)}; input {contract}; ecglens {self.version})")

    def _repr_html_(self) -> str:
        """Jupyter: name, architecture, outputs, input contract and stored metrics as a small table."""
        from html import escape

        pre = self.preprocess
        contract = ("none declared" if pre is None else
                    f"{pre.fs:g} Hz x {pre.seconds:g} s ({pre.n_samples} samples), leads {', '.join(pre.leads)}")
        metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.metrics.items())
        cal = self.calibration
        rows = {"model": f"{self.path.stem} ({self.model_name})", "task": self.task.name,
                "outputs": ", ".join(self.output_names), "input": contract, "metrics": metrics or "none stored",
                "calibration": f"fitted on folds {cal.folds} (n={cal.n})" if cal is not None else "none",
                "ecglens": f"{self.version} ({self.meta.get('commit') or 'commit unknown'})"}
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{escape(str(v))}</td></tr>"
                       for k, v in rows.items())
        return f"<div><b>Checkpoint</b><table>{body}</table></div>"

    def _forward(self) -> tuple[Any, Any]:
        """The forward function and the device of the inputs: the PyTorch model, or onnxruntime for a weightless
        checkpoint of an exported ``.onnx`` file."""
        if self.model is not None:
            return self.model, next(self.model.parameters()).device
        forward = None if self.path is None else file_forward(self.path)
        if forward is not None:
            return forward, "cpu"
        raise CheckpointError(f"checkpoint {self.path} holds no model to predict with; load a .safetensors or "
                              ".onnx file.")

    def check_precision(self, precision: str, device_type: str = "cpu") -> str:
        """``precision`` (``"32"``, ``"bf16"``, ``"16"``) if this checkpoint can predict in it on ``device_type``.

        Raises
        ------
        ConfigError
            A reduced precision for an exported file (it runs as exported), or what
            :func:`ecglens.artifact.precision.check_precision` refuses.
        """
        from .precision import check_precision

        if self.model is None and str(precision) != "32":
            name = self.path.name if self.path is not None else "this checkpoint"
            raise ConfigError(f"precision {precision} needs the PyTorch model; {name} runs in the precision it was "
                              "exported in. Use the .safetensors checkpoint (or shipped name) for --precision.")
        return check_precision(precision, device_type)

    def predict(self, x: np.ndarray, batch_size: int = 256, precision: str = "32") -> dict[str, np.ndarray]:
        """Predict from preprocessed input (with PyTorch, or onnxruntime for an exported ``.onnx`` file).

        Parameters
        ----------
        x : np.ndarray, shape (N, in_leads, T) or (in_leads, T)
            Filtered and normalised as the checkpoint's contract says (:attr:`preprocess`; ``Predictor`` does
            that from any ECG), at its fs. ``T`` is normally ``preprocess.n_samples``; longer inputs (e.g. the
            10 s records of a cache for a model trained on 4 s crops) are predicted in windows of
            ``n_samples`` covering them evenly and the outputs averaged (:mod:`ecglens.artifact.windows`).
        batch_size : int
            Records per forward pass.
        precision : {"32", "bf16", "16"}
            The PyTorch model's forward pass in float32 or under autocast (:mod:`ecglens.artifact.precision`);
            an exported file runs as exported (``"32"`` only).

        Returns
        -------
        dict of str to np.ndarray, each shape (N,)
            ``task.postprocess`` of the outputs (averaged over windows), e.g. ``{"age": years, "age_std":
            years, "p_female": prob}``.
        """
        import torch

        from .precision import autocast

        x = np.asarray(x, dtype=np.float32)
        x = x[None] if x.ndim == 2 else x
        if x.ndim != 3 or x.shape[1] != self.in_leads:
            raise LeadError(
                f"Checkpoint {self.path.name} expects x of shape [N, {self.in_leads}, n_samples], got "
                f"{x.shape}. Bring records to the model's contract first (ecglens.Predictor does)."
            )
        forward, device = self._forward()
        device_type = torch.device(device).type
        precision = self.check_precision(precision, device_type)
        width = self.preprocess.n_samples if self.preprocess is not None else None
        raws = []
        with torch.inference_mode(), autocast(device_type, precision):
            for start in range(0, len(x), max(1, int(batch_size))):
                batch = torch.from_numpy(x[start : start + batch_size]).to(device)
                raws.append(windowed_raw(forward, batch, width).float().cpu())
        raw = torch.cat(raws) if raws else torch.zeros((0, 1, self.task.num_outputs))
        return mean_over_windows(self.task, raw)


def _build_model(meta: dict[str, Any], path: Path) -> nn.Module:
    from ..models import create_model

    spec = meta.get("model") or {}
    try:
        return create_model(
            spec["name"],
            in_leads=int(spec["in_leads"]),
            num_outputs=int(spec["num_outputs"]),
            **dict(spec.get("kwargs") or {}),
        )
    except KeyError as err:
        raise CheckpointError(f"{path}: the model description lacks {err}; the file is damaged.") from None
    except EcglensError as err:
        raise CheckpointError(
            f"{path}: cannot rebuild model {spec.get('name')!r} ({err}). It may need a newer ecglens."
        ) from None


def load_checkpoint(
    path_or_name: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Load a checkpoint file or a shipped model by name (``"age-sex"``), ready to predict.

    Raises
    ------
    CheckpointError
        Unknown name (the message lists the shipped ones), missing or malformed file, or weights that do not
        fit the described model.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = resolve_checkpoint(path_or_name)
    meta = read_checkpoint_metadata(path)
    model = _build_model(meta, path)
    try:
        load_model(model, str(path), strict=True, device=str(map_location))
    except (SafetensorError, RuntimeError, ValueError) as err:  # RuntimeError: missing / unexpected keys
        raise CheckpointError(
            f"{path}: the weights do not fit model {meta['model']['name']!r} ({err})."
        ) from None
    model = model.to(map_location).eval()
    preprocess = None
    if meta.get("preprocess") is not None:
        from ..signal.transforms import Preprocess

        preprocess = Preprocess.from_dict(meta["preprocess"])
    return Checkpoint(
        model=model,
        model_name=meta["model"]["name"],
        model_kwargs=dict(meta["model"]["kwargs"]),
        in_leads=int(meta["model"]["in_leads"]),
        task=OutputSpec.from_dict(meta["task"]),
        preprocess=preprocess,
        config=meta.get("config"),
        metrics=dict(meta.get("metrics") or {}),
        version=str(meta.get("ecglens_version", "")),
        created=str(meta.get("created", "")),
        path=path,
        meta=meta,
        calibration=Calibration.from_dict(meta.get("calibration")),
    )


register_loader(SAFETENSORS.name, load_checkpoint)


#: what functions taking "a checkpoint" accept: a loaded :class:`Checkpoint`, a model file or a shipped name
CheckpointLike = Checkpoint | str | os.PathLike[str]
