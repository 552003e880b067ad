"""``ecglens predict``: predictions for ECG files and folders -> a table on screen or one CSV row per record.

Examples::

    ecglens predict one.hea                       # one record: its predictions as a table, no file written
    ecglens predict one.xml --output one.csv      # ... and also written to one.csv
    ecglens predict ~/ptbxl/records100 --model age-sex --output preds.csv
    ecglens predict a.hea b.xml scans/ --model runs/age_sex/model.safetensors --workers 2
    ecglens predict arrays/ --fs 500 --leads I,II,V1,V2,V3,V4,V5,V6 --units uV --output preds.csv
    ecglens predict export.zip muse_export.tar.gz --output preds.csv
    ecglens predict ~/ptbxl/records100 --device cuda --output preds.parquet
    ecglens predict ~/ptbxl/records100 --shard 3/10 --output shards/    # then: ecglens merge shards/ -o preds.csv
    ecglens predict ~/ptbxl/records100 --dask local:2 --output preds.csv
    ecglens predict other_hospital/ --site-gain auto --output preds.csv      # + preds.site-gain.json

INPUTS are files (any supported format), folders, searched recursively for the files of every supported format
(WFDB .hea + .dat/.mat, each record once; .xml, .dcm, .scp, .edf, ...; with --fs also .npy/.npz/.csv/.tsv
arrays), and .zip, .tar, .tar.gz/.tgz archives, unpacked into a private temporary folder (removed at the end)
and searched like a folder; their records are named ARCHIVE/MEMBER (export.zip/folder/rec.xml). Unsafe archives
(../ or absolute names, links, devices) and zip bombs are refused. Every record is brought to
the model's input contract (resampled, leads reordered or derived, windows for long recordings, uV converted);
what was done is listed in the ``flags`` column. A record that cannot be used gets an ``error`` row with the
reason; the job goes on, and every record found appears exactly once. Columns: record, status, message, one per
model output (e.g. age, age_std, p_female), n_windows, flags. A recording longer than the model's input window
(4 s for the shipped models) is cut into up to --max-windows windows whose predictions are averaged.

Beyond one machine: ``--shard K/N --output DIR`` predicts only shard K of N (a record's shard is a hash of its
name: deterministic, every record in exactly one shard) into ``DIR/shard-0000K-of-0000N.csv`` (``--format
parquet``: ``.parquet``) with a JSON sidecar; a rerun skips a finished shard (``--force`` redoes it), and
``ecglens merge DIR -o preds.csv`` checks and joins the shards (SLURM array jobs: docs/scale.md). ``--dask
local:4`` or ``--dask tcp://HOST:8786`` predicts on a Dask cluster (the ``distributed`` extra), each worker
loading the model once. ``--device cuda`` runs the model on a GPU (``cuda:1``, ``mps``, ``auto``).

Another hospital: ``--site-gain auto`` first measures the per-lead amplitudes of (up to 1,000 of) the inputs and
scales each lead of every input by one factor so that the site's median matches the model's training data (a
device that records the chest leads at half the usual size no longer reads as small hearts), writes the factors
to ``OUTPUT.site-gain.json`` and flags the rows ``site_gain``; ``--site-gain FILE`` applies a saved one (needed
with ``--shard``, so that every shard uses the same). See :mod:`ecglens.predict.site`.

Output: when the inputs hold a single record, its predictions are printed as a table and a file is written only
with --output. With several records, the table is written to --output (default ./preds.csv) and a summary
(inputs = ok + error, the first error reasons) is printed. Exit code 0 when at least one record was predicted,
1 when none was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_array_options", "add_device_option", "array_read_kwargs", "device_options", "register",
           "run_predict"]

#: error reasons shown in the summary
_SHOW_ERRORS = 5
#: the file written for several records when --output is not given
DEFAULT_OUTPUT = Path("preds.csv")


def add_array_options(p: argparse.ArgumentParser) -> None:
    """``--fs``, ``--leads``, ``--units``: how to read raw arrays (.npy/.npz/.csv), which carry no header."""
    g = p.add_argument_group("raw arrays (.npy, .npz, .csv, .tsv)")
    g.add_argument("--fs", type=float, default=None, help="sampling rate in Hz of raw arrays (required for them)")
    g.add_argument("--leads", default=None,
                   help="comma-separated lead names of raw arrays, e.g. I,II,V1,V2,V3,V4,V5,V6 "
                        "(default: the 12 standard leads)")
    g.add_argument("--units", default=None, help="amplitude unit of raw arrays: mV (default), uV or V")


def add_device_option(p: argparse.ArgumentParser) -> None:
    """``--device``: where the model runs (checked by :func:`ecglens.predict.device.resolve_device`)."""
    p.add_argument("--device", default="cpu",
                   help="where the model runs: cpu (default), cuda, cuda:N, mps or auto (a GPU when torch sees "
                        "one); cuda needs a CUDA build of torch (docs/scale.md)")
    p.add_argument("--precision", choices=("32", "bf16", "16"), default="32",
                   help="the network's arithmetic: 32 (float32, default), bf16 (bfloat16 autocast: faster on GPUs "
                        "and on CPUs with AVX-512 BF16 or AMX, close to but not equal to 32; docs/scale.md) or 16 "
                        "(float16 autocast, GPU only); the torch backend only")


def array_read_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Reader options from :func:`add_array_options` (only those given)."""
    kwargs: dict[str, Any] = {}
    if args.fs is not None:
        kwargs["fs"] = args.fs
    if args.leads:
        kwargs["leads"] = [name.strip() for name in args.leads.split(",") if name.strip()]
    if args.units:
        kwargs["units"] = args.units
    return kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict for ECG files / folders with a trained model -> CSV",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUTS", help="ECG files, folders and/or archives")
    p.add_argument("--model", default="age-sex", help="shipped model name or checkpoint path (default: age-sex)")
    p.add_argument("--output", "-o", type=Path, default=None,
                   help=f"table to write, .csv or .parquet; default: none for a single record (its table is "
                        f"printed), {DEFAULT_OUTPUT} for several. With --shard: the folder of the shards")
    p.add_argument("--batch-size", type=int, default=64,
                   help="model windows per forward pass (default 64; where the reading workers run the model, at "
                        "most the windows of one chunk of up to 32 records)")
    p.add_argument("--workers", type=int, default=None,
                   help="reading processes; with two or more, each also runs the model on what it read (CPU) "
                        "(default: one per usable core, at most 16; at most 4 when the model stays in the main "
                        "process: a GPU, --threads); 0 reads in the main process")
    p.add_argument("--backend", default="torch", help="inference backend: torch (default) or onnx")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads of the model; setting it keeps the model in the main process (default: "
                        "the reading processes run it on one thread each; with fewer than two, the backend's choice)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="most windows per record for recordings longer than the model's input window (each "
                        "window as long as that input, e.g. 4 s for the shipped models; default 30)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--site-gain", default=None, metavar="auto|FILE",
                   help="match the inputs' per-lead amplitudes to the model's training data (ECGs of another "
                        "hospital or device; ecglens.predict.site): auto estimates the gain from up to 1,000 of "
                        "the inputs (at least 20) and writes it next to the output as .site-gain.json; FILE "
                        "reuses such a file (the same gain for every shard of a job)")
    add_device_option(p)
    g = p.add_argument_group("beyond one machine (docs/scale.md)")
    g.add_argument("--shard", default=None, metavar="K/N",
                   help="predict only shard K of N (K from 1) into --output DIR; merge with `ecglens merge DIR`")
    g.add_argument("--format", choices=("csv", "parquet"), default=None,
                   help="with --shard: table format of the shards (default csv; parquet needs the parquet extra)")
    g.add_argument("--force", action="store_true", help="with --shard: redo a shard that is already finished")
    g.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="predict on a Dask cluster: local:N (N worker processes here) or a scheduler address "
                        "tcp://HOST:8786 (needs the distributed extra)")
    add_array_options(p)
    p.set_defaults(func=run_predict)


