"""One trial: the spec of a training run, and running it into its own folder.

A :class:`Trial` is one training run, fully described by its fields: a model
from the registry (:func:`emovae_utils.models.build`) with its config, a data
selection (rows of the feature index, e.g. ``{"actor": [1]}``), a seed, an
optional held-out actor fold (:data:`emovae_utils.data.ACTOR_FOLDS`) and the
settings of :func:`emovae_utils.train.fit` (a :class:`~emovae_utils.train.FitConfig`).
Its :attr:`Trial.trial_id` is a content hash of those fields, so the same trial
always lands in the same folder (see :mod:`emovae_utils.experiments` for the
folder layout). :func:`run_trial` runs one; :func:`sweep` builds the cross
product model x data x seed x fold. Many trials run side by side with
:func:`emovae_utils.experiments.run_trials` (which re-exports every public name
here), through :mod:`emovae_utils.runners`.

Examples
--------
>>> t = sweep("emotion_vae", {"actor": [1]}, seeds=[0, 1], epochs=10)[1]
>>> t.seed, t.fit.epochs, t.model
(1, 10, 'emotion_vae')
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .io import sha1_bytes, write_json, write_text
from .callbacks import VALIDATION_NAME
from .train import FitConfig

__all__ = [
    "Trial", "sweep", "selection_mask", "select_clips", "validation_positions", "run_trial", "trial_status",
    "TRIAL_NAME", "RESULT_NAME", "MODEL_NAME", "ERROR_NAME", "TRIAL_FIT_DEFAULTS",
]

TRIAL_NAME = "trial.json"
RESULT_NAME = "result.json"
MODEL_NAME = "model.pt"
ERROR_NAME = "error.txt"

# fit() arguments a trial may not set: the trial supplies them itself.
_RESERVED_FIT = frozenset({"model", "X", "config", "cond", "labels", "seed", "out_dir", "resume", "progress",
                           "callbacks"})
#: The fit settings of a trial that its ``fit`` does not give (``fit``'s own defaults otherwise).
TRIAL_FIT_DEFAULTS = {"threads": 1, "sample_every": None, "progress": False}
_LABEL = re.compile(r"^[A-Za-z0-9_.-]*$")
_ALIASES = {"actors": "actor"}  # data-selection keys accepted for index columns


# ----------------------------------------------------------------------------- the trial spec


class _Frozen(dict):
    """A read-only, hashable dict (the mapping fields of a frozen :class:`Trial`)."""

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Trial fields are read-only; use dataclasses.replace(trial, ...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __reduce__(self) -> tuple:
        return (_Frozen, (dict(self),))


def _freeze(value: Any) -> Any:
    """JSON-like and hashable: mappings -> _Frozen (str keys), sequences -> tuples, numpy -> Python."""
    if isinstance(value, Mapping):
        return _Frozen({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple, range, np.ndarray)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"Trial fields hold JSON-like values (numbers, strings, lists, dicts); got {type(value).__name__}")


def _fit_config(fit: FitConfig | Mapping[str, Any]) -> FitConfig:
    """A trial's fit settings as a :class:`~emovae_utils.train.FitConfig` over :data:`TRIAL_FIT_DEFAULTS`."""
    if isinstance(fit, FitConfig):  # the trial itself sets these two when it runs: not part of its spec
        return dataclasses.replace(fit, resume=False, progress=False) if fit.resume or fit.progress else fit
    settings = {str(k): _freeze(v) for k, v in dict(fit).items()}
    if "epochs" not in settings:
        raise ValueError("a Trial's fit settings need 'epochs'")
    bad = sorted(set(settings) & _RESERVED_FIT)
    if bad:
        raise ValueError(f"fit settings {bad} are set by the trial itself (seed is a Trial field)")
    return FitConfig.from_mapping(settings, TRIAL_FIT_DEFAULTS)


