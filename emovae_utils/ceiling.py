"""The supervised ceiling, tuned without test actors: nested selection of the CNN's settings and stopping epoch.

For each fold of a protocol (:mod:`emovae_utils.protocols`), the fold's *training* actors are split once
more: :func:`~emovae_utils.protocols.validation_actors` holds out four of them (two per gender) as
validation actors. Every point of the grid (:class:`CeilingConfig`) trains the CNN
(:class:`~emovae_utils.models.classifier.EmotionCNN`) on the remaining training actors and is scored on the
validation actors after every epoch (:class:`~emovae_utils.trial.Trial` ``validation``). The point and
epoch with the highest validation accuracy (ties: the lower validation loss, then the earlier epoch)
are chosen; the fold's final models (one per seed) train with them on all the fold's training actors
and only these are scored on the test actors. The fold's test actors are never read before that:
the tuning trials neither train nor validate on them (checked by the trial,
:func:`~emovae_utils.trial.validation_positions`).

Examples
--------
>>> cfg = CeilingConfig(grid={"dropout": (0.1, 0.3), "lr": (1e-3, 3e-3)}, max_epochs=40)
>>> len(grid_points(cfg))
4
>>> import pandas as pd
>>> idx = pd.DataFrame({"actor": range(1, 25), "gender": ["male", "female"] * 12})
>>> ts = tuning_trials(idx, cfg, folds=[0], protocol="emobox")
>>> len(ts), ts[0].fold, ts[0].protocol, set(ts[0].validation["actor"]) & {1, 11, 20, 21}
(4, 0, 'emobox', set())
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .protocols import check_protocol, fold_actors, validation_actors
from .train import FitConfig
from .trial import TRIAL_NAME, Trial

__all__ = ["CeilingConfig", "grid_points", "tuning_trials", "best_epoch", "select", "final_trials", "run",
           "CEILING_MODEL"]

#: The registered model of the ceiling.
CEILING_MODEL = "emotion_cnn"
#: Fit settings every ceiling trial gets from :class:`CeilingConfig` (not grid points).
_FIXED_FIT = ("epochs", "batch_size", "drop_last", "threads", "checkpoint_every")


@dataclass(frozen=True)
class CeilingConfig:
    """The nested selection's settings.

    Parameters
    ----------
    grid : mapping of str to tuple
        Values to try; a key of :class:`~emovae_utils.train.FitConfig` (``lr``, ``batch_size``) goes to
        training, any other key to the model (``dropout``, ``hidden``, ``freq_mask``, ...).
    max_epochs : int, default 60
        Epochs of every tuning run; the stopping epoch is chosen among 1..max_epochs.
    n_validation : int, default 4
        Validation actors per fold (half of each gender), drawn from the fold's training actors.
    batch_size : int, default 64
    tuning_seed : int, default 0
        Seed of the tuning runs and of the validation actors' draw (plus the fold number).
    threads : int, default 1
        Torch threads per run.
    """

    grid: Mapping[str, tuple] = field(default_factory=lambda: {"dropout": (0.1, 0.3), "lr": (1e-3, 3e-3)})
    max_epochs: int = 60
    n_validation: int = 4
    batch_size: int = 64
    tuning_seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if not self.grid or any(not len(tuple(v)) for v in self.grid.values()):
            raise ValueError(f"CeilingConfig(grid={dict(self.grid)!r}): give at least one value per key")
        if int(self.max_epochs) < 1:
            raise ValueError(f"CeilingConfig(max_epochs={self.max_epochs!r}): must be >= 1")


def grid_points(config: CeilingConfig) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as ``{key: value}``, in the grid's order."""
    keys = list(config.grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(tuple(config.grid[k]) for k in keys))]