def _summary(table: Any, output: Path | None) -> str:
    """The summary of a run: inputs = ok + error, the file written, the first error reasons."""
    attrs = table.attrs
    head = (f"{len(table)} input(s): {attrs['n_ok']} ok, {attrs['n_error']} error; predicted with "
            f"{attrs.get('model', '?')} in {attrs['seconds']:.1f} s ({attrs['ecgs_per_s']:.1f} ECGs/s)")
    lines = [head] + ([f"wrote {output}"] if output is not None else [])
    errors = table[table["status"] == "error"]
    for _, row in errors.head(_SHOW_ERRORS).iterrows():
        record, message = str(row["record"]), str(row["message"])
        message = message.removeprefix(f"{record}: ")  # a reader's error names its file: once is enough here
        lines.append(f"  error {record}: {message}")
    if len(errors) > _SHOW_ERRORS:
        lines.append(f"  ... and {len(errors) - _SHOW_ERRORS} more (see the status/message columns)")
    return "\n".join(lines)


def _record_table(table: Any) -> str:
    """One record's row as a ``column  value`` table (empty columns left out)."""
    row = table.iloc[0]
    shown = [(name, value) for name, value in row.items() if not (isinstance(value, str) and value == "")]
    width = max(len(str(name)) for name, _ in shown)
    return "\n".join(f"{name:<{width}}  {value:.4g}" if isinstance(value, float) else f"{name:<{width}}  {value}"
                     for name, value in shown)