@dataclass(frozen=True, eq=False)
class Trial:
    """One training run, described completely by its fields (frozen, hashable, picklable).

    Parameters
    ----------
    model : str
        Registered model name (:func:`emovae_utils.models.available`); its
        class must live in an importable module (workers import it by name).
    config : mapping
        Constructor arguments for :func:`emovae_utils.models.build`.
    data : mapping
        Data selection: index column -> value or list of values (``"actors"``
        is accepted for ``"actor"``), e.g. ``{"statement": 1, "actor": [1, 3]}``;
        empty = every clip. See :func:`select_clips`.
    seed : int
        Seed of the model's initial weights and of :func:`~emovae_utils.train.fit`.
    fold : int or None
        Hold out the test actors of fold ``fold`` of ``protocol`` from training
        (:func:`emovae_utils.protocols.fold_actors`; the study's ``ACTOR_FOLDS[fold]`` by default);
        ``None`` holds out none.
    fit : FitConfig or mapping
        The settings of :func:`~emovae_utils.train.fit` (a
        :class:`~emovae_utils.train.FitConfig`, or a mapping of its fields,
        ``epochs`` required, read over :data:`TRIAL_FIT_DEFAULTS`: ``threads=1``,
        ``sample_every=None`` (no Griffin-Lim training samples unless asked),
        ``progress=False``). The spec holds the keys a mapping gave (or, for a
        FitConfig, ``epochs`` and the fields that differ from those defaults).
    label : str
        Free name for grouping results (letters, digits, ``_.-``); part of the id.
    cond : str, sequence of str, or None
        Condition or labels of the model, by name (:data:`emovae_utils.conditions.CONDITIONS`,
        e.g. ``"speaker_code"``), built from the training clips and passed to
        :func:`~emovae_utils.train.fit` as ``cond`` or as ``labels``, as the model
        class declares (:func:`emovae_utils.conditions.route_condition`); a model that
        takes both names both, e.g. ``("lengths", "labels")``. None (the
        default, left out of the spec and id) = neither.
    protocol : str or None
        Which folds ``fold`` indexes (:data:`emovae_utils.protocols.PROTOCOLS`: ``"study"``, ``"emobox"``);
        None (the default, left out of the spec and id) = the study's.
    validation : mapping or None
        A selection of validation clips (as ``data``, e.g. ``{"actor": [3, 9, 17, 22]}``), scored after every
        epoch (:class:`~emovae_utils.callbacks.Validation`, ``validation.csv`` in the trial's folder). It must
        share no clip with the training clips and no actor with the fold's test actors (an error otherwise).
        None (the default, left out of the spec and id) = no validation.

    Examples
    --------
    >>> t = Trial("emotion_vae", {"latent_dim": 8}, {"actor": [1]}, seed=2, fit={"epochs": 5})
    >>> t.trial_id.startswith("emotion_vae-s2-"), len(t.trial_id)
    (True, 25)
    >>> t.data["actor"], t.fit.epochs, t.fit.threads
    ((1,), 5, 1)
    """

    model: str = "emotion_vae"
    config: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    fold: int | None = None
    fit: FitConfig | Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    cond: str | tuple[str, ...] | None = None
    protocol: str | None = None
    validation: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        from . import models
        from .protocols import check_protocol, fold_actors

        if self.model not in models.available():
            raise KeyError(f"no model registered as {self.model!r}; available: {', '.join(models.available())}")
        data = {_ALIASES.get(str(k), str(k)): v for k, v in dict(self.data).items()}
        object.__setattr__(self, "config", _freeze(dict(self.config)))
        object.__setattr__(self, "data", _freeze(data))
        object.__setattr__(self, "fit", _fit_config(self.fit))
        object.__setattr__(self, "seed", int(self.seed))
        check_protocol(self.protocol)
        if self.fold is not None:
            fold_actors(self.fold, self.protocol)  # raises for a fold out of range
            object.__setattr__(self, "fold", int(self.fold))
        if self.validation is not None:
            validation = {_ALIASES.get(str(k), str(k)): v for k, v in dict(self.validation).items()}
            object.__setattr__(self, "validation", _freeze(validation))
        if not _LABEL.match(self.label):
            raise ValueError(f"label {self.label!r}: use letters, digits, '_', '.', '-' only")
        if self.cond is not None:
            from .conditions import route_condition

            if not isinstance(self.cond, str):
                object.__setattr__(self, "cond", tuple(str(c) for c in self.cond))
            route_condition(self.cond, models.model_class(self.model))  # raises unless the model takes it

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trial) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(self.content_hash)

    def fit_settings(self) -> dict[str, Any]:
        """The fit settings of the spec (the keys given, see :class:`Trial`)."""
        return self.fit.settings(TRIAL_FIT_DEFAULTS)

    def spec(self) -> dict[str, Any]:
        """The fields as plain JSON-ready values (what the id hashes; ``trial.json``)."""
        spec = {"model": self.model, "config": self.config, "data": self.data, "seed": self.seed,
                "fold": self.fold, "fit": self.fit_settings(), "label": self.label}
        for name in ("cond", "protocol", "validation"):  # absent when None: ids of earlier trials are unchanged
            if getattr(self, name) is not None:
                spec[name] = getattr(self, name)
        return json.loads(json.dumps(spec))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "Trial":
        """The trial of a :meth:`spec` (e.g. a ``trial.json``)."""
        return cls(**{k: spec[k] for k in ("model", "config", "data", "seed", "fold", "fit", "label", "cond",
                                            "protocol", "validation") if k in spec})

    @property
    def content_hash(self) -> str:
        """SHA-1 of the canonical JSON of :meth:`spec` (sorted keys; lists and tuples alike)."""
        text = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))
        return sha1_bytes(text.encode("utf-8"))

    @property
    def trial_id(self) -> str:
        """``<label or model>-s<seed>[-fold<k>]-<10 hex of the content hash>``: stable, and the folder name."""
        fold = "" if self.fold is None else f"-fold{self.fold}"
        return f"{self.label or self.model}-s{self.seed}{fold}-{self.content_hash[:10]}"

    def row(self) -> dict[str, Any]:
        """The trial's fields as flat columns: ``trial_id, label, model, seed, fold``, ``config.*``,
        ``data.*``, ``fit.*`` (lists and dicts as JSON text)."""
        out: dict[str, Any] = {"trial_id": self.trial_id, "label": self.label, "model": self.model,
                               "seed": self.seed, "fold": self.fold}
        if self.cond is not None:
            out["cond"] = self.cond if isinstance(self.cond, str) else "+".join(self.cond)
        if self.protocol is not None:
            out["protocol"] = self.protocol
        if self.validation is not None:
            out["validation"] = json.dumps(dict(self.validation))
        for group, values in (("config", self.config), ("data", self.data), ("fit", self.fit_settings())):
            for k, v in sorted(values.items()):
                out[f"{group}.{k}"] = json.dumps(v) if isinstance(v, (tuple, dict)) else v
        return out


