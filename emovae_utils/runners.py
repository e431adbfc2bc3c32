"""Where the trials of :func:`~emovae_utils.experiments.run_trials` run: local worker processes or a Ray cluster.

Locally (:func:`run_local`), each trial runs in a spawned worker process with one torch thread,
and the clips reach the workers as one memory-mapped ``.npy`` file of the sweep. The pool
(:func:`run_pool`) hands each worker one trial at a time over its own pipe, so when a worker is
killed from outside (the kernel's out-of-memory killer sends SIGKILL) it knows the one trial that
worker held: that trial alone runs again on a fresh worker, once, and is then recorded as failed
with the cause (a :class:`concurrent.futures.ProcessPoolExecutor` would break and fail every trial
of the sweep, even those not started). On a cluster (:func:`run_ray`), each trial is a Ray task;
an address where no Ray head answers fails within seconds, naming it.

Examples
--------
>>> exit_cause(-9)
'worker process killed by signal 9 (SIGKILL: out of memory?)'
>>> exit_cause(1)
'worker process exited with code 1'
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from .trial import Trial, _failed_row, _resolve_data, _run_recorded
from .extras import require
from .resources import available_cores

__all__ = ["run_pool", "exit_cause", "run_local", "run_ray"]


def exit_cause(exitcode: int | None) -> str:
    """Why a worker process ended, in words, from its exit code (negative: the signal that killed it)."""
    if exitcode is None or exitcode >= 0:
        return f"worker process exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = "unknown signal"
    oom = ": out of memory?" if -exitcode == signal.SIGKILL else ""
    return f"worker process killed by signal {-exitcode} ({name}{oom})"


def _nothing() -> None:
    """The default initializer (a module-level function: it is pickled into each worker)."""


def _worker_loop(conn: Connection, initializer: Callable[..., None], initargs: tuple,
                 task: Callable[..., Any]) -> None:
    """A worker: ``initializer(*initargs)``, then ``task(*args)`` for each job received, answering with its result."""
    initializer(*initargs)
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the caller is gone
            return
        if job is None:
            return
        conn.send(task(*job))


class _Worker:
    """One spawned process and the caller's end of its pipe; ``key`` is the job it holds (None: idle)."""

    def __init__(self, ctx: Any, initializer: Callable[..., None], initargs: tuple, task: Callable[..., Any]) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_loop, args=(child, initializer, initargs, task))
        self.process.start()
        child.close()
        self.key: Hashable | None = None

    def give(self, key: Hashable, args: tuple) -> None:
        self.key = key
        try:
            self.conn.send(args)
        except OSError:  # it died meanwhile; wait() sees its sentinel
            pass

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def run_pool(
    jobs: Sequence[tuple[Hashable, tuple]],
    workers: int,
    task: Callable[..., Any],
    on_result: Callable[[Hashable, Any], None],
    on_lost: Callable[[Hashable, list[str], bool], None],
    *,
    initializer: Callable[..., None] = _nothing,
    initargs: tuple = (),
    retries: int = 1,
) -> None:
    """Run ``task(*args)`` for each ``(key, args)`` job in ``workers`` spawned processes, surviving dead ones.

    Parameters
    ----------
    jobs : sequence of (key, args)
        Keys are distinct; ``args`` (and ``task``, ``initializer``, ``initargs``) must pickle.
    workers : int
        Processes at a time (``spawn`` start method: fresh interpreters).
    task : callable
        A module-level function; its return value goes to ``on_result``.
    on_result : callable
        ``on_result(key, result)`` in this process, as each job finishes.
    on_lost : callable
        ``on_lost(key, causes, final)`` when the worker holding the job died (``causes``: one
        :func:`exit_cause` per try so far); ``final`` False: it runs again on a fresh worker.
    initializer, initargs : callable, tuple
        Run once in each new worker before its first job.
    retries : int, default 1
        How many times a lost job runs again.

    Examples
    --------
    >>> results = {}
    >>> run_pool([(k, (-k,)) for k in range(3)], 2, abs, results.__setitem__, print)
    >>> sorted(results.items())
    [(0, 0), (1, 1), (2, 2)]
    """
    ctx = mp.get_context("spawn")
    queue = deque(key for key, _ in jobs)
    args = dict(jobs)
    causes: dict[Hashable, list[str]] = {}
    idle: list[_Worker] = []
    busy: list[_Worker] = []
    try:
        while queue or busy:
            while queue and len(busy) < workers:
                if idle and not idle[-1].process.is_alive():  # died while idle, holding no job
                    idle.pop().stop()
                    continue
                worker = idle.pop() if idle else _Worker(ctx, initializer, initargs, task)
                key = queue.popleft()
                worker.give(key, args[key])
                busy.append(worker)
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                try:
                    result = worker.conn.recv()
                except (EOFError, OSError):  # the worker died holding its job
                    busy.remove(worker)
                    worker.stop()
                    causes.setdefault(worker.key, []).append(exit_cause(worker.process.exitcode))
                    final = len(causes[worker.key]) > retries
                    if not final:
                        queue.appendleft(worker.key)
                    on_lost(worker.key, causes[worker.key], final)
                    continue
                busy.remove(worker)
                idle.append(worker)
                on_result(worker.key, result)
    finally:
        for worker in idle + busy:
            worker.stop(timeout=0.0 if busy else 5.0)


