"""Figures of the probes: confusion matrices, the results table as bars, emotion kept against speaker kept.

Notebooks 05 (the report's representations) and 06 (the variants beyond it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .common import _emotion_order

__all__ = ["plot_confusion_matrices", "plot_probe_summary", "plot_emotion_vs_speaker"]


def plot_confusion_matrices(
    confusions: Mapping[str, pd.DataFrame], order: Sequence | None = None, ncols: int = 3, title: str = "",
) -> matplotlib.figure.Figure:
    """Row-normalised confusion matrices (per-class recall on the diagonal), one panel each.

    Parameters
    ----------
    confusions : mapping of str to pandas.DataFrame
        Name -> counts (rows true, columns predicted), e.g.
        ``ProbeResult.confusion_matrix()``.
    order : sequence, optional
        Class order; default: emotion order when the classes are emotions.
    ncols : int
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = list(confusions)
    ncols = min(ncols, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 4.0 * nrows), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes.flat, names):
        c = confusions[name]
        cls = list(order) if order is not None else _emotion_order(c.index)
        c = c.reindex(index=cls, columns=cls, fill_value=0)
        rec = c.div(c.sum(axis=1).replace(0, np.nan), axis=0)
        uar = float(np.nanmean(np.diag(rec.to_numpy())))
        sns.heatmap(rec, ax=ax, vmin=0, vmax=1, cmap="Blues", annot=True, fmt=".2f", cbar=False,
                    annot_kws={"fontsize": 7}, square=True)
        ax.set_title(f"{name}\nUAR of all folds' predictions {uar:.2f}", fontsize=10)
        ax.set(xlabel="predicted", ylabel="true")
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def _uar_error_bars(table: pd.DataFrame, values: np.ndarray) -> np.ndarray | None:
    """``xerr`` of the emotion bars: the interval (2, N) when the table has one, else the std, else none."""
    if {"emotion_uar_ci_low", "emotion_uar_ci_high"} <= set(table.columns):
        low = table["emotion_uar_ci_low"].to_numpy(dtype=float)
        high = table["emotion_uar_ci_high"].to_numpy(dtype=float)
        return np.clip(np.vstack([values - low, high - values]), 0, None)
    if "emotion_uar_std" in table.columns:
        return table["emotion_uar_std"].to_numpy(dtype=float)
    return None


