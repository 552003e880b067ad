"""``ecglens serve``: the web service (one upload page + a JSON API) with uvicorn.

Examples::

    ecglens serve --model age-sex --port 8000
    ecglens serve --model runs/mi/best.safetensors --host 0.0.0.0 --max-upload-mb 50
    ecglens serve --model age-sex.onnx            # onnxruntime only
    ecglens serve --model age-sex --device cuda   # the model on the GPU

Open ``http://HOST:PORT/`` in a browser, choose the file(s) of one ECG record and press *Predict*. The API:
``POST /predict`` (multipart field ``file``), ``GET /models``, ``GET /health``; interactive docs at ``/docs``.
The service has no authentication: keep the default ``--host 127.0.0.1`` unless it runs behind a proxy that
adds it.
"""

from __future__ import annotations

import argparse

from .predict import add_device_option, device_options

__all__ = ["register", "run_serve"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``ecglens`` parser."""
    p = sub.add_parser("serve", help="web service: upload an ECG, see its leads and the predictions",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="age-sex",
                   help="shipped model name, .safetensors checkpoint or exported .onnx file (default: age-sex)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--backend", default="torch", help="prediction backend: torch or onnx (default: torch)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default: 20)")
    p.add_argument("--max-files", type=int, default=4, help="most files per upload (default: 4)")
    p.add_argument("--workers", type=int, default=2, help="records analysed at the same time (default: 2)")
    add_device_option(p)
    p.add_argument("--site-gain", default=None, metavar="FILE",
                   help="apply a site gain to every upload (ECGs of another hospital or device): a file written by "
                        "`ecglens predict ... --site-gain auto` on a sample of this site's ECGs")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn log level (default: info)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Load the model, then serve until interrupted; returns the exit code."""
    import logging

    import uvicorn

    from ..predict import Predictor
    from ..serve import create_app

    model = Predictor.from_pretrained(args.model, backend=args.backend, site_gain=args.site_gain,
                                      **device_options(args))
    app = create_app(model, max_upload_mb=args.max_upload_mb, max_files=args.max_files,
                     backend=args.backend, workers=args.workers)
    logging.getLogger("ecglens.serve").setLevel(args.log_level.upper())
    served = app.state.ecglens.served
    print(f"ecglens serve: model {served['name']} ({served['architecture']}, {served['backend']}) on "
          f"http://{args.host}:{args.port}/")
    if model.site_gain is not None:
        print(f"applying the {model.site_gain.describe()} (from {args.site_gain})")
    if args.host not in _LOOPBACK:
        print("note: listening beyond this machine; the service has no authentication.")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
