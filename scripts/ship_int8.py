"""Ship an int8 ONNX file in the package: its own metrics written into its description, and its model card.

An int8 file made by ``ecglens export NAME --onnx FILE --int8 CACHE`` carries the description of the checkpoint it
was made from, metrics included: those are the float model's. This script replaces them by the int8 file's own
(``ecglens evaluate FILE ...``: its ``metrics.json``, in the flat form checkpoints store: ``age_mae``,
``age_mae_ci``, ...), keeps the float model's under ``float_metrics``, writes the file to
``src/ecglens/weights/NAME.onnx`` (then ``ecglens predict --model NAME`` finds it) and writes its card
``NAME.md`` from those files and the paired comparison with the float model (``scripts/compare_predictions.py
... --json``). Every number in the card is read from them. Needs the ``onnx`` package (``ecglens[export]``).

Example (the shipped ``age-sex-int8``; ``age-sex-fast-int8`` likewise)::

    ecglens export age-sex --onnx runs/int8/age-sex-int8.onnx --int8 cache/ptbxl100 --int8-folds 1-8
    ecglens evaluate runs/int8/age-sex-int8.onnx cache/ptbxl100 --folds 9 --out eval/int8_age-sex_fold9
    python scripts/ship_int8.py runs/int8/age-sex-int8.onnx eval/int8_age-sex_fold9 --name age-sex-int8 \\
        --float age-sex --paired docs/results/int8/int8_paired_age-sex.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_model import MAX_MB, WEIGHTS, _describe, _metric_rows  # noqa: E402

from ecglens.artifact import OutputSpec  # noqa: E402
from ecglens.artifact.calibration import Calibration  # noqa: E402
from ecglens.artifact.onnx import META_KEY  # noqa: E402
from ecglens.evaluate.calibration_report import checkpoint_metrics, in_sample_note  # noqa: E402


def _paired_lines(paired: dict[str, Any]) -> list[str]:
    names = paired.get("names") or ["int8", "float"]
    lines = [f"Paired by record against the float model ({names[0]} - {names[1]}, "
             f"{next(iter(v['n_boot'] for v in paired.values() if isinstance(v, dict)))} resamples):", ""]
    for key, r in paired.items():
        if isinstance(r, dict) and "diff" in r:
            lines.append(f"- {key}: {r['value_a']:.4f} vs {r['value_b']:.4f}, {r['diff']:+.4f} "
                         f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] (n = {r['n']})")
    return lines


def _card(name: str, float_name: str, document: dict[str, Any], results: dict[str, Any], paired: dict | None,
          commands: list[str]) -> str:
    pre, int8 = document.get("preprocess") or {}, document["onnx"]["int8"]
    outputs = OutputSpec.from_dict(document["task"]).output_names
    folds = (results.get("provenance") or {}).get("folds")
    lines = [
        f"# Model card: `{name}`", "",
        f"The int8 version of `{float_name}` (its card describes the network, its training and calibration): the "
        "same outputs (" + ", ".join(_describe(o) for o in outputs) + "), computed by onnxruntime with 8-bit "
        "integer convolutions and matrix products on a CPU. It needs onnxruntime (`pip install \"ecglens[export]\"`) "
        "and no PyTorch.", "",
        "## Model", "",
        f"- `{document['model']['name']}` with `{json.dumps(document['model'].get('kwargs') or {})}`, exported from "
        f"`{float_name}` (ecglens {document.get('ecglens_version')}"
        + (f", commit {document['commit']}" if document.get("commit") else "") + ")",
        f"- quantization: {int8.get('method', '')}; {int8.get('calibration', '')}",
        f"- file: `{name}.onnx` (ONNX graph + the JSON description of `ecglens info {name}`)", "",
        "## Input contract (stored in the file; `Predictor` brings any input to it)", "",
        f"- `{json.dumps(pre)}`",
        "- signal in mV, leads in canonical order; other rates are resampled; longer records are split into windows "
        f"of {pre.get('seconds', 0):g} s covering them evenly and the outputs averaged", "",
        f"## Metrics on PTB-XL fold {', '.join(str(f) for f in folds or [])} ({results['n_records']} ECGs; "
        f"{results['ci']}, "
        f"{results['n_boot']} resamples by record)", "",
        "Fold 9 selected the float model's epoch and the quantization setting (docs/scale.md), so these are "
        "validation numbers; the blind fold 10 is the honest test.", "",
        *_metric_rows(results), "",
        *(_paired_lines(paired) + [""] if paired else []),
        "## Calibration", "",
        f"The float model's, unchanged (`ecglens info {name}`); "
        + (in_sample_note(Calibration.from_dict(document.get("calibration")), folds)
           or "fitted on other folds than these."), "",
        "## How it was made", "", "```bash", *commands, "```", "",
        "## Limits", "",
        f"- Those of `{float_name}` (one German database, PTB-XL; age above 89 coded 90); quantization adds a small "
        "error of its own (above): check your data with `ecglens evaluate`.",
        "- Not a medical device; research use only.", "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("onnx_file", type=Path, help="an int8 file written by `ecglens export --int8`")
    ap.add_argument("eval", type=Path, help="the `ecglens evaluate` folder of that file (metrics.json)")
    ap.add_argument("--name", required=True, help="the shipped name (e.g. age-sex-int8)")
    ap.add_argument("--float", dest="float_name", required=True, help="the shipped model it was made from")
    ap.add_argument("--paired", type=Path, default=None, help="JSON of scripts/compare_predictions.py (int8, float)")
    ap.add_argument("--weights-dir", type=Path, default=WEIGHTS, help="where to write (default: the package's)")
    args = ap.parse_args()
    import onnx

    size_mb = args.onnx_file.stat().st_size / 1e6
    if size_mb > MAX_MB:
        raise SystemExit(f"{args.onnx_file} is {size_mb:.1f} MB; shipped files must stay under {MAX_MB} MB")
    proto = onnx.load(str(args.onnx_file))
    props = {p.key: p for p in proto.metadata_props}
    document = json.loads(props[META_KEY].value)
    if "int8" not in (document.get("onnx") or {}):
        raise SystemExit(f"{args.onnx_file} is not an int8 file of `ecglens export --int8`.")
    results = json.loads((args.eval / "metrics.json").read_text())
    document["float_metrics"] = document.get("metrics")
    document["metrics"] = checkpoint_metrics(results)
    document["onnx"]["int8"]["metrics_note"] = ("the stored metrics are this file's own (`ecglens evaluate`, "
                                                 "scripts/ship_int8.py); the float model's are float_metrics")
    props[META_KEY].value = json.dumps(document)
    args.weights_dir.mkdir(parents=True, exist_ok=True)
    out = args.weights_dir / f"{args.name}.onnx"
    onnx.save(proto, str(out))
    paired = json.loads(args.paired.read_text()) if args.paired else None
    prov = results.get("provenance") or {}
    data, folds = prov.get("data"), ",".join(str(f) for f in prov.get("folds") or [])
    commands = [f"ecglens export {args.float_name} --onnx {args.onnx_file} --int8 {data} --int8-folds 1-8",
                f"ecglens evaluate {args.onnx_file} {data} --folds {folds} --out {args.eval}",
                f"python scripts/ship_int8.py {args.onnx_file} {args.eval} --name {args.name} --float {args.float_name}"
                + (f" --paired {args.paired}" if args.paired else "")]
    (args.weights_dir / f"{args.name}.md").write_text(_card(args.name, args.float_name, document, results, paired,
                                                            commands))
    print(f"wrote {out} ({size_mb:.1f} MB) and {args.name}.md")


if __name__ == "__main__":
    main()
