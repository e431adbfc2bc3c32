"""Trials and sweeps: many independent trainings, resumable, on all cores or on a Ray cluster.

A :class:`Trial` is one training run, fully described by its fields: a model
from the registry (:func:`emovae_utils.models.build`) with its config, a data
selection (rows of the feature index, e.g. ``{"actor": [1]}``), a seed, an
optional held-out actor fold (:data:`emovae_utils.data.ACTOR_FOLDS`) and the
settings of :func:`emovae_utils.train.fit`. Its :attr:`Trial.trial_id` is a
content hash of those fields, so the same trial always lands in the same folder:

``root/<trial_id>/``
    ``trial.json`` (the spec), ``run.json``, ``history.csv`` and
    ``checkpoint.pt`` (written by :func:`~emovae_utils.train.fit`),
    ``model.pt`` (:func:`~emovae_utils.models.save_model`) and, last,
    ``result.json``: the result row, whose presence marks the trial complete.
    A failed trial writes ``error.txt`` (the traceback) instead.

:func:`run_trial` skips a complete trial and resumes an interrupted one from
its checkpoint, so rerunning a sweep only does the missing work. A damaged
``result.json`` or ``checkpoint.pt`` (cut short, empty, other bytes) is named
in a warning, moved aside to ``<name>.damaged-<time>-<pid>`` and the trial redone.
:func:`run_trials` runs many: locally one trial per core in worker processes
(each with one torch thread; no service needed), or, given an ``address``, as
Ray tasks on a cluster (``pip install "emovae[cluster]"``), scheduled by Ray.
:func:`sweep` builds the cross product model x data x seed x fold.

Examples
--------
>>> trials = sweep("emotion_vae", [{"actor": [1]}, {"gender": "male"}], seeds=range(3), epochs=10)
>>> len(trials), trials[0].seed, trials[0].fit.epochs
(6, 0, 10)
>>> trials[0].trial_id == sweep("emotion_vae", {"actor": [1]}, epochs=10)[0].trial_id
True
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from . import runners
from .paths import project_relative
from .trial import (ERROR_NAME, MODEL_NAME, RESULT_NAME, TRIAL_FIT_DEFAULTS, TRIAL_NAME, Trial, _check_same_data,
                    _read_result, run_trial, select_clips, sweep, trial_status)

__all__ = [
    "Trial", "sweep", "select_clips", "run_trial", "run_trials", "trial_status",
    "TRIAL_NAME", "RESULT_NAME", "MODEL_NAME", "ERROR_NAME", "TRIAL_FIT_DEFAULTS",
]


# ----------------------------------------------------------------------------- many trials

_FIRST_COLUMNS = ("trial_id", "label", "model", "seed", "fold")
_RESULT_COLUMNS = ("status", "error", "n_clips", "train_actors", "held_out_actors", "epochs_done")
_LAST_COLUMNS = ("wall_seconds", "accel", "data_sha1", "path", "history", "model_path")


def _column_order(columns: Iterable[str]) -> list[str]:
    """Trial fields, then status and the standard results, then ``evaluate`` columns, then paths
    (the same order whether a row was just computed or read back from ``result.json``)."""
    cols = list(columns)
    fields = sorted(c for c in cols if c.split(".", 1)[0] in ("config", "data", "fit") and "." in c)
    finals = sorted(c for c in cols if c.startswith("final_"))
    head = [c for c in _FIRST_COLUMNS if c in cols] + fields + [c for c in _RESULT_COLUMNS if c in cols] + finals
    tail = [c for c in _LAST_COLUMNS if c in cols]
    return head + sorted(set(cols) - set(head) - set(tail)) + tail



def run_trials(
    trials: Iterable[Trial],
    root: str | os.PathLike,
    data: Any = None,
    *,
    address: str | None = None,
    workers: int | None = None,
    evaluate: Callable[..., Mapping[str, Any]] | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run trials side by side (all local cores, or a Ray cluster); complete ones are skipped.

    Parameters
    ----------
    trials : iterable of Trial
        Duplicates (same id) run once.
    root : path-like
        Sweep folder; each trial writes into ``root/<trial_id>/``. On a cluster
        it must be a path every node can write (a shared file system).
    data : (X, index), X, or None
        See :func:`run_trial`. Sent once to each local worker process (or
        once into Ray's object store); ``None`` makes every worker load
        RAVDESS itself (``$EMOVAE_DATA_DIR`` on that machine).
    address : str, optional
        ``None``: local worker processes, one trial per core (``spawn``ed,
        one torch thread each), no service needed. Otherwise a Ray cluster to
        connect to with ``ray.init(address=...)``: ``"auto"`` (the cluster
        this machine belongs to), ``"ray://host:port"`` (Ray client) or
        ``"host:port"`` (the head's GCS address). Each trial is a Ray task with
        ``num_cpus=1``, scheduled by Ray. An already initialised Ray session
        is used as it is. A ``host:port`` where nothing answers raises
        ConnectionError, naming it, after about 10 s.
    workers : int, optional
        Local processes; default the usable cores, at most one per pending
        trial. 1 runs the trials one after another in this process. A worker
        that dies (e.g. SIGKILL from the out-of-memory killer) costs only its
        own trial: it runs once more on a fresh worker, then is recorded as
        failed with the cause; the other trials go on.
    evaluate : callable, optional
        Extra result columns per trial; see :func:`run_trial`.
    runtime_env : mapping, optional
        Ray runtime environment; by default this package's source is shipped
        to the workers (``py_modules``), which must have its dependencies.
    progress : bool, default True
        Print one line per finished trial, then a summary.

    Returns
    -------
    pandas.DataFrame
        One result row per trial, in the order given: :meth:`Trial.row`
        columns, ``status`` ("ok" or "failed"), ``path``, the results of
        :func:`run_trial`, and ``error`` (the exception, for failed trials,
        whose folder holds ``error.txt``). ``attrs["failed"]`` lists the
        failed trial ids; the sweep goes on past them, and a rerun retries them.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> X = np.random.default_rng(0).normal(size=(4, 80, 128)).astype("float32")
    >>> rows = run_trials(sweep("beta_vae", seeds=[0, 1], epochs=1), tempfile.mkdtemp(), X,
    ...                   workers=1, progress=False)
    >>> rows["status"].tolist(), rows["epochs_done"].tolist()
    (['ok', 'ok'], [1, 1])
    """
    unique: dict[str, Trial] = {}
    for trial in trials:
        if not isinstance(trial, Trial):
            raise TypeError(f"run_trials takes Trial objects, got {type(trial).__name__}")
        unique.setdefault(trial.trial_id, trial)
    root_path = Path(root).resolve()
    root_path.mkdir(parents=True, exist_ok=True)
    rows, pending = _complete_rows(unique, root_path, data)
    total, skipped = len(unique), len(rows)
    t0 = time.perf_counter()
    where = "local" if address is None else f"ray at {address}"
    if progress:
        print(f"{total} trials in {project_relative(root_path)}: {skipped} already complete, "
              f"{len(pending)} to run ({where})", flush=True)

    def report(row: dict[str, Any]) -> None:
        rows[row["trial_id"]] = row
        if progress:
            print(f"[{len(rows)}/{total}] {row['trial_id']} {_outcome(row)}", flush=True)

    if pending and address is None:
        runners.run_local(pending, str(root_path), data, evaluate, workers, report)
    elif pending:
        runners.run_ray(pending, str(root_path), data, evaluate, address, runtime_env, report)
    frame = pd.DataFrame([rows[tid] for tid in unique])
    if "error" not in frame.columns:
        frame["error"] = ""
    frame["error"] = frame["error"].fillna("")
    frame = frame[_column_order(frame.columns)]
    failed = [tid for tid in unique if rows[tid].get("status") != "ok"]
    frame.attrs["failed"] = failed
    if progress:
        print(_summary(root_path, total, skipped, failed, time.perf_counter() - t0), flush=True)
    return frame


