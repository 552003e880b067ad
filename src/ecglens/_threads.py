"""The thread pools of NumPy / SciPy's BLAS in processes that share the cores with others."""

from __future__ import annotations

__all__ = ["limit_blas_threads"]


def limit_blas_threads(n: int = 1) -> bool:
    """Let the BLAS libraries loaded in this process (OpenBLAS, MKL, BLIS) use at most ``n`` threads.

    For worker processes started one per core (reading pools, Dask workers): a BLAS that keeps one thread per
    core in each of them oversubscribes the machine. Measured when resampling became a BLAS product (2026-12-07):
    ``ecglens predict`` on 10,000 records at 500 Hz, 2 reading workers on 2 cores, 50.5-51.8 s with OpenBLAS's
    default threads against 31.7 s with one. The limit stays until the process ends.

    Parameters
    ----------
    n : int
        Most threads (>= 1).

    Returns
    -------
    bool
        Whether a limit was set (False where ``threadpoolctl`` finds no BLAS, or cannot load).
    """
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=max(1, int(n)), user_api="blas")
    except Exception:  # noqa: BLE001 - an unknown BLAS build: run unlimited rather than fail the job
        return False
    return True
