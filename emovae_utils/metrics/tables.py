"""One row per representation: the results table of the probes.

Emotion and gender are scored as UAR (mean over the actor folds of the
balanced accuracy), speaker identity as accuracy (its test classes are
balanced, so the two agree). Per-fold numbers in long form come from
:func:`~emovae_utils.metrics.probes.probe_rows`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .probes import ProbeResult
from .intervals import mean_interval

__all__ = ["RESULT_COLUMNS", "summary_row", "results_table", "probe_summary"]

#: Columns of :func:`results_table`, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "representation",
    "dims",
    "emotion_uar_mean",
    "emotion_uar_std",
    "speaker_id_acc",
    "gender_uar",
)


def summary_row(
    representation: str,
    dims: int,
    emotion: ProbeResult,
    speaker_id: ProbeResult | None = None,
    gender: ProbeResult | None = None,
) -> dict[str, Any]:
    """One row of :func:`results_table` from probe results.

    Parameters
    ----------
    representation : str
        E.g. ``"VAE mu (12 male actors)"``, ``"PCA"``, ``"pooled log-mel"``, ``"eGeMAPS"``.
    dims : int
        Feature dimensionality.
    emotion : ProbeResult
        From :func:`probe_uar` with emotion labels: gives ``emotion_uar_mean`` / ``_std``.
    speaker_id : ProbeResult, optional
        From :func:`speaker_id_accuracy`: ``speaker_id_acc`` = mean accuracy.
    gender : ProbeResult, optional
        From :func:`probe_uar` with gender labels: ``gender_uar`` = mean over
        the actor folds of the balanced accuracy (``gender.uar_mean``; chance
        0.5 whatever the folds' gender mix).

    Returns
    -------
    dict

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from emovae_utils.metrics import probe_uar
    >>> rng = np.random.default_rng(0)
    >>> actors = np.repeat(np.arange(1, 25), 16)
    >>> emotion = np.tile(np.arange(8), 48)
    >>> X = np.eye(8)[emotion] + 0.1 * rng.standard_normal((384, 8))
    >>> row = summary_row("one-hot emotion + noise", 8, probe_uar(X, emotion, actors))
    >>> row["emotion_uar_mean"], row["speaker_id_acc"]
    (1.0, nan)
    """
    return {
        "representation": representation,
        "dims": int(dims),
        "emotion_uar_mean": emotion.uar_mean,
        "emotion_uar_std": emotion.uar_std,
        "speaker_id_acc": np.nan if speaker_id is None else speaker_id.accuracy_mean,
        "gender_uar": np.nan if gender is None else gender.uar_mean,
    }


def results_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per representation, columns :data:`RESULT_COLUMNS`.

    Parameters
    ----------
    rows : iterable of mappings
        E.g. from :func:`summary_row`; missing numeric columns become NaN.

    Returns
    -------
    pandas.DataFrame
        Ready for ``to_csv(..., index=False)``.

    Raises
    ------
    ValueError
        On a key that is not in :data:`RESULT_COLUMNS` (catches typos), or a
        row without ``representation``.

    Examples
    --------
    >>> table = results_table([{"representation": "PCA-8", "dims": 8, "emotion_uar_mean": 0.31}])
    >>> table.loc[0, "representation"], float(table.loc[0, "emotion_uar_mean"]), bool(table["gender_uar"].isna()[0])
    ('PCA-8', 0.31, True)
    >>> list(table.columns) == list(RESULT_COLUMNS)
    True
    """
    records = []
    for row in rows:
        unknown = set(row) - set(RESULT_COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}; expected {RESULT_COLUMNS}")
        if "representation" not in row:
            raise ValueError("every row needs a 'representation'")
        records.append(dict(row))
    table = pd.DataFrame.from_records(records, columns=list(RESULT_COLUMNS))
    numeric = list(RESULT_COLUMNS[2:])
    table[numeric] = table[numeric].astype(float)
    return table


def probe_summary(per_actor: pd.DataFrame, long: pd.DataFrame, random_state: int = 0) -> pd.DataFrame:
    """One row per representation: emotion UAR mean with its 95 % interval over seeds and actors, and the other probes.

    Parameters
    ----------
    per_actor : pandas.DataFrame
        Columns ``representation, seed, actor, uar`` (emotion probe;
        :func:`~emovae_utils.metrics.probes.actor_uar` per seed). The interval is a t-interval with
        seeds as the unit and the held-out actors' spread carried through
        (:func:`~emovae_utils.metrics.intervals.mean_interval`, ``design="crossed"``); a representation with
        one seed (the baselines, deterministic) has the actors as its units. The limits are clipped to [0, 1].
    long : pandas.DataFrame
        Per-fold rows of :func:`~emovae_utils.metrics.probe_rows` (``representation, seed, target, fold, uar,
        accuracy``) for the speaker-ID accuracy and the gender UAR (means over folds and seeds).
    random_state : int, default 0
        Unused: the interval is exact (kept so that callers need not change).

    Returns
    -------
    pandas.DataFrame
        ``representation, n_seeds, emotion_uar_mean, emotion_uar_ci_low, emotion_uar_ci_high,
        speaker_id_acc, gender_uar`` in the order the representations first appear.

    Examples
    --------
    >>> per_actor = pd.DataFrame({"representation": "PCA", "seed": [0, 0, 1, 1], "actor": [1, 2, 1, 2],
    ...                           "uar": [0.3, 0.2, 0.4, 0.3]})
    >>> long = pd.DataFrame({"representation": "PCA", "seed": [0, 1], "target": "gender", "uar": [0.6, 0.7]})
    >>> row = probe_summary(per_actor, long.assign(accuracy=np.nan)).iloc[0]
    >>> int(row["n_seeds"]), round(float(row["emotion_uar_mean"]), 3), round(float(row["gender_uar"]), 2)
    (2, 0.3, 0.65)
    """
    rows = []
    for rep, g in per_actor.groupby("representation", sort=False):
        table = g.assign(seed=g["seed"].fillna(-1)).pivot_table(index="seed", columns="actor", values="uar")
        ci = mean_interval(table.to_numpy() if len(table) > 1 else table.to_numpy().ravel())
        low, high = max(ci.low, 0.0), min(ci.high, 1.0)  # a UAR lies in [0, 1]; NaN (one value) stays NaN
        other = long[long["representation"] == rep]
        mean = lambda target, col: float(other.loc[other["target"] == target, col].mean())  # noqa: E731
        rows.append({"representation": rep, "n_seeds": len(table), "emotion_uar_mean": ci.estimate,
                     "emotion_uar_ci_low": low, "emotion_uar_ci_high": high,
                     "speaker_id_acc": mean("speaker_id", "accuracy"), "gender_uar": mean("gender", "uar")})
    return pd.DataFrame(rows)