def device_options(args: argparse.Namespace, check: bool = True) -> dict[str, Any]:
    """``{"device": ..., "precision": ...}`` for ``Predictor.from_pretrained`` from ``--device`` and
    ``--precision`` (each left out at its default: the CPU, 32), the device checked here
    (:func:`~ecglens.predict.device.resolve_device`) unless ``check`` is False (remote workers check it)."""
    from ..artifact.formats import model_format
    from ..exceptions import ConfigError
    from ..predict.device import resolve_device

    device = resolve_device(args.device) if check else str(args.device)
    precision = str(getattr(args, "precision", "32"))
    options = {k: v for k, v, default in (("device", device, "cpu"), ("precision", precision, "32")) if v != default}
    if not options:
        return {}
    fmt = model_format(args.model)
    backend = fmt.backend if fmt is not None and fmt.backend_only else args.backend
    if backend != "torch":
        given = " ".join(f"--{k} {getattr(args, k)}" for k in options)
        raise ConfigError(f"{given} applies to the torch backend; the {backend} backend runs an exported file as "
                          "exported, on the CPU. Predict a .safetensors checkpoint or shipped model with --backend "
                          "torch (for 8-bit integers on a CPU: a shipped -int8 model, or `ecglens export --int8`).")
    if check and "precision" in options:
        from ..artifact.precision import check_precision

        check_precision(precision, device.split(":")[0])
    return options


def _predictor_options(args: argparse.Namespace, check_device: bool = True) -> dict[str, Any]:
    """``Predictor.from_pretrained`` keywords from the options."""
    from ..predict import DEFAULT_MAX_WINDOWS

    options: dict[str, Any] = {"max_windows": args.max_windows if args.max_windows is not None
                               else DEFAULT_MAX_WINDOWS, **device_options(args, check_device)}
    if args.threads:
        options["num_threads"] = args.threads
    if args.site_gain is not None and args.site_gain != "auto":
        from ..predict.site import SiteGain

        options["site_gain"] = SiteGain.load(args.site_gain).to_dict()
    return options


