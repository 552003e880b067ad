"""The ecglens web service: upload an ECG, get the 12 plotted leads and the model's predictions.

Routes
------
``GET /``
    One self-contained page (``static/index.html``): choose the file(s) of one record, press *Predict*, see the
    plotted leads, the predictions, their uncertainty and what was done to the record.
``POST /predict``
    ``multipart/form-data`` with one or more files in the field ``file`` forming **one record** of any format
    the reader registry knows (:func:`accepted_suffixes`; the content decides, as in ``read_ecg``): ``.hea`` +
    ``.dat`` / ``.mat`` (WFDB / PhysioNet challenge), ``.dcm``, ``.scp``, ``.edf``, ``.xml`` (GE MUSE, HL7 aECG,
    Philips, CardioSoft), ..., or a ``.zip`` / ``.tar`` / ``.tar.gz`` holding one such record. Returns JSON:
    ``record``, ``format``, ``outputs`` (calibrated when the checkpoint stores a calibration:
    :func:`~ecglens.predict.postprocess.calibrate_record`), ``raw_outputs`` (the model's own values of the
    calibrated outputs), ``uncertainty`` (the ``*_std`` outputs), ``age_gap`` / ``age_gap_corrected`` (years,
    when the file states the age; the corrected gap needs a calibrated model), ``calls`` (``p_female`` as
    ``female`` / ``male`` / ``uncertain`` inside ``uncertain_band``), ``calibration``, ``window_spread`` (SD
    across 10 s windows of a long record), ``n_windows``, ``flags``, ``warnings``, ``recorded`` (age / sex from
    the file), ``ecg`` (fs, duration, leads), ``model``, ``input_contract``, ``timing_ms`` and ``plot_png``
    (base64 PNG of the leads).
``GET /models``
    The served model and the shipped ones: names, architectures, tasks, outputs, input contracts, the metrics
    and the calibration stored in each checkpoint.
``GET /health``
    ``{"status": "ok", ...}`` with the served model and the upload limits.

Safety
------
Every failure of an upload is answered with a JSON error ``{"error": code, "detail": message, "status": n}``
and a 4xx status, never a 500: 413 when the request body exceeds ``max_upload_mb`` (the ``Content-Length`` is
checked first, then the streamed bytes are counted and reading stops at the limit) or an archive would unpack to
too much / too many entries (the shared :func:`~ecglens.io.archive.extract_archive`); 400 for too many files,
several records, unsafe archive members (``..``, absolute names, links, devices) or a malformed request; 415
for a file type ecglens does not read; 422 for a record that cannot be read or brought to the model's contract.
Unexpected exceptions are logged with their traceback and answered as 422. Uploads are written into a
``tempfile.TemporaryDirectory`` that is removed when the request ends, under names reduced to safe characters
(no path from the client is ever used on disk). The model is loaded once, when the app is created, and runs on
CPU in a worker thread (at most ``workers`` records at a time) so the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..artifact.calibration import UNCERTAIN_BAND
from ..artifact.outputs import OutputSpec
from ..exceptions import (
    CorruptRecordError,
    EcglensError,
    LeadError,
    SamplingRateError,
    SignalQualityError,
    UnitError,
    UnsupportedFormatError,
)
from ..io.archive import ARCHIVE_SUFFIXES, ArchiveError, ArchiveLimits, extract_archive, is_archive, safe_filename
from ..io.registry import companion_of, record_file, record_suffixes
from ..io.wfdb_header import is_plain_file_name
from ..jsonutil import json_ready
from ..predict.postprocess import calibrate_record

__all__ = ["ServeError", "UploadLimits", "accepted_suffixes", "create_app", "safe_filename"]

logger = logging.getLogger("ecglens.serve")

_MB = 1024 * 1024
_FIELD = "file"
_TMP_PREFIX = "ecglens-upload-"
#: the per-request temporary folder as it may appear in error messages (removed from them)
_TMP_PATH = re.compile(r"[^\s'\"]*" + _TMP_PREFIX + r"[^/\s'\"]*/(?:unzipped/)?")
#: exception class -> (HTTP status, error code); looked up along the exception's MRO
_ERROR_STATUS: dict[type[BaseException], tuple[int, str]] = {
    UnsupportedFormatError: (415, "unsupported_format"),
    CorruptRecordError: (422, "corrupt_record"),
    LeadError: (422, "lead_error"),
    SamplingRateError: (422, "sampling_rate_error"),
    UnitError: (422, "unit_error"),
    SignalQualityError: (422, "signal_quality_error"),
    EcglensError: (422, "unreadable_record"),
}


class ServeError(Exception):
    """An upload the service refuses: HTTP ``status``, a short ``code`` and a message saying how to fix it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = int(status), code, message