def _as_list(value: Any, single: Callable[[Any], bool]) -> list[Any]:
    if value is None:
        return [None]
    return [value] if single(value) else list(value)


def _model_specs(models_: Any) -> list[tuple[str, Mapping[str, Any]]]:
    def pair(spec: Any) -> tuple[str, Mapping[str, Any]]:
        if isinstance(spec, str):
            return spec, {}
        if isinstance(spec, Mapping):
            return str(spec["model"]), dict(spec.get("config", {}))
        name, config = spec
        return str(name), dict(config)

    is_pair = isinstance(models_, tuple) and len(models_) == 2 and isinstance(models_[1], Mapping)
    single = isinstance(models_, (str, Mapping)) or is_pair
    return [pair(s) for s in ([models_] if single else list(models_))]


def sweep(
    models: str | tuple[str, Mapping[str, Any]] | Sequence[Any] = "emotion_vae",
    data: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    seeds: int | Iterable[int] = (0,),
    folds: int | None | Iterable[int | None] = (None,),
    *,
    label: str = "",
    cond: str | None = None,
    protocol: str | None = None,
    **fit: Any,
) -> list[Trial]:
    """Trials for every combination of model spec x data selection x seed x fold.

    Parameters
    ----------
    models : str, (str, mapping), mapping, or a list of these
        Model specs: a registered name, a ``(name, config)`` pair, or
        ``{"model": name, "config": {...}}``.
    data : mapping or list of mappings, optional
        Data selections (see :class:`Trial`); ``None`` = all clips.
    seeds : int or iterable of int
    folds : int, None, or iterable of int/None
        Held-out actor folds; ``range(5)`` = the five speaker-independent folds.
    label : str
        Given to every trial.
    cond : str, optional
        Condition name given to every trial (see :class:`Trial`).
    protocol : str, optional
        Which folds ``folds`` index (see :class:`Trial`); None = the study's.
    **fit
        Settings of :func:`~emovae_utils.train.fit` (``epochs`` required).

    Returns
    -------
    list of Trial
        In the order model, data, seed, fold (fold varying fastest).

    Examples
    --------
    >>> ts = sweep([("emotion_vae", {}), ("beta_vae", {"beta": 4.0})], seeds=[0, 1], folds=range(5), epochs=3)
    >>> len(ts), ts[-1].model, ts[-1].config["beta"], ts[-1].fold
    (20, 'beta_vae', 4.0, 4)
    """
    specs = _model_specs(models)
    selections = _as_list(data, lambda v: isinstance(v, Mapping))
    seed_list = _as_list(seeds, lambda v: isinstance(v, (int, np.integer)))
    fold_list = _as_list(folds, lambda v: isinstance(v, (int, np.integer)))
    return [
        Trial(name, config, sel or {}, int(seed), fold, fit, label, cond, protocol)
        for name, config in specs for sel in selections for seed in seed_list for fold in fold_list
    ]