def _split(point: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A grid point as (model config, fit settings)."""
    fit_keys = set(FitConfig.names())
    return ({k: v for k, v in point.items() if k not in fit_keys}, {k: v for k, v in point.items() if k in fit_keys})


def _fit(config: CeilingConfig, epochs: int, fit: Mapping[str, Any]) -> dict[str, Any]:
    fixed = dict(zip(_FIXED_FIT, (int(epochs), config.batch_size, True, config.threads, None)))
    return {**fixed, **dict(fit)}


def _validation_actors(index: pd.DataFrame, fold: int, protocol: str, config: CeilingConfig) -> tuple[int, ...]:
    genders = dict(zip(index["actor"].astype(int), index["gender"]))
    train = sorted(set(genders) - set(fold_actors(fold, protocol)))
    return validation_actors(train, genders, n=config.n_validation, seed=config.tuning_seed + int(fold))


def tuning_trials(index: pd.DataFrame, config: CeilingConfig, folds: Iterable[int] | None = None,
                  protocol: str = "study") -> list[Trial]:
    """The tuning runs: one trial per fold and grid point, trained without the validation and test actors.

    Parameters
    ----------
    index : pandas.DataFrame
        The clip index (``actor``, ``gender``): the actors to draw validation actors from.
    config : CeilingConfig
    folds : iterable of int, optional
        Default: every fold of the protocol.
    protocol : str, default "study"

    Returns
    -------
    list of Trial
        Labelled ``ceiling_tune_<protocol>``, with ``data = {"actor": inner training actors}``,
        ``validation = {"actor": validation actors}``, ``fold`` and ``protocol`` set, so that a trial
        refuses to run if either set touches the fold's test actors.
    """
    folds = range(check_protocol(protocol).n_folds) if folds is None else folds
    out = []
    for fold in folds:
        val = _validation_actors(index, fold, protocol, config)
        inner = sorted(set(index["actor"].astype(int)) - set(fold_actors(fold, protocol)) - set(val))
        for point in grid_points(config):
            model_config, fit = _split(point)
            out.append(Trial(CEILING_MODEL, model_config, {"actor": inner}, config.tuning_seed, fold,
                             _fit(config, config.max_epochs, fit), f"ceiling_tune_{protocol}", "emotion",
                             protocol, {"actor": list(val)}))
    return out


def best_epoch(curve: pd.DataFrame) -> tuple[int, float, float]:
    """``(epoch, val_accuracy, val_total)`` of a validation curve's best epoch.

    Highest ``val_accuracy``; ties go to the lower ``val_total``, then the earlier epoch.

    Examples
    --------
    >>> c = pd.DataFrame({"epoch": [1, 2, 3], "val_accuracy": [0.3, 0.5, 0.5], "val_total": [2.0, 1.5, 1.2]})
    >>> best_epoch(c)
    (3, 0.5, 1.2)
    """
    order = curve.sort_values(["val_accuracy", "val_total", "epoch"], ascending=[False, True, True])
    top = order.iloc[0]
    return int(top["epoch"]), float(top["val_accuracy"]), float(top["val_total"])


def select(rows: pd.DataFrame) -> pd.DataFrame:
    """The grid with each point's best epoch, and the choice per fold.

    Parameters
    ----------
    rows : pandas.DataFrame
        Result rows of the :func:`tuning_trials` (``run_seeds``): ``fold``, ``config.*``, ``fit.*`` and
        ``validation`` (the path of each trial's ``validation.csv``).

    Returns
    -------
    pandas.DataFrame
        One row per fold and grid point: ``protocol, fold, validation_actors, <grid keys>, best_epoch,
        val_accuracy, val_total, chosen`` (one chosen point per fold: the highest validation accuracy,
        then the lower validation loss, then the earlier grid point).
    """
    out = []
    for r in rows.itertuples(index=False):
        r = r._asdict()
        spec = Trial.from_spec(json.loads((Path(r["path"]) / TRIAL_NAME).read_text(encoding="utf-8")))
        epoch, acc, loss = best_epoch(pd.read_csv(r["validation"]))
        point = {**dict(spec.config), **{k: v for k, v in spec.fit_settings().items() if k not in _FIXED_FIT}}
        out.append({"protocol": spec.protocol or "study", "fold": spec.fold,
                    "validation_actors": json.dumps(list(spec.validation["actor"])), **point,
                    "best_epoch": epoch, "val_accuracy": acc, "val_total": loss})
    table = pd.DataFrame(out)
    table["chosen"] = False
    for _, group in table.groupby("fold", sort=True):
        best = group.sort_values(["val_accuracy", "val_total"], ascending=[False, True], kind="stable").index[0]
        table.loc[best, "chosen"] = True
    return table.sort_values(["fold"], kind="stable").reset_index(drop=True)


def final_trials(selection: pd.DataFrame, config: CeilingConfig, seeds: Sequence[int],
                 grid_keys: Sequence[str] | None = None) -> list[Trial]:
    """The scored models: per fold and seed, the chosen point and epoch, trained on all training actors.

    Parameters
    ----------
    selection : pandas.DataFrame
        :func:`select`'s table (only ``chosen`` rows are used).
    config : CeilingConfig
    seeds : sequence of int
    grid_keys : sequence of str, optional
        Default: the keys of ``config.grid``.

    Returns
    -------
    list of Trial
        Labelled ``ceiling_<protocol>``, seed-major, folds fastest; no validation clips.
    """
    keys = list(config.grid) if grid_keys is None else list(grid_keys)
    chosen = selection[selection["chosen"]].sort_values("fold")
    out = []
    for seed in seeds:
        for row in chosen.itertuples(index=False):
            row = row._asdict()
            point = {k: (row[k].item() if isinstance(row[k], np.generic) else row[k]) for k in keys}
            model_config, fit = _split(point)
            out.append(Trial(CEILING_MODEL, model_config, {}, int(seed), int(row["fold"]),
                             _fit(config, int(row["best_epoch"]), fit), f"ceiling_{row['protocol']}", "emotion",
                             row["protocol"]))
    return out


def run(clips: tuple[np.ndarray, pd.DataFrame], models_dir: str, config: CeilingConfig, seeds: Sequence[int], *,
        protocol: str = "study", folds: Iterable[int] | None = None, address: str | None = None,
        evaluate: Any = None, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tune per fold on validation actors, then train and score the chosen settings: ``(selection, rows)``.

    Parameters
    ----------
    clips : (X, index)
        All clips (:func:`emovae_utils.data.load_features`).
    models_dir : path-like
        Trials go to ``models_dir/trials/`` (complete ones are reused).
    config : CeilingConfig
    seeds : sequence of int
        Seeds of the scored models.
    protocol, folds
        As :func:`tuning_trials`.
    address : str, optional
        A Ray cluster (see :func:`~emovae_utils.replication.run_seeds`).
    evaluate : callable, optional
        Scores each final model on its fold's test clips (e.g. :func:`emovae_utils.beyond.evaluate_trial`);
        the tuning runs are never scored on test actors.
    progress : bool, default False

    Returns
    -------
    selection : pandas.DataFrame
        :func:`select`'s grid and choices.
    rows : pandas.DataFrame
        Result rows of the final models.
    """
    from .replication import run_seeds

    tuning = run_seeds(tuning_trials(clips[1], config, folds, protocol), models_dir, clips, address=address,
                       progress=progress)
    selection = select(tuning)
    rows = run_seeds(final_trials(selection, config, seeds), models_dir, clips, address=address, evaluate=evaluate,
                     progress=progress)
    return selection, rows