#: ArchiveError.kind -> (HTTP status, error code) of a refused archive upload
_ARCHIVE_STATUS: dict[str, tuple[int, str]] = {
    "unsafe": (400, "unsafe_zip"), "duplicate": (400, "duplicate_file"), "too_large": (413, "zip_too_large"),
    "too_many_members": (413, "zip_too_many_entries"), "corrupt": (422, "corrupt_zip"),
}


def accepted_suffixes() -> tuple[str, ...]:
    """What an upload may hold: the suffixes of every reader that needs no options (from the reader registry),
    their companion files, and the archive suffixes (an archive is unpacked first)."""
    return (*sorted(record_suffixes()), *ARCHIVE_SUFFIXES)


class _BodyTooLarge(Exception):
    """Raised by the counting ``receive`` once the request body passes the limit."""


@dataclass(frozen=True)
class UploadLimits:
    """Limits on one ``POST /predict`` request.

    Parameters
    ----------
    max_bytes : int
        Largest request body (all files together), bytes.
    max_files : int
        Most files per request.
    max_zip_entries : int
        Most members inside an uploaded archive (.zip, .tar, .tar.gz).
    max_unzipped_bytes : int
        Largest total size of an archive's content once unpacked, bytes (against zip bombs; the compression
        ratio is limited as in :class:`~ecglens.io.archive.ArchiveLimits`).
    """

    max_bytes: int = 20 * _MB
    max_files: int = 4
    max_zip_entries: int = 16
    max_unzipped_bytes: int = 100 * _MB

    def to_dict(self) -> dict[str, Any]:
        return {"max_upload_mb": round(self.max_bytes / _MB, 3), "max_files": self.max_files,
                "max_zip_entries": self.max_zip_entries,
                "max_unzipped_mb": round(self.max_unzipped_bytes / _MB, 3),
                "accepted_suffixes": list(accepted_suffixes())}

    @property
    def archive(self) -> ArchiveLimits:
        """The limits of an uploaded archive, for :func:`~ecglens.io.archive.extract_archive`."""
        return ArchiveLimits(max_members=self.max_zip_entries, max_bytes=self.max_unzipped_bytes)


@dataclass
class _State:
    """What the app holds between requests."""

    predictor: Any
    limits: UploadLimits
    workers: int
    plot_dpi: float
    tmp_dir: str | None
    served: dict[str, Any]
    page: str
    _limiter: tuple[Any, anyio.CapacityLimiter] | None = field(default=None, repr=False)

    def limiter(self) -> anyio.CapacityLimiter:
        """A capacity limiter bound to the running event loop (created on first use in each loop)."""
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._limiter[0] is not loop:
            self._limiter = (loop, anyio.CapacityLimiter(self.workers))
        return self._limiter[1]


# ============================================================================================ helpers
def _error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": message, "status": status}, status_code=status,
                        headers={"Cache-Control": "no-store"})


def _status_of(err: BaseException) -> tuple[int, str]:
    """HTTP status and error code of an ecglens error (by the first class of its MRO in the table)."""
    for cls in type(err).__mro__:
        if cls in _ERROR_STATUS:
            return _ERROR_STATUS[cls]
    return 422, "unreadable_record"


def _counting_receive(receive: Any, limit: int) -> Any:
    """Wrap an ASGI ``receive`` so that more than ``limit`` body bytes raise :class:`_BodyTooLarge`."""
    seen = 0

    async def wrapped() -> Mapping[str, Any]:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge(seen)
        return message

    return wrapped


def _too_large(limits: UploadLimits) -> ServeError:
    return ServeError(413, "upload_too_large", f"The upload is larger than {limits.max_bytes / _MB:g} MB. Upload "
                      "one record (a 10 s 12-lead ECG is well under 1 MB), or start the server with a larger "
                      "--max-upload-mb.")