# ----------------------------------------------------------------------------- one trial


def selection_mask(index: pd.DataFrame, data: Mapping[str, Any]) -> np.ndarray:
    """Which rows of ``index`` a data selection keeps: every column matches (one value or any of a sequence).

    Examples
    --------
    >>> import pandas as pd
    >>> selection_mask(pd.DataFrame({"actor": [1, 2, 3], "statement": [1, 2, 1]}), {"actors": [1, 2], "statement": 1})
    array([ True, False, False])
    """
    keep = np.ones(len(index), dtype=bool)
    for column, value in data.items():
        column = _ALIASES.get(column, column)
        if column not in index.columns:
            raise KeyError(f"data selection on {column!r}, which the index lacks (columns: {list(index.columns)})")
        values = list(value) if isinstance(value, (tuple, list)) else [value]
        keep &= index[column].isin(values).to_numpy()
    return keep


def select_clips(index: pd.DataFrame | None, data: Mapping[str, Any], fold: int | None, n: int,
                 protocol: str | None = None) -> np.ndarray:
    """Row positions of the clips a trial trains on.

    Parameters
    ----------
    index : pandas.DataFrame or None
        One row per clip (as from :func:`emovae_utils.data.load_features`).
        ``None`` only with an empty selection and no fold.
    data : mapping
        Column -> value or sequence of values; a row is kept when every column matches.
    fold : int or None
        Drop the test actors of that fold of ``protocol`` (needs an ``actor`` column).
    n : int
        Number of clips (rows of X).
    protocol : str, optional
        :data:`emovae_utils.protocols.PROTOCOLS` key; None = the study's folds.

    Returns
    -------
    np.ndarray of int
        Sorted positions; an error when none is left.

    Examples
    --------
    >>> import pandas as pd
    >>> idx = pd.DataFrame({"actor": [1, 1, 2, 3], "statement": [1, 2, 1, 1]})
    >>> select_clips(idx, {"statement": 1}, None, 4).tolist(), select_clips(idx, {}, 4, 4).tolist()
    ([0, 2, 3], [2, 3])
    """
    from .protocols import fold_actors

    if index is None:
        if data or fold is not None:
            raise ValueError("a data selection or fold needs the clip index: pass data=(X, index)")
        return np.arange(n)
    if len(index) != n:
        raise ValueError(f"the index has {len(index)} rows but X has {n} clips")
    keep = selection_mask(index, data)
    if fold is not None:
        if "actor" not in index.columns:
            raise KeyError("a fold holds out actors, but the index has no 'actor' column")
        keep &= ~index["actor"].isin(fold_actors(fold, protocol)).to_numpy()
    if not keep.any():
        raise ValueError(f"the selection {dict(data)} with fold {fold} leaves no clips to train on")
    return np.flatnonzero(keep)


def trial_status(trial: Trial, root: str | os.PathLike) -> str:
    """``"complete"``, ``"failed"`` (``error.txt`` and no result), ``"partial"`` (a checkpoint) or ``"new"``."""
    folder = Path(root) / trial.trial_id
    if (folder / RESULT_NAME).exists():
        return "complete"
    if (folder / ERROR_NAME).exists():
        return "failed"
    return "partial" if (folder / "checkpoint.pt").exists() else "new"


_DATA_CACHE: dict[str, Any] = {}


def _resolve_data(data: Any) -> tuple[np.ndarray, pd.DataFrame | None]:
    """``(X, index)``, ``X`` alone, or ``None`` (RAVDESS from ``$EMOVAE_DATA_DIR``, loaded once per process)."""
    if data is None:
        if "default" not in _DATA_CACHE:
            from .data import load_features

            _DATA_CACHE["default"] = load_features(progress=False)
        return _DATA_CACHE["default"]
    if isinstance(data, tuple) and len(data) == 2:
        return data[0], data[1]
    return data, None