# ----------------------------------------------------------------------------- local workers

_WORKER: dict[str, Any] = {}
_SHARED_DIR = ".shared"


@dataclass(frozen=True)
class _MappedArray:
    """An array saved as ``.npy`` for local workers, who memory-map it (a path is all that is pickled)."""

    path: str


def _share_data(data: Any, root: str) -> tuple[Any, Path | None]:
    """The data as local workers receive it: ``X`` as a memory-mapped ``.npy`` under ``root/.shared/``.

    Pickled into the spawn pipe, a large array blocks the parent for ever when a worker dies while
    starting (nobody reads the pipe); a path is a few bytes, and the workers share one copy of the clips.
    The file belongs to this sweep (``X-<data hash>-<host>-<pid>-<random>.npy``): another sweep of the
    same data in the same folder has its own, and removing it when done touches no one else's; files of
    sweeps whose process is gone (killed) are removed here. Returns the data to send and the file (or None).
    """
    if data is None:
        return None, None
    import socket
    import uuid

    from .io import atomic_write, sha1_array

    X, index = _resolve_data(data)
    X = np.ascontiguousarray(X)
    folder = Path(root) / _SHARED_DIR
    _remove_orphans(folder, socket.gethostname())
    path = folder / f"X-{sha1_array(X)[:16]}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npy"

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, X)

    atomic_write(path, save)
    return (_MappedArray(str(path)), index), path