def plot_probe_summary(
    table: pd.DataFrame, fold_values: Mapping[str, Sequence[float]] | None = None,
    chance: Mapping[str, float] | None = None,
    references: Mapping[str, float | tuple[float, float]] | None = None, title: str = "",
) -> matplotlib.figure.Figure:
    """Bar charts of the probe results: emotion UAR, gender accuracy, speaker-ID accuracy.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per representation: ``representation``, ``emotion_uar_mean``, ``gender_uar``,
        ``speaker_id_acc``, and the emotion UAR's error bar as ``emotion_uar_ci_low`` /
        ``emotion_uar_ci_high`` (a 95 % interval) or ``emotion_uar_std``
        (:func:`emovae_utils.metrics.results_table`).
    fold_values : mapping of str to sequence of float, optional
        Representation -> per-fold emotion UAR, drawn as dots on the bars.
    chance : mapping of str to float, optional
        Chance level per column (``emotion_uar_mean``, ``gender_uar``,
        ``speaker_id_acc``); default 1/8, 1/2, 1/24.
    references : mapping of str to float or (low, high), optional
        Published emotion UARs drawn as context on the emotion panel: a line
        for a number, a band for a range.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    chance = {"emotion_uar_mean": 1 / 8, "gender_uar": 1 / 2, "speaker_id_acc": 1 / 24, **(chance or {})}
    panels = [("emotion_uar_mean", "emotion UAR (speaker-independent, 5 actor folds)"),
              ("gender_uar", "gender UAR (actor folds)"),
              ("speaker_id_acc", "speaker-ID accuracy (split by repetition)")]
    reps = list(table["representation"])
    y = np.arange(len(reps))
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.45 * len(reps) + 2.2), sharey=True, layout="constrained",
                             gridspec_kw={"width_ratios": [1.6, 1, 1]})
    ref_colors = sns.color_palette("dark", max(len(references or {}), 1))
    for ax, (col, name) in zip(axes, panels):
        vals = table[col].to_numpy(dtype=float)
        err = _uar_error_bars(table, vals) if col == "emotion_uar_mean" else None
        ax.barh(y, np.nan_to_num(vals), xerr=err, color="tab:blue", alpha=0.75, capsize=3, height=0.7)
        right = np.nan_to_num(vals) + (np.nan_to_num(np.max(err, axis=0) if np.ndim(err) == 2 else err)
                                       if err is not None else 0.0)
        if col == "emotion_uar_mean" and fold_values:
            for k, (yi, rep) in enumerate(zip(y, reps)):
                if rep in fold_values:
                    f = np.asarray(fold_values[rep], dtype=float)
                    ax.scatter(f, np.full(f.size, yi), color="black", s=10, zorder=3,
                               label="per fold" if k == 0 else None)
                    right[k] = max(right[k], float(np.nanmax(f)))
        for yi, v, r in zip(y, vals, right):
            ax.text(chance[col] + 0.02 if np.isnan(v) else r + 0.015, yi, "not run" if np.isnan(v) else f"{v:.2f}",
                    va="center", fontsize=8, color="0.5" if np.isnan(v) else "black")
        ax.axvline(chance[col], color="tab:red", ls="--", lw=1.2, label=f"chance {chance[col]:.3g}")
        if col == "emotion_uar_mean":
            for (ref, val), color in zip((references or {}).items(), ref_colors):
                if np.ndim(val):
                    ax.axvspan(val[0], val[1], color=color, alpha=0.15, label=f"{ref} ({val[0]:.2f}-{val[1]:.2f})")
                else:
                    ax.axvline(val, color=color, ls=":", lw=1.5, label=f"{ref} ({val:.2f})")
        ax.set(xlim=(0, 1.07), title=name, xlabel="accuracy" if col == "speaker_id_acc" else "UAR")
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_yticks(y, reps)
    axes[0].invert_yaxis()
    if title:
        fig.suptitle(title)
    return fig


def plot_emotion_vs_speaker(
    table: pd.DataFrame, emotion_goal: float | None = None, speaker_goal: float | None = None,
    chance: tuple[float, float] = (1 / 24, 1 / 8), title: str = "",
) -> matplotlib.figure.Figure:
    """Emotion UAR against speaker-ID accuracy, one point per representation, with intervals.

    Parameters
    ----------
    table : pandas.DataFrame
        ``variant``, ``emotion_uar_mean``, ``emotion_uar_ci_low``, ``emotion_uar_ci_high``,
        ``speaker_id_acc`` and optionally ``kind`` ("variant" drawn as filled circles,
        "baseline" as open squares) and ``dims``
        (:func:`emovae_utils.beyond.variants_table`). Rows without a speaker-ID accuracy are
        drawn as horizontal lines (e.g. a trivial predictor).
    emotion_goal, speaker_goal : float, optional
        Draw the goal region (emotion UAR >= ``emotion_goal`` with speaker ID <= ``speaker_goal``).
    chance : (float, float), default (1/24, 1/8)
        Speaker-ID and emotion chance levels, drawn as dotted lines.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        Wanted: up (emotion) and left (no speaker).
    """
    fig, ax = plt.subplots(figsize=(9.5, 6.5), constrained_layout=True)
    kinds = table["kind"] if "kind" in table else pd.Series("variant", index=table.index)
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(table), 2)))
    for i, (row, kind) in enumerate(zip(table.itertuples(index=False), kinds)):
        y = float(row.emotion_uar_mean)
        if not np.isfinite(y):
            continue
        label = str(row.variant) + (f" ({int(row.dims)} dims)" if "dims" in table and np.isfinite(row.dims) else "")
        if not np.isfinite(float(row.speaker_id_acc)):
            ax.axhline(y, color=colors[i], lw=1, ls="--", label=label)
            continue
        err = np.array([[y - row.emotion_uar_ci_low], [row.emotion_uar_ci_high - y]])
        ax.errorbar(float(row.speaker_id_acc), y, yerr=np.where(np.isfinite(err), err, 0), fmt="o" if kind == "variant"
                    else "s", color=colors[i], mfc=colors[i] if kind == "variant" else "white", ms=8, capsize=3,
                    label=label)
    ax.axvline(chance[0], color="grey", ls=":", lw=1)
    ax.axhline(chance[1], color="grey", ls=":", lw=1)
    ax.text(chance[0], ax.get_ylim()[0], " speaker chance", color="grey", fontsize=8, va="bottom")
    if emotion_goal is not None and speaker_goal is not None:
        top = max(ax.get_ylim()[1], emotion_goal + 0.05)
        ax.fill_between([0, speaker_goal], emotion_goal, top, color="tab:green", alpha=0.12, label="goal region")
        ax.set_ylim(top=top)
    ax.set_xlim(left=0)
    ax.set_xlabel("speaker-ID accuracy from the representation (24 actors, split by repetition)")
    ax.set_ylabel("emotion UAR, held-out actors (mean, 95 % interval)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or "Emotion kept against speaker kept")
    return fig