def _json_list(values: Iterable[Any]) -> str:
    return json.dumps([v.item() if isinstance(v, np.generic) else v for v in values])


def _set_aside(path: Path, problem: str) -> None:
    """Rename a damaged file of a trial to ``<name>.damaged-<time>`` (kept to inspect), with a warning naming it."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        path.replace(aside)
    except FileNotFoundError:  # another process set it aside first
        return
    warnings.warn(f"{path} is damaged ({problem}); moved it aside to {aside.name}, the trial runs again",
                  stacklevel=3)


def _read_result(path: Path) -> dict[str, Any] | None:
    """A trial's ``result.json`` row; None when there is none, or it was damaged (then set aside)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        row = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # not UTF-8, or not JSON: truncated, empty, other bytes
        row, problem = None, f"{type(exc).__name__}: {exc}"
    else:
        problem = "not a result row"
    if isinstance(row, dict) and "trial_id" in row:
        return row
    _set_aside(path, problem)
    return None


def _check_checkpoint(folder: Path) -> None:
    """Set aside a ``checkpoint.pt`` that cannot be read (the trial then starts afresh instead of failing)."""
    from .train import CHECKPOINT_NAME, load_checkpoint

    path = folder / CHECKPOINT_NAME
    if path.exists():
        try:
            load_checkpoint(path)
        except ValueError as exc:
            cause = exc.__cause__
            _set_aside(path, f"{type(cause).__name__}: {cause}" if cause is not None else str(exc))


