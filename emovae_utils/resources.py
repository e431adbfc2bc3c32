"""What this process may use of the machine.

- :func:`available_cores`  the CPU cores this process may run on (its affinity set, else all)
"""

from __future__ import annotations

import os

__all__ = ["available_cores"]


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