def _check_request(request: Request, limits: UploadLimits) -> None:
    """Refuse, before reading the body, a request that is not multipart or declares too many bytes."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise ServeError(415, "unsupported_media_type", f"Send the record's files as multipart/form-data in the "
                         f"field '{_FIELD}' (got content type {ctype or 'none'!r}).")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise ServeError(400, "bad_request", f"Invalid Content-Length header {length!r}.")
        if int(length) > limits.max_bytes:
            raise _too_large(limits)


async def _read_form(request: Request, limits: UploadLimits) -> Any:
    """Parse the multipart body, counting streamed bytes and files (stops at the first limit passed)."""
    counted = Request(request.scope, _counting_receive(request.receive, limits.max_bytes))
    try:
        return await counted.form(max_files=limits.max_files, max_fields=8)
    except _BodyTooLarge:
        raise _too_large(limits) from None
    except StarletteHTTPException as err:
        detail = str(err.detail)
        if "Too many files" in detail:
            raise ServeError(400, "too_many_files", f"Too many files: upload at most {limits.max_files} files "
                             "forming one record (e.g. NAME.hea + NAME.dat), or one .zip.") from None
        raise ServeError(400, "bad_request", f"Malformed multipart upload ({detail}).") from None


def _uploads(form: Any, limits: UploadLimits) -> list[UploadFile]:
    """The uploaded files of the form (field ``file``, else any file field)."""
    uploads = [v for v in form.getlist(_FIELD) if isinstance(v, UploadFile)]
    uploads = uploads or [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if not uploads:
        raise ServeError(400, "no_file", f"No file received: send the record's file(s) in the form field "
                         f"'{_FIELD}'.")
    if len(uploads) > limits.max_files:
        raise ServeError(400, "too_many_files", f"Too many files ({len(uploads)}): upload at most "
                         f"{limits.max_files} files forming one record, or one .zip.")
    return uploads


def _save_uploads(uploads: Sequence[UploadFile], folder: Path) -> list[Path]:
    """Write the uploaded files into ``folder`` under safe names (runs in a worker thread); returns the paths."""
    paths: list[Path] = []
    for i, upload in enumerate(uploads):
        target = folder / safe_filename(upload.filename, default=f"upload{i}")
        if target in paths:
            raise ServeError(400, "duplicate_file", f"Two uploaded files are both named {target.name!r}; upload "
                             "each file of the record once.")
        upload.file.seek(0)
        with open(target, "wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        paths.append(target)
    return paths


# ============================================================================================ the record
def _expand(paths: list[Path], folder: Path, limits: UploadLimits) -> list[Path]:
    """Replace an uploaded archive by its files (an archive must come alone), unpacked by the shared
    :func:`~ecglens.io.archive.extract_archive` under the upload limits."""
    archives = [p for p in paths if is_archive(p)]
    if not archives:
        return paths
    if len(paths) > 1:
        raise ServeError(400, "mixed_upload", "Upload either one archive (.zip, .tar, .tar.gz) holding one record "
                         "or the record's files, not both.")
    try:
        return list(extract_archive(archives[0], folder / "unzipped", limits.archive))
    except ArchiveError as err:
        status, code = _ARCHIVE_STATUS.get(err.kind, (422, "corrupt_zip"))
        raise ServeError(status, code, f"{err} Upload one record.") from None


def _wfdb_signal_files(header: Path) -> set[str]:
    """File names a WFDB header refers to: signal files, or the segment headers of a multi-segment record
    (empty when it cannot be parsed; the reader will say why)."""
    try:
        lines = [ln.split() for ln in header.read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        n_sig = int(lines[0][1]) if len(lines[0]) > 1 else 0
        if "/" in lines[0][0]:  # a multi-segment record lists segment headers, not signal files
            n_seg = int(lines[0][0].split("/", 1)[1])
            return {f"{parts[0]}.hea" for parts in lines[1:1 + n_seg] if parts and parts[0] != "~"}
        return {parts[0] for parts in lines[1:1 + n_sig] if parts and parts[0] != "~"}
    except (OSError, ValueError, IndexError):
        return set()


def _uploaded(folder: Path, name: str) -> bool:
    """True when ``name`` is a bare file name present in the upload's own folder. Any other name (``/etc/x``,
    ``../x``) counts as not uploaded without looking at that path, so that an answer never tells whether a
    file exists on the server."""
    return is_plain_file_name(name) and (folder / name).is_file()


def _pick_record(paths: Sequence[Path]) -> Path:
    """The file to read: the one record file of the upload, as the reader registry tells record files from
    their companions (a WFDB header needs its signal files)."""
    known = record_suffixes()
    unsupported = [p.name for p in paths if p.suffix.lower() not in known]
    if unsupported:
        raise ServeError(415, "unsupported_file_type", f"Unsupported file type: {', '.join(unsupported)}. Upload "
                         f"one ECG record ({', '.join(accepted_suffixes())}); a WFDB record as its .hea together "
                         "with its .dat or .mat.")
    companions = {p: companion_of(p) for p in paths}
    primary = [p for p in paths if companions[p] is None]
    if not primary:
        needed = ", ".join(sorted({main.name for main in companions.values() if main is not None}))
        raise ServeError(422, "missing_header", f"{', '.join(p.name for p in paths) or 'The upload'} needs its "
                         f"record file ({needed}): select it together with the signal file(s).")
    if len(primary) > 1:
        names = ", ".join(p.name for p in primary)
        raise ServeError(400, "several_records", f"The upload holds several records ({names}); upload one record "
                         "per request.")
    record = primary[0]
    if record_file(record) == record:
        missing = sorted(name for name in _wfdb_signal_files(record) if not _uploaded(record.parent, name))
        if missing:
            raise ServeError(422, "missing_signal_file", f"{record.name} refers to {', '.join(missing)}, which was "
                             "not uploaded: select the header and its signal file(s) together.")
    elif len(paths) > 1:
        raise ServeError(400, "extra_files", f"{record.name} is a complete record; do not add other files "
                         f"({', '.join(p.name for p in paths if p != record)}).")
    return record


def _read_record(path: Path) -> tuple[Any, str]:
    """Read the record with the reader registry; returns ``(ecg, format name)``."""
    from ..io import detect_format, read_ecg

    fmt, real = detect_format(path)
    try:
        return read_ecg(real, format=fmt), fmt
    except EcglensError:
        raise
    except Exception as err:  # noqa: BLE001 - third-party parsers raise anything on damaged files
        logger.info("reader %s failed on %s: %r", fmt, path.name, err)
        raise CorruptRecordError(f"{path.name} could not be read as {fmt} ({type(err).__name__}: {err}). The file "
                                 "is damaged or incomplete; export the record again.") from None


def _plot_source(ecg: Any, prepared: Any) -> Any:
    """The record to draw: the harmonised one (mV, contract leads) when it has the 12 standard leads."""
    from ..leads import CANONICAL_LEADS

    harmonised = prepared.ecg
    if harmonised is not None and set(CANONICAL_LEADS) <= set(harmonised.leads):
        return harmonised
    try:
        return ecg.to_standard_leads(CANONICAL_LEADS, derive=True)
    except EcglensError:
        return ecg  # missing leads are drawn blank and labelled by plot_ecg


def _plot_png(ecg: Any, dpi: float) -> str | None:
    """Base64 PNG of the 12-lead plot (``None``, logged, if drawing fails: the prediction still stands)."""
    from ..plot import plot_ecg

    buf = io.BytesIO()
    try:
        plot_ecg(ecg, path=buf, dpi=dpi)
    except Exception:  # a plotting problem must not lose the prediction
        logger.exception("plotting %s failed", getattr(ecg, "record_id", "?"))
        return None
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _ecg_summary(ecg: Any) -> dict[str, Any]:
    return {"fs": float(ecg.fs), "n_samples": int(ecg.n_samples), "seconds": ecg.n_samples / float(ecg.fs),
            "leads": list(ecg.leads), "derived_leads": list(ecg.derived_leads)}


def _analyse(state: _State, record_path: Path) -> dict[str, Any]:
    """Read, harmonise, predict and plot one record (runs in a worker thread)."""
    predictor = state.predictor
    record = record_path.stem
    t0 = time.perf_counter()
    ecg, fmt = _read_record(record_path)
    t1 = time.perf_counter()
    prepared = predictor.adapter.prepare(ecg, record=record, keep_ecg=True)
    prediction = predictor.predict_prepared(prepared)
    t2 = time.perf_counter()
    png = _plot_png(_plot_source(ecg, prepared), state.plot_dpi)
    t3 = time.perf_counter()
    shown = calibrate_record(prediction.outputs, predictor, ecg.age)
    outputs = shown["outputs"]
    return {
        "record": record, "format": fmt, "outputs": outputs, "raw_outputs": shown["raw"],
        "uncertainty": {k[: -len("_std")]: v for k, v in outputs.items() if k.endswith("_std")},
        "age_gap": shown["age_gap"], "age_gap_corrected": shown["age_gap_corrected"], "calls": shown["calls"],
        "uncertain_band": list(UNCERTAIN_BAND), "calibration": shown["calibration"],
        "window_spread": dict(prediction.window_spread), "n_windows": prediction.n_windows,
        "flags": list(prediction.flags), "warnings": list(prediction.warnings),
        "recorded": {"age": ecg.age, "sex": ecg.sex}, "ecg": _ecg_summary(ecg),
        "model": {k: state.served[k] for k in ("name", "architecture", "task", "backend", "outputs")},
        "input_contract": state.served["input_contract"],
        "timing_ms": {"read": 1e3 * (t1 - t0), "predict": 1e3 * (t2 - t1), "plot": 1e3 * (t3 - t2)},
        "plot_png": png, "plot_mime": "image/png",
    }


def _process_upload(state: _State, uploads: Sequence[UploadFile], folder: Path) -> dict[str, Any]:
    """Save, unpack, pick the record and analyse it (runs in a worker thread)."""
    files = _expand(_save_uploads(uploads, folder), folder, state.limits)
    return _analyse(state, _pick_record(files))


async def _handle_predict(request: Request, state: _State) -> dict[str, Any]:
    """The body of ``POST /predict``; raises ServeError / EcglensError for refused uploads."""
    _check_request(request, state.limits)
    form = await _read_form(request, state.limits)
    try:
        with tempfile.TemporaryDirectory(prefix=_TMP_PREFIX, dir=state.tmp_dir,
                                         ignore_cleanup_errors=True) as tmp:
            work = functools.partial(_process_upload, state, _uploads(form, state.limits), Path(tmp))
            return await anyio.to_thread.run_sync(work, limiter=state.limiter())
    finally:
        await form.close()


# ============================================================================================ models
def _contract_of(preprocess: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The input contract of a preprocess spec, with ``n_samples``, units and a one-line description."""
    from ..signal.transforms import Preprocess

    if preprocess is None:
        return None
    pre = Preprocess.from_dict(preprocess)
    return {**pre.to_dict(), "n_samples": pre.n_samples, "units": "mV", "description": pre.describe()}