def _complete_rows(unique: Mapping[str, Trial], root: Path,
                   data: Any) -> tuple[dict[str, dict[str, Any]], list[Trial]]:
    """The result rows of the complete trials (checked against ``data``), and the trials still to run."""
    rows: dict[str, dict[str, Any]] = {}
    pending = []
    for tid, trial in unique.items():
        row = _read_result(root / tid / RESULT_NAME)  # None: none yet, or damaged (set aside)
        if row is None:
            pending.append(trial)
            continue
        rows[tid] = row
        if data is not None:
            _check_same_data(trial, row, data)
    return rows, pending


def _outcome(row: Mapping[str, Any]) -> str:
    """One trial's progress line: its final losses, or why it failed."""
    if row["status"] != "ok":
        return f"FAILED: {row.get('error', '')}"
    losses = ", ".join(f"{k[6:]} {row[k]:.4g}" for k in row if k.startswith("final_"))
    return f"ok in {row.get('wall_seconds', float('nan')):.1f} s ({losses})"


def _summary(root: Path, total: int, skipped: int, failed: list[str], seconds: float) -> str:
    """The sweep's closing line, pointing to the traceback files that exist."""
    line = (f"{total} trials: {total - len(failed)} ok ({skipped} already complete), {len(failed)} failed "
            f"in {seconds:.1f} s")
    files = [project_relative(root / tid / ERROR_NAME) for tid in failed if (root / tid / ERROR_NAME).is_file()]
    if files:
        line += "; tracebacks in " + ", ".join(files[:5])
        line += f" and {len(files) - 5} more" if len(files) > 5 else ""
    return line