def _remove_orphans(folder: Path, host: str) -> None:
    """Remove shared files this host's sweeps left when their process died (it cannot clean up after SIGKILL)."""
    for path in folder.glob(f"X-*-{host}-*-*.npy"):
        pid = path.stem.rsplit("-", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _init_worker(data: Any, evaluate: Any) -> None:
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    if isinstance(data, tuple) and isinstance(data[0], _MappedArray):
        data = (np.load(data[0].path, mmap_mode="r"), data[1])
    _WORKER.update(data=data, evaluate=evaluate)


def _pool_task(trial: Trial, root: str) -> dict[str, Any]:
    return _run_recorded(trial, root, _WORKER.get("data"), _WORKER.get("evaluate"))


def _ray_task(trial: Trial, root: str, data: Any, evaluate: Any) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return _run_recorded(trial, root, data, evaluate)


def run_local(pending: list[Trial], root: str, data: Any, evaluate: Any, workers: int | None,
               report: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """The local side of :func:`~emovae_utils.experiments.run_trials` (``address=None``; see its parameters).

    ``workers`` spawned processes (one per usable core by default, at most one per trial; 1 = in this
    process) each run one trial at a time; ``report(row)`` is called as each trial finishes. A trial whose
    worker dies runs once more on a fresh worker, then gets a failed row and an ``error.txt`` with the
    cause. Returns the rows in the order the trials finished.
    """
    if getattr(mp.current_process(), "_inheriting", False):
        # a spawned worker is importing the caller's script, which runs trials at import: without this
        # check the worker would start a pool of its own, and the caller's pool waits on it for ever
        raise RuntimeError("run_trials was called while a worker process was importing your script: put the "
                           "code that runs trials under `if __name__ == \"__main__\":` (local workers are "
                           "spawned, and each imports the main module)")
    n = min(workers or available_cores(), len(pending))
    rows: list[dict[str, Any]] = []
    if n <= 1:
        for trial in pending:
            rows.append(_run_recorded(trial, root, data, evaluate))
            report(rows[-1])
        return rows
    by_id = {t.trial_id: t for t in pending}

    def done(tid: str, row: dict[str, Any]) -> None:
        rows.append(row)
        report(row)

    def lost(tid: str, causes: list[str], final: bool) -> None:
        # a worker that dies (SIGKILL from the out-of-memory killer, a crash in native code) leaves no traceback
        if not final:
            print(f"{tid}: {causes[-1]}; running this trial again on a fresh worker", file=sys.stderr, flush=True)
            return
        done(tid, _failed_row(by_id[tid], root, f"{causes[-1]} (on each of {len(causes)} tries)", _lost_note(causes)))

    shared, mapped = _share_data(data, root)
    try:
        run_pool([(t.trial_id, (t, root)) for t in pending], n, _pool_task, done, lost,
                 initializer=_init_worker, initargs=(shared, evaluate), retries=1)
    finally:
        if mapped is not None:
            mapped.unlink(missing_ok=True)
    return rows


def _lost_note(causes: list[str]) -> str:
    """``error.txt`` of a trial whose worker process died on every try."""
    tries = "".join(f"  try {k}: {cause}\n" for k, cause in enumerate(causes, 1))
    return (f"The worker process running this trial died without a traceback, on each of {len(causes)} tries:\n"
            f"{tries}A SIGKILL usually comes from the kernel's out-of-memory killer (see `dmesg`): run fewer "
            "trials at a time (run_trials(..., workers=N)) or give them less data. Rerunning the sweep tries "
            "this trial again, from its checkpoint if it wrote one.\n")


# ----------------------------------------------------------------------------- Ray


def _check_reachable(address: str, wait_s: float = 10.0) -> None:
    """Fail within ``wait_s`` (plus a connect timeout), naming the address, when no Ray head listens there.

    ``ray.init`` keeps retrying an address nobody answers at for many minutes. ``"auto"`` and other
    addresses without ``host:port`` are left to Ray.
    """
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    host = host.strip("[]")  # an IPv6 address in brackets
    if not host or not port.isdigit():
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=2.0).close()
            return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"no Ray cluster at address {address!r}: nothing accepted a connection on {host} port {port} "
                    f"for {wait_s:.0f} s ({exc}). Start a head there (ray start --head --port={port}), pass the "
                    "address `ray start` printed, or address=None to run on this machine's cores") from exc
            time.sleep(0.5)


def run_ray(pending: list[Trial], root: str, data: Any, evaluate: Any, address: str,
             runtime_env: Mapping[str, Any] | None, report: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """The cluster side of :func:`~emovae_utils.experiments.run_trials` (see its parameters): one Ray task
    per trial; ``report(row)`` as each finishes. Returns the rows in the order the trials finished."""
    ray = require("ray", "cluster", "run_trials(address=...), which runs on a Ray cluster,")
    connected_here = not ray.is_initialized()
    if connected_here:
        _check_reachable(address)
        if runtime_env is None:  # ship this package's code, so workers run the driver's version
            runtime_env = {"py_modules": [str(Path(__file__).resolve().parent)]}
        ray.init(address=address, runtime_env=dict(runtime_env), logging_level="WARNING", log_to_driver=False)
    rows = []
    try:
        task = ray.remote(num_cpus=1)(_ray_task)
        data_arg = ray.put(data) if data is not None else None  # once into the object store, shared by tasks
        refs = {task.remote(t, root, data_arg, evaluate): t for t in pending}
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            trial = refs[ready[0]]
            try:
                row = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - the task itself died (worker lost, out of memory)
                first_line = (str(exc).splitlines() or [""])[0]
                row = _failed_row(trial, root, f"ray task failed: {type(exc).__name__}: {first_line}",
                                  f"The Ray task of this trial failed:\n{type(exc).__name__}: {exc}\n")
            rows.append(row)
            report(row)
    finally:
        if connected_here:
            ray.shutdown()
    return rows