def _card(name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What ``/models`` says about a checkpoint, from its JSON description."""
    model, task = meta.get("model") or {}, meta.get("task") or {}
    return {"name": name, "architecture": model.get("name"), "task": task.get("name"),
            "outputs": list(OutputSpec.from_dict(task).output_names), "in_leads": model.get("in_leads"),
            "input_contract": _contract_of(meta.get("preprocess")), "metrics": meta.get("metrics") or {},
            "calibration": meta.get("calibration"),
            "ecglens_version": meta.get("ecglens_version"), "created": meta.get("created")}


def _shipped_cards() -> list[dict[str, Any]]:
    """Cards of the shipped checkpoints and exported files (a damaged one is listed with its error)."""
    from ..artifact import (
        list_pretrained,
        list_shipped_exports,
        read_checkpoint_metadata,
        read_onnx_metadata,
        shipped_export,
    )

    cards = []
    readers = [(name, read_checkpoint_metadata) for name in list_pretrained()]
    readers += [(name, lambda n: read_onnx_metadata(shipped_export(n))) for name in list_shipped_exports()]
    for name, read in readers:
        try:
            cards.append(_card(name, read(name)))
        except Exception as err:  # noqa: BLE001 - one bad file must not hide the others
            cards.append({"name": name, "error": str(err)})
    return cards


def _served_card(predictor: Any) -> dict[str, Any]:
    ckpt = predictor.checkpoint
    meta = dict(getattr(ckpt, "meta", None) or {})
    meta.setdefault("model", {"name": ckpt.model_name, "in_leads": ckpt.in_leads})
    meta.setdefault("task", ckpt.task.to_dict())
    meta["preprocess"] = predictor.preprocess.to_dict()
    path = getattr(ckpt, "path", None)
    card = _card(Path(path).stem if path else ckpt.model_name, meta)
    return {**card, "backend": predictor.backend_name, "label": predictor.model_label}


def _load_predictor(model: Any, backend: str) -> Any:
    """A Predictor from a shipped name, a model file (``.safetensors``, ``.onnx``) or a Predictor."""
    from ..predict import Predictor

    if isinstance(model, Predictor):
        return model
    return Predictor.from_pretrained(model, backend=backend)


def _page() -> str:
    """The upload page, its file chooser accepting :func:`accepted_suffixes`."""
    page = (resources.files(__package__) / "static" / "index.html").read_text(encoding="utf-8")
    return page.replace("{{ACCEPT}}", ",".join(accepted_suffixes()))


# ============================================================================================ the app
def _check_limits(max_upload_mb: float, max_files: int, workers: int) -> None:
    from ..exceptions import ConfigError

    if not (isinstance(max_upload_mb, (int, float)) and max_upload_mb > 0):
        raise ConfigError(f"max_upload_mb must be a positive number of megabytes, got {max_upload_mb!r}.")
    if int(max_files) < 1 or int(workers) < 1:
        raise ConfigError(f"max_files and workers must be at least 1, got {max_files!r} and {workers!r}.")


def create_app(model: Any = "age-sex", max_upload_mb: float = 20, max_files: int = 4, *, backend: str = "torch",
               workers: int = 2, max_zip_entries: int = 16, max_unzipped_mb: float = 100, plot_dpi: float = 110,
               tmp_dir: str | os.PathLike[str] | None = None) -> FastAPI:
    """Build the web service (the model is loaded here, once).

    Parameters
    ----------
    model : str or path or Predictor
        A shipped model name (``"age-sex"``), a ``.safetensors`` checkpoint, an exported ``.onnx`` file, or a
        ready :class:`~ecglens.predict.Predictor`.
    max_upload_mb : float
        Largest request body in MB (all files of the record together).
    max_files : int
        Most files per request.
    backend : {"torch", "onnx"}
        Prediction backend for a checkpoint (an ``.onnx`` file always uses onnxruntime).
    workers : int
        Records analysed at the same time (each in a worker thread).
    max_zip_entries, max_unzipped_mb : int, float
        Limits on an uploaded zip (entries; unpacked size in MB).
    plot_dpi : float
        Resolution of the returned plot.
    tmp_dir : path, optional
        Parent folder of the per-request temporary folders (default: the system's).

    Returns
    -------
    fastapi.FastAPI
        With routes ``/``, ``/predict``, ``/models``, ``/health`` (see the module docstring).

    Raises
    ------
    CheckpointError
        When the model cannot be loaded (the message lists the shipped models).
    """

    _check_limits(max_upload_mb, max_files, workers)
    predictor = _load_predictor(model, backend)
    limits = UploadLimits(max_bytes=int(max_upload_mb * _MB), max_files=int(max_files),
                          max_zip_entries=int(max_zip_entries), max_unzipped_bytes=int(max_unzipped_mb * _MB))
    state = _State(predictor=predictor, limits=limits, workers=int(workers), plot_dpi=float(plot_dpi),
                   tmp_dir=None if tmp_dir is None else os.fspath(tmp_dir), served=_served_card(predictor),
                   page=_page())
    app = FastAPI(title="ecglens", version=__version__,
                  description="Upload a resting 12-lead ECG; get the plotted leads and the model's predictions.")
    app.state.ecglens = state
    _add_routes(app, state, _shipped_cards())
    return app


def _add_routes(app: FastAPI, state: _State, shipped: list[dict[str, Any]]) -> None:
    """``/``, ``/health``, ``/models`` and ``/predict``."""

    limits = state.limits

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(state.page, headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return json_ready({"status": "ok", "ecglens_version": __version__, "model": state.served["name"],
                          "backend": state.served["backend"], "limits": limits.to_dict()})

    @app.get("/models")
    async def models() -> dict[str, Any]:
        return json_ready({"served": state.served, "models": shipped, "limits": limits.to_dict()})

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        return await _predict_endpoint(request, state)


async def _predict_endpoint(request: Request, state: _State) -> JSONResponse:
    """``POST /predict``: every failure becomes a JSON 4xx error, logged; never a 500."""
    start = time.perf_counter()
    try:
        result = await _handle_predict(request, state)
    except ServeError as err:
        status, code, message = err.status, err.code, err.message
    except EcglensError as err:
        (status, code), message = _status_of(err), str(err)
    except Exception as err:  # the service answers every upload, it never crashes
        logger.exception("unexpected error while processing an upload")
        status, code = 422, "processing_failed"
        message = f"The record could not be processed ({type(err).__name__}: {err})."
    else:
        logger.info("predict %s: ok in %.0f ms", result["record"], 1e3 * (time.perf_counter() - start))
        return JSONResponse(json_ready(result), headers={"Cache-Control": "no-store"})
    message = _TMP_PATH.sub("", message)  # never show the server's folders; the file name stays
    logger.info("predict refused (%d %s): %s", status, code, message)
    return _error_response(status, code, message)
