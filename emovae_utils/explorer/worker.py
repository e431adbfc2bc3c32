"""The explorer's render worker: one background thread that renders the latest state and drops stale ones.

Observers only record that a render is wanted (:meth:`RenderWorker.request`);
the worker renders the *latest* state once it is free, so a burst of changes
gives the last value and at most a few in between, and the kernel never builds
a queue. :meth:`RenderWorker.wait_idle` waits until every request is covered.

:func:`limited_threads` keeps a render on one core: torch's and BLAS's thread
pools (both as many threads as cores by default) stalled a render for seconds
when other processes kept the cores busy.
"""
from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["RenderWorker", "limited_threads"]


@functools.lru_cache(maxsize=1)
def _blas_pools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def limited_threads(n: int = 1) -> Iterator[None]:
    """At most ``n`` threads for torch (in this thread) and for the BLAS libraries (process-wide) meanwhile.

    A render is small (one decoding, one inversion): spread over every core it
    gains little, and on a busy machine each parallel region waits for its
    slowest thread: 2-core measurements gave a median of 235 ms and stalls
    of 1-2 s per render, 60 ms and no stall with one thread.

    Examples
    --------
    >>> import torch
    >>> with limited_threads(1):
    ...     torch.get_num_threads()
    1
    """
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        with _blas_pools().limit(limits=n, user_api="blas"):
            yield
    finally:
        if before != n:
            torch.set_num_threads(before)


class RenderWorker:
    """Coalescing background renderer.

    Parameters
    ----------
    render : callable
        ``render()`` renders the current state; called in the worker thread.
        It must handle its own errors (an exception ends nothing, but is lost).
    name : str
        Thread name.

    Examples
    --------
    >>> calls = []
    >>> worker = RenderWorker(lambda: calls.append(1))
    >>> for _ in range(5):
    ...     worker.request()
    >>> worker.wait_idle(10.0), 1 <= len(calls) <= 5
    (True, True)
    >>> worker.close()
    """

    def __init__(self, render: Callable[[], None], name: str = "emovae-explorer") -> None:
        self._render = render
        self._name = name
        self._cv = threading.Condition()
        self._requested = 0  # request counter
        self._done = 0  # request counter value the last render started from
        self._busy = False
        self._thread: threading.Thread | None = None
        self._closed = False

    def request(self) -> None:
        """Ask for a render of the current state; wakes (or starts) the thread."""
        with self._cv:
            self._requested += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._done == self._requested and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                self._done = self._requested  # everything asked so far is covered by this render
                self._busy = True
            try:
                self._render()
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every requested render is done; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._busy or self._done != self._requested:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        """Stop the thread (after the render in progress, if any)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
