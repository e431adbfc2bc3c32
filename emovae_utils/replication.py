"""The report's experiments over seeds: its trainings as trials, and the files its verdicts come from.

Every model a verdict rests on is trained several times (one trial per seed,
:mod:`emovae_utils.experiments`), side by side on all cores. The notebooks use
this module to

* build the trials of one experiment (:func:`seeded_trials`: the same data and
  settings, one trial per seed and fold; training samples for one seed only),
* run them side by side, as many at once as their torch threads fill the cores
  (:func:`run_seeds`; trials that are already complete are reused, so an
  interrupted run resumes),
* keep which trials made an experiment in a small manifest next to the models
  (:func:`write_manifest`, :func:`read_manifest`), so a later notebook
  evaluates exactly those,
* load their histories and models (:func:`histories`, :func:`load_models`),
* summarise where the losses flatten over seeds (:func:`flat_epochs`), and
* collect one verdict row per claim in ``figures/verdicts.csv``
  (:func:`record_verdicts`), each notebook adding the claims it decides.

Examples
--------
>>> trials = seeded_trials("single_actor", {"actor": 1, "statement": 1}, seeds=[0, 1], epochs=5, sample_every=100)
>>> [t.seed for t in trials], [t.fit.sample_every for t in trials]
([0, 1], [100, None])
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .experiments import Trial, run_trials, sweep
from .io import atomic_write
from .resources import available_cores
from .train import default_threads

__all__ = [
    "seeded_trials", "workers_for", "run_seeds", "write_manifest", "read_manifest", "training_actors", "histories",
    "load_models", "flat_epochs", "record_verdicts", "verdict_markdown",
    "record_losses", "compare_verdicts", "record_replication", "REPLICATION_NAME", "record_controls", "LOSSES_NAME", "CONTROLS_NAME",
    "VERDICTS_NAME", "TRIALS_DIR",
]

#: Sub-folder of ``models_dir`` holding one folder per trial.
TRIALS_DIR = "trials"
#: The verdicts table, in ``figures_dir``.
VERDICTS_NAME = "verdicts.csv"


def seeded_trials(
    label: str,
    data: Mapping[str, Any],
    seeds: Sequence[int],
    *,
    folds: Iterable[int | None] = (None,),
    model: str = "emotion_vae",
    config: Mapping[str, Any] | None = None,
    sample_seed: int | None = None,
    sample_every: int | None = None,
    cond: str | None = None,
    protocol: str | None = None,
    **fit: Any,
) -> list[Trial]:
    """One experiment as trials: the same data and training settings, one trial per seed (and fold).

    Parameters
    ----------
    label : str
        Names the experiment (part of each trial id), e.g. ``"single_actor"``.
    data : mapping
        Data selection (index column -> value(s)); see :class:`~emovae_utils.experiments.Trial`.
    seeds : sequence of int
        One trial per seed: the seed of the initial weights and of the batch order.
    folds : iterable of int or None, default (None,)
        Held-out actor folds (``range(5)`` for the leakage-free per-fold models).
    model, config
        Registered model name and its constructor arguments.
    sample_seed : int, optional
        The one seed whose training renders audio samples (default: the first
        seed); the others skip this work.
    sample_every : int, optional
        :func:`~emovae_utils.train.fit`'s ``sample_every`` for that seed.
    cond : str, optional
        Condition of a conditioned model, by name (:data:`emovae_utils.conditions.CONDITIONS`).
    protocol : str, optional
        Which folds ``folds`` index (:data:`emovae_utils.protocols.PROTOCOLS`); None = the study's.
    **fit
        The other settings of :func:`~emovae_utils.train.fit` (``epochs`` required).

    Returns
    -------
    list of Trial
        Seed-major, folds fastest.

    Examples
    --------
    >>> ts = seeded_trials("fold_vae", {"statement": 1}, seeds=[0], folds=range(5), epochs=3)
    >>> len(ts), ts[-1].fold, ts[-1].label
    (5, 4, 'fold_vae')
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeded_trials needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    sample_seed = seeds[0] if sample_seed is None else int(sample_seed)
    out: list[Trial] = []
    for seed in seeds:
        settings = dict(fit, sample_every=sample_every if seed == sample_seed else None)
        out += sweep((model, dict(config or {})), dict(data), [seed], list(folds), label=label, cond=cond,
                     protocol=protocol, **settings)
    return out


