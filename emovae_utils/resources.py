"""What this process may use of the machine.

- :func:`available_cores`  the CPU cores this process may run on (its affinity set, else all)
- :func:`one_blas_thread`  the thread policy of features and rendering: numpy's BLAS on one thread
- :func:`one_thread_worker` the same for a worker process (a process pool's initializer)
"""

from __future__ import annotations

import os

from threadpoolctl import ThreadpoolController, threadpool_limits

__all__ = ["available_cores", "one_blas_thread", "one_thread_worker"]

_BLAS = ThreadpoolController()


def available_cores() -> int:
    """Number of CPU cores this process may run on.

    The size of the process's CPU affinity set (``os.sched_getaffinity``:
    what ``taskset``, cgroups' cpusets or a batch scheduler leave it), or,
    where the platform has no affinity (macOS, Windows), ``os.cpu_count()``;
    at least 1. The one count the package sizes worker pools and thread
    budgets with.

    Returns
    -------
    int

    Examples
    --------
    >>> available_cores() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def one_blas_thread():
    """Context manager running numpy's BLAS on one thread (threadpoolctl): the thread policy of features and
    rendering. The same bits on any core count, and no slowdown from threads waiting on a busy machine.

    Examples
    --------
    >>> import numpy as np
    >>> with one_blas_thread():
    ...     float(np.ones((4, 4)) @ np.ones(4) @ np.ones(4))
    16.0
    """
    return _BLAS.limit(limits=1, user_api="blas")


def one_thread_worker() -> None:  # pragma: no cover - runs in worker processes
    """Process-pool initializer: keep numpy/scipy's BLAS on one thread."""
    threadpool_limits(1)