def run_trial(
    trial: Trial,
    root: str | os.PathLike,
    data: Any = None,
    *,
    evaluate: Callable[..., Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train one trial into ``root/<trial_id>/``, or read its result if already complete.

    Parameters
    ----------
    trial : Trial
    root : path-like
        Folder of the sweep.
    data : (X, index), X, or None
        The clips (X ``(N, 80, 128)``) and their index (needed for a data
        selection or a fold); ``None`` loads RAVDESS with
        :func:`emovae_utils.data.load_features` (``$EMOVAE_DATA_DIR``).
    evaluate : callable, optional
        ``evaluate(model, X, index, trial, train_positions) -> dict`` of extra
        result columns, with all clips given (e.g. to score held-out actors).
        Must be a module-level function for worker processes.

    Returns
    -------
    dict
        The result row (also ``result.json``): :meth:`Trial.row` plus
        ``status`` ("ok"), ``path``, ``n_clips``, ``train_actors`` and
        ``held_out_actors`` (JSON lists, when the index has actors),
        ``epochs_done``, ``final_<loss>`` for each history column,
        ``wall_seconds``, ``accel``, ``data_sha1`` (of the training clips;
        a complete trial is reused only for the same clips, otherwise an
        error) and the ``evaluate`` columns.

    Raises
    ------
    Exception
        Whatever training raised (the folder keeps its checkpoint; see
        :func:`run_trials`, which records it instead).
    """
    from . import models
    from .conditions import route_condition
    from .protocols import fold_actors
    from .train import HISTORY_NAME, RUN_NAME, fit, set_determinism

    folder = Path(root) / trial.trial_id
    done = folder / RESULT_NAME
    row = _read_result(done)
    if row is not None:
        if data is not None:
            _check_same_data(trial, row, data)
        return row
    folder.mkdir(parents=True, exist_ok=True)
    _check_checkpoint(folder)
    write_json(folder / TRIAL_NAME, trial.spec())
    X, index = _resolve_data(data)
    positions = select_clips(index, trial.data, trial.fold, len(X), trial.protocol)
    t0 = time.perf_counter()
    set_determinism(trial.seed, trial.fit.threads)  # the initial weights depend on the seed only
    model = models.build(trial.model, **trial.config)
    X_train = np.asarray(X)[positions]
    inputs = route_condition(trial.cond, type(model), X_train,
                             None if index is None else index.iloc[positions].reset_index(drop=True))
    monitor = _validation(trial, model, X, index, positions)
    history = fit(model, X_train, dataclasses.replace(trial.fit, resume=True, progress=False), seed=trial.seed,
                  out_dir=folder, callbacks=monitor, **inputs)
    models.save_model(folder / MODEL_NAME, model, trial=trial.spec(), trial_id=trial.trial_id)
    run_info = json.loads((folder / RUN_NAME).read_text(encoding="utf-8"))
    row = trial.row()
    row.update(status="ok", path=str(folder), n_clips=int(len(positions)))
    if index is not None and "actor" in index.columns:
        row["train_actors"] = _json_list(sorted(pd.unique(index["actor"].to_numpy()[positions])))
        row["held_out_actors"] = _json_list(fold_actors(trial.fold, trial.protocol)) if trial.fold is not None else "[]"
    last = history.iloc[-1] if len(history) else None
    row["epochs_done"] = int(last["epoch"]) if last is not None else 0
    for column in history.columns.drop("epoch"):
        row[f"final_{column}"] = float(last[column]) if last is not None else float("nan")
    if monitor:
        row["validation"] = str(folder / VALIDATION_NAME)
    row.update(stopped_early=bool(run_info.get("stopped_early", False)), flat_epoch=run_info.get("flat_epoch"))
    row.update(data_sha1=run_info.get("data_sha1"), wall_seconds=round(time.perf_counter() - t0, 3),
               accel=run_info.get("accel"), history=str(folder / HISTORY_NAME), model_path=str(folder / MODEL_NAME))
    if evaluate is not None:
        model.eval()
        row.update(dict(evaluate(model, X, index, trial, positions)))
    (folder / ERROR_NAME).unlink(missing_ok=True)
    write_json(done, row)  # last: its presence marks the trial complete
    return row


def validation_positions(trial: Trial, index: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
    """Row positions of a trial's validation clips, checked against its training clips and test actors.

    Raises
    ------
    ValueError
        When a validation clip is also a training clip, or belongs to one of the fold's test actors.
    """
    from .protocols import fold_actors

    val = select_clips(index, trial.validation, None, len(index))
    shared = np.intersect1d(val, positions)
    if len(shared):
        raise ValueError(f"trial {trial.trial_id}: {len(shared)} validation clips are also training clips; "
                         "validate on actors the trial does not train on")
    if trial.fold is not None:
        test = set(fold_actors(trial.fold, trial.protocol)) & set(index["actor"].to_numpy()[val].tolist())
        if test:
            raise ValueError(f"trial {trial.trial_id}: validation on test actors {sorted(test)} of fold "
                             f"{trial.fold}; choose validation actors among the training actors")
    return val


def _validation(trial: Trial, model: Any, X: Any, index: pd.DataFrame | None, positions: np.ndarray) -> list[Any]:
    """The :class:`~emovae_utils.callbacks.Validation` callback of a trial with validation clips (else none)."""
    from .callbacks import Validation
    from .conditions import route_condition

    if trial.validation is None:
        return []
    if index is None:
        raise ValueError("validation clips are chosen from the clip index: pass data=(X, index)")
    val = validation_positions(trial, index, positions)
    inputs = route_condition(trial.cond, type(model), np.asarray(X)[val], index.iloc[val].reset_index(drop=True))
    return [Validation(np.asarray(X)[val], **inputs)]


def _check_same_data(trial: Trial, row: Mapping[str, Any], data: Any) -> None:
    """A complete trial's result is only reused for the same clips: compare the selection's hash."""
    from .io import sha1_array

    stored = row.get("data_sha1")
    if not stored:
        return
    X, index = _resolve_data(data)
    positions = select_clips(index, trial.data, trial.fold, len(X), trial.protocol)
    if sha1_array(np.ascontiguousarray(np.asarray(X)[positions], dtype=np.float32)) != stored:
        raise ValueError(
            f"{row.get('path', trial.trial_id)} holds a complete result trained on other clips than the data "
            "given now (other features or preprocessing?); use another root folder, or delete that trial's folder"
        )


def _failed_row(trial: Trial, root: str, error: str, details: str) -> dict[str, Any]:
    """A failed trial's result row; ``details`` (a traceback, or the cause) go to its ``error.txt``."""
    folder = Path(root) / trial.trial_id
    try:
        write_text(folder / ERROR_NAME, details)
    except OSError:
        pass
    return {**trial.row(), "status": "failed", "path": str(folder), "error": error}


def _run_recorded(trial: Trial, root: str, data: Any, evaluate: Any) -> dict[str, Any]:
    """:func:`run_trial`, with any exception written to ``error.txt`` and returned as a failed row."""
    try:
        return run_trial(trial, root, data, evaluate=evaluate)
    except Exception as exc:  # noqa: BLE001 - one failed trial must not stop the sweep
        return _failed_row(trial, root, f"{type(exc).__name__}: {exc}", traceback.format_exc())