def _sha256(path: Any) -> str | None:
    import hashlib

    if path is None or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Job:
    """Predicts records in this process (the model loaded on first use) or on a Dask cluster."""

    def __init__(self, args: argparse.Namespace, client: Any) -> None:
        self.args, self.client, self._predictor = args, client, None
        remote = bool(args.dask) and not str(args.dask).strip().startswith("local")
        self.options = _predictor_options(args, check_device=not remote)
        if client is not None and not remote and "num_threads" not in self.options:
            import os  # local workers share this machine: split its cores between them

            n_workers = max(1, len(client.nthreads()))
            self.options["num_threads"] = max(1, (os.cpu_count() or 1) // n_workers)
        self.model_label: str | None = None

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            from ..predict import Predictor

            self._predictor = Predictor.from_pretrained(self.args.model, backend=self.args.backend, **self.options)
            self.model_label = self._predictor.model_label
        return self._predictor

    def __call__(self, records: list[tuple[str, Path]]) -> Any:
        """The table of ``records`` (columns and attrs of ``Predictor.predict_paths``)."""
        import time

        from ..predict.shard import table_attrs

        args = self.args
        if self.client is not None:
            from ..predict.distributed import predict_distributed

            table = predict_distributed(args.model, records=records, client=self.client, backend=args.backend,
                                        batch_size=args.batch_size, read_kwargs=array_read_kwargs(args),
                                        progress=not args.no_progress, **self.options)
            self.model_label = table.attrs["model"]
            return table
        start = time.perf_counter()
        p = self.predictor
        rows = list(p.iter_predict(records, progress=not args.no_progress, batch_size=args.batch_size,
                                   workers=args.workers, read_kwargs=array_read_kwargs(args)))
        return table_attrs(p.rows_table(rows), time.perf_counter() - start,
                           model=p.model_label, backend=p.backend_name)

    def describe(self) -> dict[str, Any]:
        """Sidecar fields of a shard: the model's label and file hash."""
        from ..artifact.checkpoint import resolve_checkpoint

        path: Path | None = Path(self.args.model)
        if not path.is_file():
            try:
                path = resolve_checkpoint(str(self.args.model))
            except Exception:  # noqa: BLE001 - the hash is a check, not a need
                path = None
        return {"model_label": self.model_label, "model_sha256": _sha256(path)}


def _check_output(args: argparse.Namespace) -> tuple[int, int] | None:
    """The shard (K, N) and a checked --output, before anything is loaded."""
    from ..exceptions import ConfigError
    from ..predict.shard import TABLE_FORMATS, parse_shard, table_format

    if args.shard is not None and args.site_gain == "auto":
        raise ConfigError("--site-gain auto would estimate a different gain in every shard. Estimate it once "
                          "(`ecglens predict INPUTS --site-gain auto -o sample.csv`, on all inputs or a broad "
                          "sample) and pass the file it writes: --site-gain sample.site-gain.json.")
    if args.shard is None:
        if args.format is not None or args.force:
            flag = "--format" if args.format is not None else "--force"
            raise ConfigError(f"{flag} applies to --shard; without it the table's format follows the --output "
                              "suffix (.csv or .parquet) and an existing --output file is replaced.")
        if args.output is not None:
            table_format(args.output)
        return None
    shard = parse_shard(args.shard)
    if args.output is None or args.output.suffix.lower() in TABLE_FORMATS:
        raise ConfigError("with --shard, --output names the folder of the shards (e.g. --output shards/); each "
                          "shard writes DIR/shard-K-of-N.csv (--format parquet for .parquet).")
    return shard


def run_predict(args: argparse.Namespace) -> int:
    """Run ``ecglens predict``; returns the exit code."""
    from contextlib import nullcontext

    from ..predict.records import find_records, unpacked_archives
    from ..predict.workers import keep_freed_memory

    keep_freed_memory()  # a short-lived process: no page faults per array (see the function)
    from ..predict.shard import write_table

    shard = _check_output(args)
    client_ctx: Any = nullcontext()
    if args.dask:
        from ..predict.distributed import dask_client

        client_ctx = dask_client(args.dask)
    with unpacked_archives(), client_ctx as client:
        job = _Job(args, client)
        if shard is not None:
            return _run_shard(args, job, shard)
        if args.site_gain == "auto":
            records = _find(args, find_records)
            gain = job.predictor.estimate_site_gain(records, workers=args.workers,
                                                    read_kwargs=array_read_kwargs(args), progress=not args.no_progress)
            job.predictor.site_gain = gain
            job.options["site_gain"] = gain.to_dict()
            site_file = gain.save(_site_gain_path(args.output if args.output is not None else DEFAULT_OUTPUT))
            print(f"{gain.describe()}\nwrote {site_file}", file=sys.stdout)
            table = job(records)
        elif client is None:
            table = job.predictor.predict_paths([str(p) for p in args.inputs], progress=not args.no_progress,
                                                batch_size=args.batch_size, workers=args.workers,
                                                read_kwargs=array_read_kwargs(args))
        else:
            table = job(_find(args, find_records))
    single = len(table) == 1
    output = args.output if args.output is not None or single else DEFAULT_OUTPUT
    if output is not None:
        write_table(table, output)
    if single:
        print(_record_table(table), file=sys.stdout)
        if output is not None:
            print(f"wrote {output}", file=sys.stdout)
    else:
        print(_summary(table, output), file=sys.stdout)
    tip = _int8_tip(args, len(table))
    if tip:
        print(tip, file=sys.stderr)
    return 0 if table.attrs["n_ok"] > 0 else 1


#: records from which a batch job on a float model that has a shipped int8 file is told about that file
INT8_TIP_RECORDS = 1000


def _int8_tip(args: argparse.Namespace, n_records: int) -> str | None:
    """A hint for a large CPU job on a shipped float model whose int8 file is shipped too (``age-sex`` ->
    ``age-sex-int8``); None otherwise (small jobs, checkpoint paths, a GPU, the onnx backend)."""
    from ..artifact.formats import list_shipped_exports

    name = str(args.model)
    if (n_records < INT8_TIP_RECORDS or args.backend != "torch" or (args.device or "cpu") != "cpu"
            or str(getattr(args, "precision", "32")) != "32"
            or f"{name}-int8" not in list_shipped_exports()):
        return None
    return (f"tip: for large jobs on a CPU, --model {name}-int8 runs this network with 8-bit integer weights "
            f"(onnxruntime, `pip install \"ecglens[export]\"`), faster on a CPU (README, Benchmarks); its card states "
            f"its accuracy against this model (`ecglens info {name}-int8`).")


def _site_gain_path(output: Path) -> Path:
    """Where ``--site-gain auto`` writes the gain: beside the output table (``preds.csv`` ->
    ``preds.site-gain.json``)."""
    return output.with_name(output.stem + ".site-gain.json")


def _find(args: argparse.Namespace, find_records: Any) -> list[tuple[str, Path]]:
    """Every record of INPUTS, or a clear error when there is none."""
    from ..exceptions import EcglensError

    records = find_records([str(p) for p in args.inputs], with_arrays=args.fs is not None)
    if not records:
        raise EcglensError(f"no ECG records found in {', '.join(map(str, args.inputs))}. Give ECG files or folders "
                           "holding .hea/.dat, .mat, .xml or .dcm records (raw arrays need --fs).")
    return records


def _run_shard(args: argparse.Namespace, job: _Job, shard: tuple[int, int]) -> int:
    """``--shard K/N``: predict one shard into --output DIR, or skip it when it is finished."""
    from ..predict.records import find_records
    from ..predict.shard import run_shard

    k, n = shard
    records = _find(args, find_records)
    identity = {"model": args.model, "backend": args.backend, "inputs": [str(p) for p in args.inputs],
                "options": {"read": array_read_kwargs(args), "max_windows": job.options["max_windows"],
                            "site_gain": job.options.get("site_gain")}}
    if "precision" in job.options:  # float32 shards keep the identity they had before --precision existed
        identity["options"]["precision"] = job.options["precision"]
    result = run_shard(records, k, n, args.output, job, identity, fmt=args.format or "csv", force=args.force,
                       describe=job.describe)
    side = result.sidecar
    if result.skipped:
        print(f"shard {k}/{n} is already finished ({result.path}: {side['n_records']} records, {side['n_ok']} ok, "
              f"{side['n_error']} error); skipped. --force redoes it.")
        return 0
    print(f"shard {k}/{n}: " + _summary(result.table, result.path)
          + f"\n({side['n_records']} of the job's {side['n_inputs']} records; merge all {n} shards with "
            f"`ecglens merge {args.output}`)")
    return 0 if side["n_ok"] > 0 or side["n_records"] == 0 else 1
