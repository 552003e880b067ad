"""``kill -9`` at a seeded point (issue #22 item 6): ``prepare`` leaves a ``OUT.tmp-<pid>`` folder that never looks
like a cache and that the rerun removes while it finishes the cache; ``train --resume`` loses no epoch.

Each run is a subprocess that sends itself SIGKILL (no cleanup handler can run, exactly as with ``kill -9``) at a
point chosen by a seeded generator: while reading record k, or after every file of the temporary folder is
written but before it is moved into place; after batch j of epoch e of a tiny synthetic training.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecglens.data.cache import is_cache, open_cache, prepare_cache, write_cache
from ecglens.examples import example_paths
from ecglens.exceptions import CorruptRecordError
from ecglens.signal.transforms import Preprocess

REPO = Path(__file__).resolve().parents[2]
SEED = 22

_PREPARE = textwrap.dedent("""
    import os, signal, sys
    import pandas as pd
    from ecglens.data import cache
    from ecglens.signal.transforms import Preprocess

    point, k, catalogue, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    calls = []
    if point == "record":
        read = cache._prepare_one
        def _prepare_one(path):
            calls.append(path)
            if len(calls) == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return read(path)
        cache._prepare_one = _prepare_one
    else:
        write = cache._write_tables
        def _write_tables(*args):
            write(*args)
            os.kill(os.getpid(), signal.SIGKILL)
        cache._write_tables = _write_tables
    cache.prepare_cache(pd.read_csv(catalogue), out, Preprocess(fs=100, seconds=4), workers=1, progress=False)
""")

_TRAIN = textwrap.dedent("""
    import os, signal, sys
    import lightning.pytorch as pl
    from ecglens.train import loop
    from ecglens.train.config import load_config

    config, cache, run, epoch, batch = sys.argv[1:4] + [int(a) for a in sys.argv[4:6]]

    class Kill(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, data, batch_idx):
            if trainer.current_epoch == epoch and batch_idx == batch:
                os.kill(os.getpid(), signal.SIGKILL)

    callbacks = loop._callbacks
    loop._callbacks = lambda cfg, run_dir: callbacks(cfg, run_dir) + [Kill()]
    cfg = load_config(config, [f"data.cache={cache}", "optim.epochs=3", "augment.enabled=false"])
    loop.fit(cfg, out=run, curves=False)
""")


def _killed(script: str, *args: object) -> None:
    """Run ``script`` in a fresh interpreter; assert that SIGKILL ended it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


@pytest.mark.parametrize("point", ["record", "tables"])
def test_prepare_killed_leaves_no_cache_and_the_rerun_cleans_up(tmp_path: Path, point: str) -> None:
    paths = [str(p) for p in example_paths()] * 3
    catalogue = pd.DataFrame({"record_id": [f"r{i}" for i in range(len(paths))], "path": paths})
    catalogue.to_csv(tmp_path / "catalogue.csv", index=False)
    k = int(np.random.default_rng(SEED).integers(1, len(paths) + 1))
    out = tmp_path / "cache"
    _killed(_PREPARE, point, k, tmp_path / "catalogue.csv", out)

    leftovers = list(tmp_path.glob("cache.tmp-*"))
    assert len(leftovers) == 1 and not out.exists()
    assert not is_cache(leftovers[0])
    with pytest.raises(CorruptRecordError, match=r"interrupted cache build.*run the same `ecglens prepare"):
        open_cache(leftovers[0])

    manifest = prepare_cache(catalogue, out, Preprocess(fs=100, seconds=4), workers=1, progress=False)
    assert list(tmp_path.glob("cache.*")) == []
    assert manifest["n_accepted"] + manifest["n_rejected"] == manifest["n_records"] == len(paths)
    assert len(open_cache(out)) == manifest["n_accepted"]


def _tiny_cohort_cache(out: Path, n: int = 60) -> Path:
    """A cache of ``n`` synthetic records [12 leads, 2.5 s at 100 Hz] whose amplitude grows with age."""
    rng = np.random.default_rng(SEED)
    pre = Preprocess(fs=100, seconds=2.5, highpass_hz=None)
    age = rng.uniform(20, 80, n)
    t = np.arange(pre.n_samples) / pre.fs
    beat = np.exp(-((t % 0.8 - 0.4) ** 2) / 0.001)
    signals = (0.02 * age)[:, None, None] * beat * rng.uniform(0.8, 1.2, (n, len(pre.leads), 1))
    meta = pd.DataFrame({"record_id": [f"r{i}" for i in range(n)], "age": age,
                         "sex": (rng.random(n) < 0.5).astype(float), "fold": np.arange(n) % 10 + 1,
                         "patient_id": [f"p{i}" for i in range(n)]})
    write_cache(out, signals + rng.normal(0, 0.02, signals.shape), meta, pre)
    return out


def test_train_killed_then_resumed_loses_no_epoch(tmp_path: Path) -> None:
    import torch

    from ecglens.train.config import load_config
    from ecglens.train.loop import fit

    config = REPO / "configs" / "quick_synthetic.yaml"
    cache = _tiny_cohort_cache(tmp_path / "cache")
    rng = np.random.default_rng(SEED)
    epoch, batch = int(rng.integers(1, 3)), int(rng.integers(0, 3))  # 48 training records: 3 batches of 16
    run = tmp_path / "run"
    _killed(_TRAIN, config, cache, run, epoch, batch)
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == epoch - 1  # every finished epoch kept

    cfg = load_config(config, [f"data.cache={cache}", "optim.epochs=3", "augment.enabled=false"])
    fit(cfg, resume=run, curves=False)
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [0, 1, 2]
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == 2