def workers_for(threads: int = 1, cores: int | None = None) -> int:
    """Trials to run side by side so that ``threads`` per trial fill the cores (at least 1).

    Examples
    --------
    >>> workers_for(1, cores=2), workers_for(2, cores=2), workers_for(4, cores=2)
    (2, 1, 1)
    """
    if cores is None:
        cores = available_cores()
    return max(1, int(cores) // max(1, int(threads)))


def run_seeds(
    trials: Sequence[Trial],
    models_dir: str | os.PathLike,
    data: Any,
    *,
    address: str | None = None,
    evaluate: Any = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run an experiment's trials under ``models_dir/trials/``, side by side, and return their rows.

    Parameters
    ----------
    trials : sequence of Trial
        E.g. from :func:`seeded_trials`. Their ``fit.threads`` (torch threads per
        trial) set how many run at once: :func:`workers_for` of the largest.
    models_dir : path-like
        The notebook's ``models_dir``.
    data : (X, index)
        All features and their index (:func:`emovae_utils.data.load_features`).
    address : str, optional
        A Ray cluster instead of local processes (see :func:`~emovae_utils.experiments.run_trials`).
    evaluate : callable, optional
        Extra result columns per trial, computed in the worker after training (a module-level
        function; see :func:`~emovae_utils.experiments.run_trial`).
    progress : bool, default True
        One line per finished trial.

    Returns
    -------
    pandas.DataFrame
        The result rows (:func:`~emovae_utils.experiments.run_trials`).

    Raises
    ------
    RuntimeError
        If a trial failed, naming its traceback file (rerun to retry: complete trials are reused).
    """
    root = Path(models_dir) / TRIALS_DIR
    threads = max((default_threads() if t.fit.threads is None else t.fit.threads for t in trials), default=1)
    rows = run_trials(trials, root, data, address=address, workers=workers_for(threads), evaluate=evaluate,
                      progress=progress)
    failed = rows.attrs.get("failed", [])
    if failed:
        raise RuntimeError(f"{len(failed)} trial(s) failed: see {root / failed[0] / 'error.txt'}; "
                           "run the cell again to retry them (complete trials are reused)")
    return rows


def write_manifest(rows: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Keep which trials made an experiment (their result rows, as CSV) for later notebooks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_manifest(pd.DataFrame({"trial_id": ["a"], "seed": [0], "path": ["x"]}),
    ...                    pathlib.Path(tempfile.mkdtemp()) / "m.csv")
    >>> read_manifest(p)["trial_id"].tolist()
    ['a']
    """
    path = Path(path)
    return atomic_write(path, lambda p: rows.to_csv(p, index=False))


def read_manifest(path: str | os.PathLike, notebook: str = "") -> pd.DataFrame:
    """The rows :func:`write_manifest` kept; a clear error naming the notebook to run when missing."""
    path = Path(path)
    if not path.exists():
        hint = f"run notebooks/{notebook}.ipynb first (same preset)" if notebook else "train these models first"
        raise FileNotFoundError(f"{path} not found: {hint}")
    return pd.read_csv(path)


def training_actors(rows: pd.DataFrame) -> int:
    """How many actors the runs of a manifest trained on (its ``train_actors`` lists; the same for every seed).

    Examples
    --------
    >>> training_actors(pd.DataFrame({"train_actors": ["[1, 3, 5]", "[1, 3, 5]"]}))
    3
    """
    counts = {len(json.loads(actors)) for actors in rows["train_actors"]}
    if len(counts) != 1:
        raise ValueError(f"the runs of this manifest trained on different numbers of actors: {sorted(counts)}")
    return counts.pop()


def _by_seed(rows: pd.DataFrame) -> pd.DataFrame:
    if rows["seed"].duplicated().any() and "fold" in rows and rows["fold"].notna().any():
        raise ValueError("rows hold several folds per seed; select one fold first")
    return rows.sort_values("seed")


def histories(rows: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """Seed -> training history (``history.csv`` of each trial).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "h.csv").write_text("epoch,reconstruction,kl,total\\n1,2,3,5\\n")
    >>> histories(pd.DataFrame({"seed": [3], "history": [str(d / "h.csv")]}))[3]["total"].tolist()
    [5]
    """
    return {int(r.seed): pd.read_csv(r.history) for r in _by_seed(rows).itertuples()}


def load_models(rows: pd.DataFrame, by: str = "seed") -> dict[int, Any]:
    """``by`` (seed or fold) -> trained model (``model.pt`` of each trial), in eval mode."""
    from . import models

    out = {}
    for r in rows.sort_values(by).itertuples():
        model, _ = models.load_model(r.model_path)
        out[int(getattr(r, by))] = model.eval()
    return out


def flat_epochs(
    runs: Mapping[int, pd.DataFrame],
    tolerance: float = 0.01,
    per_epochs: int = 1000,
    losses: Sequence[str] = ("reconstruction", "kl"),
) -> pd.DataFrame:
    """Where each seed's losses flatten by the decision rule, each loss separately and both together.

    A loss is flat from the first epoch after which its running median moves
    by less than ``tolerance`` of its whole range per ``per_epochs`` epochs
    (:func:`~emovae_utils.metrics.flat_epoch`); the run is flat when every
    loss in ``losses`` is (the later of their epochs). ``NaN``: censored, still
    moving at ``horizon``, the last epoch the rule can see (``n_epochs - per_epochs``).

    Returns
    -------
    pandas.DataFrame
        Index ``seed``; one column per loss and ``both``; ``n_epochs``, ``horizon``.

    Examples
    --------
    >>> t = np.arange(1, 3001)
    >>> h = pd.DataFrame({"epoch": t, "reconstruction": np.where(t < 1200, 2000.0 - t, 800.0), "kl": 5.0 + 0 * t})
    >>> flat_epochs({0: h}, per_epochs=100).loc[0, ["reconstruction", "kl", "both", "horizon"]].tolist()
    [1181.0, 1.0, 1181.0, 2900.0]
    """
    from .metrics import run_flat_epoch

    rows = [{"seed": int(seed), **run_flat_epoch(h, losses, per_epochs, tolerance), "n_epochs": len(h),
             "horizon": max(0, len(h) - int(per_epochs))} for seed, h in sorted(runs.items())]
    return pd.DataFrame(rows).set_index("seed")


def _upsert(path: Path, new: pd.DataFrame, key: str) -> pd.DataFrame:
    """The CSV at ``path`` (if any) without the rows whose ``key`` appears in ``new``, then ``new``."""
    if not path.exists():
        return new
    old = pd.read_csv(path)
    old = old[~old[key].isin(new[key])]
    return pd.concat([old, new], ignore_index=True) if len(old) else new


def record_verdicts(rows: Iterable[Mapping[str, Any]], figures_dir: str | os.PathLike,
                    retire: Sequence[str] = ()) -> pd.DataFrame:
    """Add or replace (by ``claim``) rows of ``figures_dir/verdicts.csv``; each notebook adds its claims.

    ``retire`` names claims whose rows go (a claim restated in other words).

    Examples
    --------
    >>> import tempfile
    >>> from emovae_utils.metrics import verdict_row
    >>> d = tempfile.mkdtemp()
    >>> _ = record_verdicts([verdict_row("x", "holds", "r", 1, 0, 2, 3)], d)
    >>> record_verdicts([verdict_row("x", "inconclusive", "r", 1, 0, 2, 3)], d)["verdict"].tolist()
    ['inconclusive']
    """
    from .metrics import VERDICT_COLUMNS, write_verdicts

    path = Path(figures_dir) / VERDICTS_NAME
    new = pd.DataFrame([{k: r[k] for k in VERDICT_COLUMNS} for r in rows], columns=list(VERDICT_COLUMNS))
    table = _upsert(path, new, "claim")
    return write_verdicts(table[~table["claim"].isin(list(retire))].to_dict("records"), path)


#: The controls of the decision rules, in ``figures_dir``.
CONTROLS_NAME = "verdict_controls.csv"


def record_controls(rows: Iterable[Mapping[str, Any]], figures_dir: str | os.PathLike) -> pd.DataFrame:
    """Add or replace (by ``claim`` and ``control``) rows of ``figures_dir/verdict_controls.csv``.

    Each row is a rule applied to a case whose answer is known
    (:func:`~emovae_utils.metrics.control_row`): columns ``claim, control, expected, verdict``.

    Examples
    --------
    >>> import tempfile
    >>> from emovae_utils.metrics import control_row
    >>> d = tempfile.mkdtemp()
    >>> _ = record_controls([control_row("x", "flat loss", "flat", "not flat")], d)
    >>> record_controls([control_row("x", "flat loss", "flat", "flat")], d)["verdict"].tolist()
    ['flat']
    """
    from .metrics import CONTROL_COLUMNS

    path = Path(figures_dir) / CONTROLS_NAME
    new = pd.DataFrame([{k: r[k] for k in CONTROL_COLUMNS} for r in rows], columns=list(CONTROL_COLUMNS))
    key = lambda t: t["claim"] + "\x00" + t["control"]  # noqa: E731
    old = pd.read_csv(path) if path.exists() else new.iloc[:0]
    table = pd.concat([old[~key(old).isin(key(new))], new], ignore_index=True)
    atomic_write(path, lambda p: table.to_csv(p, index=False))
    return table


def verdict_markdown(row: Mapping[str, Any], digits: int = 3) -> str:
    """One verdict row (``verdicts.csv``) as a Markdown sentence: claim, verdict, statistic and interval, rule.

    Examples
    --------
    >>> verdict_markdown({"claim": "(a) 3 of 8", "verdict": "does not hold", "rule": "mean count >= 2.5",
    ...                   "statistic": 0.4, "ci_low": 0.0, "ci_high": 0.8, "n_runs": 5})
    '**(a) 3 of 8: does not hold.** Statistic 0.400, 95 % interval [0.000, 0.800] over 5 runs. Rule: mean count >= 2.5.'
    >>> verdict_markdown({"claim": "flat near 16000", "verdict": "does not hold", "rule": "mean flat epoch",
    ...                   "statistic": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_runs": 2})
    '**flat near 16000: does not hold.** No statistic (no run qualifies) over 2 runs. Rule: mean flat epoch.'
    """
    f = f"{{:.{digits}f}}"
    stat, low, high = (float(row[k]) for k in ("statistic", "ci_low", "ci_high"))
    numbers = (f"Statistic {f.format(stat)}" if np.isfinite(stat) else "No statistic (no run qualifies)")
    numbers += f", 95 % interval [{f.format(low)}, {f.format(high)}]" if np.isfinite([low, high]).all() else ""
    return (f"**{row['claim']}: {row['verdict']}.** {numbers} over {int(row['n_runs'])} runs. "
            f"Rule: {str(row['rule']).rstrip('.')}.")


#: Per-seed loss summary of every trained experiment, in ``figures_dir``.
LOSSES_NAME = "loss_summary.csv"


def record_losses(experiment: str, runs: Mapping[int, pd.DataFrame], flat: pd.DataFrame,
                  figures_dir: str | os.PathLike) -> pd.DataFrame:
    """Add or replace one experiment's rows of ``figures_dir/loss_summary.csv``: per seed, final losses and flat epoch.

    Parameters
    ----------
    experiment : str
        E.g. ``"one actor"``.
    runs : mapping of seed to history
    flat : pandas.DataFrame
        :func:`flat_epochs` of the same runs (its ``both`` column: NaN when not flat by the end).
    figures_dir : path-like

    Returns
    -------
    pandas.DataFrame
        The whole table: ``experiment, seed, epochs, final_reconstruction, final_kl, flat_epoch``.

    Examples
    --------
    >>> import tempfile
    >>> h = pd.DataFrame({"epoch": [1, 2], "reconstruction": [9.0, 8.0], "kl": [1.0, 2.0]})
    >>> out = record_losses("one actor", {0: h}, pd.DataFrame({"both": [np.nan]}, index=[0]), tempfile.mkdtemp())
    >>> out[["experiment", "seed", "final_reconstruction", "flat_epoch"]].values.tolist()
    [['one actor', 0, 8.0, nan]]
    """
    path = Path(figures_dir) / LOSSES_NAME
    new = pd.DataFrame([{"experiment": experiment, "seed": int(s), "epochs": len(h),
                         "final_reconstruction": float(h["reconstruction"].iloc[-1]),
                         "final_kl": float(h["kl"].iloc[-1]), "flat_epoch": float(flat.loc[s, "both"])}
                        for s, h in sorted(runs.items())])
    table = _upsert(path, new, "experiment")
    atomic_write(path, lambda p: table.to_csv(p, index=False, float_format="%.6g"))
    return table


REPLICATION_NAME = "replication.csv"


def record_replication(first: pd.DataFrame | str | os.PathLike, second: pd.DataFrame | str | os.PathLike,
                       comparison: str, figures_dir: str | os.PathLike) -> pd.DataFrame:
    """Add or replace one comparison's rows of ``figures_dir/replication.csv`` (:func:`compare_verdicts`).

    Parameters
    ----------
    first, second : DataFrame or path of a ``verdicts.csv``
        The committed run and its replication.
    comparison : str
        What differs between them, e.g. ``"seed set 2 (paper-seeds2)"`` or ``"threads 2"``.
    figures_dir : path-like

    Returns
    -------
    pandas.DataFrame
        The whole table: ``comparison`` then :func:`compare_verdicts`'s columns; one block per comparison.

    Examples
    --------
    >>> import tempfile
    >>> a = pd.DataFrame({"claim": ["x"], "verdict": ["holds"], "statistic": [1.0], "ci_low": [0.5], "ci_high": [1.5]})
    >>> d = tempfile.mkdtemp()
    >>> _ = record_replication(a, a, "threads 2", d)
    >>> record_replication(a, a.assign(verdict="does not hold"), "seed set 2", d)[["comparison", "same_verdict"]].values.tolist()
    [['threads 2', True], ['seed set 2', False]]
    """
    path = Path(figures_dir) / REPLICATION_NAME
    new = compare_verdicts(first, second)
    new.insert(0, "comparison", comparison)
    table = _upsert(path, new, "comparison")
    atomic_write(path, lambda p: table.to_csv(p, index=False, float_format="%.6g"))
    return table


def compare_verdicts(first: pd.DataFrame | str | os.PathLike, second: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
    """Do two runs of the study (e.g. threads=1 and threads=2, or two machines) replicate each other?

    Parameters
    ----------
    first, second : DataFrame or path of a ``verdicts.csv``

    Returns
    -------
    pandas.DataFrame
        One row per claim of either run: both verdicts and statistics, ``same_verdict``, and
        ``inside_each_other`` (each run's statistic lies in the other's 95 % interval; NaN
        statistics, e.g. no seed flattened in both, count as inside) and ``intervals_overlap``
        (the weaker check: for two independent runs with calibrated intervals of equal width, each
        statistic lies inside the other's interval with probability about 0.83 per claim,
        P(|Z| < 1.96 / sqrt 2); the intervals overlap with probability about 0.994).

    Examples
    --------
    >>> a = pd.DataFrame({"claim": ["x"], "verdict": ["holds"], "statistic": [1.0], "ci_low": [0.5], "ci_high": [1.5]})
    >>> b = a.assign(statistic=[1.2], ci_low=[0.9], ci_high=[1.6])
    >>> compare_verdicts(a, b)[["same_verdict", "inside_each_other"]].values.tolist()
    [[True, True]]
    """
    a = first if isinstance(first, pd.DataFrame) else pd.read_csv(first)
    b = second if isinstance(second, pd.DataFrame) else pd.read_csv(second)
    both = a.merge(b, on="claim", how="outer", suffixes=("_1", "_2"))

    def inside(stat: pd.Series, low: pd.Series, high: pd.Series) -> pd.Series:
        return stat.isna() & low.isna() | ((low <= stat) & (stat <= high))

    both["same_verdict"] = both["verdict_1"] == both["verdict_2"]
    both["inside_each_other"] = (inside(both["statistic_1"], both["ci_low_2"], both["ci_high_2"])
                                 & inside(both["statistic_2"], both["ci_low_1"], both["ci_high_1"]))
    both["intervals_overlap"] = ((both["ci_low_1"] <= both["ci_high_2"]) & (both["ci_low_2"] <= both["ci_high_1"])
                                 | both[["ci_low_1", "ci_low_2"]].isna().any(axis=1))
    return both[["claim", "verdict_1", "verdict_2", "statistic_1", "ci_low_1", "ci_high_1", "statistic_2",
                 "ci_low_2", "ci_high_2", "same_verdict", "inside_each_other", "intervals_overlap"]]
