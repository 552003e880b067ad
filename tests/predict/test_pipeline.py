"""The batch pipeline's pieces: cores from the affinity mask, and a worker chunk with good and bad records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecglens.examples import example_paths
from ecglens.io import read_ecg
from ecglens.predict import InputAdapter, backends
from ecglens.predict.workers import _init_worker, _prepare_chunk
from ecglens.signal.transforms import Preprocess


def test_cores_follow_the_affinity_mask(monkeypatch) -> None:
    monkeypatch.setattr(backends.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(backends.os, "cpu_count", lambda: 16)
    assert backends.usable_cores() == 2
    assert backends.cores_left(2) == 1 and backends.cores_left(1) == 1


def test_a_chunk_keeps_order_errors_and_recorded_fields(tmp_path: Path) -> None:
    adapter = InputAdapter(Preprocess(seconds=10.0))
    _init_worker(adapter, None)
    bad = tmp_path / "bad.hea"
    bad.write_text("not a header\n")
    paths = [str(p) for p in example_paths()]
    chunk = [(0, "a", paths[0]), (1, "bad", str(bad)), (2, "b", paths[1]), (3, "c", paths[2]), (4, "a2", paths[0])]
    items, windows = _prepare_chunk(chunk)
    assert [i.index for i in items] == [0, 1, 2, 3, 4]
    assert items[1].error and "malformed" in items[1].error and items[1].recorded["sex_recorded"] == ""
    ok = [i for i in items if i.error is None]
    assert windows is not None and windows.shape[0] == sum(i.n_windows for i in ok)
    # the same windows as preparing each record alone, in order
    alone = [adapter.prepare(read_ecg(p)) for p in (paths[0], paths[1], paths[2], paths[0])]
    assert np.array_equal(windows, np.concatenate([p.windows for p in alone]))
    assert [i.flags for i in ok] == [p.flags for p in alone]
    # example 0 is sim_250hz_8lead, whose header says "# Age: 71" and "# Sex: Male"
    assert items[0].recorded == {"age_recorded": 71.0, "sex_recorded": "M", "patient_id": "", "exam_id": ""}


def test_torch_backend_splits_cpu_batches_to_cache_size(monkeypatch) -> None:
    import torch

    from ecglens.models import create_model

    class Checkpoint:
        model = create_model("cnn_baseline", in_leads=12, num_outputs=3, channels=(8, 16))

    sizes: list[int] = []
    Checkpoint.model.register_forward_pre_hook(lambda module, args: sizes.append(int(args[0].shape[0])))
    backend = backends.TorchBackend(Checkpoint())
    monkeypatch.setattr(backends, "CPU_SAMPLES_PER_PASS", 1000)
    x = np.random.default_rng(0).normal(0, 0.3, (7, 12, 300)).astype(np.float32)
    out = backend.run(x)
    assert sizes == [3, 3, 1]  # 1000 // 300 windows per pass
    with torch.inference_mode():
        whole = Checkpoint.model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, whole, rtol=1e-5, atol=1e-6)
    assert backend.run(x[:0]).shape == (0, 3)


def test_keep_freed_memory_applies_on_glibc() -> None:
    import multiprocessing as mp
    import platform

    from ecglens.predict.workers import keep_freed_memory

    # run in a child process: the setting is process-wide and meant for reading workers only
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        applied = pool.apply(keep_freed_memory)
    assert applied is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def _tiny_predictor(folder: Path, **backend_options):
    """A Predictor of a random tiny model (cnn_baseline, age-sex task, 10-s input) saved in ``folder``."""
    import torch

    from ecglens.artifact import save_checkpoint
    from ecglens.data.targets import task_from_name
    from ecglens.models import create_model
    from ecglens.predict import Predictor

    torch.manual_seed(0)
    task = task_from_name("age_sex").fit(np.array([[40.0, 1.0], [60.0, 0.0], [80.0, 1.0]]))
    model = create_model("cnn_baseline", in_leads=12, num_outputs=task.num_outputs, channels=(8, 16))
    path = save_checkpoint(folder / "tiny.safetensors", model, task=task,
                           preprocess=Preprocess(seconds=10.0))
    return Predictor(str(path), **backend_options)


def test_a_worker_model_runs_the_chunk_and_reports_failures(tmp_path: Path) -> None:
    """With a model, a chunk comes back as the outputs of its windows (what the main process would compute from
    them); a model that fails turns the chunk's records into errors, not a crash."""
    from ecglens.predict.workers import ChunkOutputs, WorkerModel

    predictor = _tiny_predictor(tmp_path)
    paths = [str(p) for p in example_paths()]
    chunk = [(0, "a", paths[0]), (1, "b", paths[1])]
    _init_worker(predictor.adapter, None)
    items, windows = _prepare_chunk(chunk)
    expected = predictor.run_windows(windows)
    _init_worker(predictor.adapter, None, model=WorkerModel(predictor, predictor.backend.for_worker(), 64))
    try:
        items2, got = _prepare_chunk(chunk)
        assert isinstance(got, ChunkOutputs) and got.failure is None and items2 == items
        assert set(got.outputs) == set(expected)
        for name in expected:
            np.testing.assert_array_equal(got.outputs[name], expected[name])

        def broken():
            raise RuntimeError("no model here")

        _init_worker(predictor.adapter, None, model=WorkerModel(predictor, broken, 64))
        _, failed = _prepare_chunk(chunk)
        assert failed.outputs == {} and failed.failure == "model inference failed: RuntimeError: no model here"
    finally:
        _init_worker(predictor.adapter, None)
        import torch

        torch.set_num_threads(1)


def test_which_backends_run_in_reading_workers(tmp_path: Path) -> None:
    """CPU backends run in the workers; a GPU (here torch's "meta" device) or explicit threads keep the model in
    the main process."""
    predictor = _tiny_predictor(tmp_path)
    assert callable(predictor.backend.for_worker())
    assert _tiny_predictor(tmp_path, num_threads=1).backend.for_worker() is None
    meta = backends.TorchBackend(predictor.checkpoint, device="meta")
    assert meta.for_worker() is None
    assert predictor._worker_model(32).batch_size == 32
    predictor.backend = object()  # a custom backend without for_worker
    assert predictor._worker_model(32) is None


def test_default_workers_one_per_core_when_they_run_the_model(monkeypatch) -> None:
    from ecglens.predict import predictor

    monkeypatch.setattr(predictor, "usable_cores", lambda: 32)
    assert predictor._default_workers(True) == 16 and predictor._default_workers() == 4
    monkeypatch.setattr(predictor, "usable_cores", lambda: 2)
    assert predictor._default_workers(True) == 2 == predictor._default_workers()


def _blas_threads(_: int) -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_pooled_reading_workers_run_one_blas_thread() -> None:
    # resampling is a BLAS product: with a thread per core in each of the one-per-core workers, a 500 Hz batch job
    # took 1.6x the time (ecglens._threads)
    import multiprocessing as mp

    pytest.importorskip("threadpoolctl")
    ctx = mp.get_context("spawn")
    with ctx.Pool(1, initializer=_init_worker, initargs=(InputAdapter(Preprocess(seconds=10.0)), None, True)) as pool:
        threads = pool.apply(_blas_threads, (0,))
    assert threads and all(n == 1 for n in threads)
