"""Training curves: reconstruction loss and KL against epoch (the report's Figures 3 and 5).

One line per run (:func:`plot_losses`), or per group of seeds a mean and a band (:func:`plot_loss_bands`);
:func:`flat_marks` turns the seeds' flat epochs into the marks they draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["plot_losses", "plot_loss_bands", "flat_marks"]


#: At most this many points per loss curve are drawn (block means beyond it).
_MAX_LOSS_POINTS = 2000


#: The loss panels: (history column, panel title, y label).
_LOSS_PANELS = (("reconstruction", "Reconstruction", "reconstruction loss (MSE, dB²)"),
                ("kl", "KL", "KL divergence (nats)"))


class _LossCurve(NamedTuple):
    """One curve of the loss panels, already thinned: a centre line and an optional band per column."""

    label: str
    epoch: np.ndarray                                   # (n,)
    center: dict[str, np.ndarray]                       # column -> (n,)
    band: dict[str, tuple[np.ndarray, np.ndarray]] | None  # column -> (low, high), each (n,)


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Means of consecutive blocks of ``k`` values along the last axis (the last block may be shorter).

    The same as a running mean of width ``k`` read at every ``k``-th point.

    >>> _block_mean(np.arange(8.0), 3)
    array([1. , 4. , 6.5])
    """
    a = np.asarray(a, dtype=float)
    if k <= 1:
        return a
    n = a.shape[-1]
    full = n // k * k
    head = a[..., :full].reshape(*a.shape[:-1], full // k, k).mean(axis=-1)
    if full == n:
        return head
    return np.concatenate([head, a[..., full:].mean(axis=-1, keepdims=True)], axis=-1)


def _loss_curve(
    label: str, runs: Mapping, band: str | None, max_points: int,
) -> _LossCurve:
    """Seeds' histories -> mean curve (and band) on their common epochs, thinned to <= ``max_points``."""
    if not runs:
        raise ValueError(f"group {label!r} has no history")
    frames = [h.drop_duplicates("epoch", keep="last").set_index("epoch").sort_index() for h in runs.values()]
    common = frames[0].index
    for f in frames[1:]:
        common = common.intersection(f.index)
    if len(common) == 0:
        raise ValueError(f"the histories of group {label!r} share no epoch")
    k = max(1, -(-len(common) // max(int(max_points), 1)))
    epoch = _block_mean(common.to_numpy(dtype=float), k)
    center: dict[str, np.ndarray] = {}
    bands: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    n = len(frames)
    for column, _, _ in _LOSS_PANELS:
        Y = _block_mean(np.stack([f[column].reindex(common).to_numpy(dtype=float) for f in frames]), k)
        center[column] = Y.mean(axis=0)
        if band is None or n < 2:
            continue
        if band == "range":
            bands[column] = (Y.min(axis=0), Y.max(axis=0))
        else:  # Student-t 95 % interval of the mean over seeds
            from scipy import stats

            half = stats.t.ppf(0.975, n - 1) * Y.std(axis=0, ddof=1) / np.sqrt(n)
            bands[column] = (center[column] - half, center[column] + half)
    return _LossCurve(label, epoch, center, bands or None)


def _finite(value) -> bool:
    """Whether a number or every number of a tuple is finite."""
    return bool(np.all(np.isfinite(np.asarray(value, dtype=float))))


def _draw_loss_panels(
    curves: Sequence[_LossCurve], recon_ylim: tuple[float, float] | None, kl_ylim: tuple[float, float] | None,
    marks: Mapping[str, float | tuple[float, float]] | None, baselines: Mapping[str, float] | None,
    title: str, legend: bool,
) -> matplotlib.figure.Figure:
    """The two-panel layout of Figures 3 and 5, shared by :func:`plot_losses` and :func:`plot_loss_bands`."""
    notes = [k for k, v in (marks or {}).items() if not _finite(v)]  # e.g. no seed flattened: a legend entry
    marks = {k: v for k, v in (marks or {}).items() if _finite(v)}
    baselines = {k: v for k, v in (baselines or {}).items() if _finite(v)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    palette = sns.color_palette("tab10", max(len(curves), 1))
    for c, color in zip(curves, palette):
        for ax, (column, _, _) in zip(axes, _LOSS_PANELS):
            if c.band is not None:
                ax.fill_between(c.epoch, *c.band[column], color=color, alpha=0.22, lw=0)
            ax.plot(c.epoch, c.center[column], lw=0.8 if c.band is None else 1.0, color=color, label=c.label)
    for k, (label, where) in enumerate(marks.items()):
        if np.ndim(where) and where[0] == where[1]:  # an empty range: a line
            where = where[0]
        span = np.ndim(where) > 0
        for ax in axes:
            if span:  # an epoch range, e.g. where the seeds' losses flatten
                ax.axvspan(float(where[0]), float(where[1]), color="0.3", alpha=0.15, lw=0)
            else:
                ax.axvline(where, color="0.3", ls="--", lw=1)
        axes[0].annotate(f" {label}", (float(where[0]) if span else where, 0.95 - 0.08 * k),
                         xycoords=("data", "axes fraction"), ha="left", fontsize="small", backgroundcolor="white")
    for ax, (column, name, ylabel), ylim in zip(axes, _LOSS_PANELS, (recon_ylim, kl_ylim)):
        if ylim is not None:  # the report's axis, raised where the curves (after 5 % of epochs) exceed it
            tops = [-np.inf]
            for c in curves:
                upper = (c.band[column][1] if c.band is not None else c.center[column])[len(c.epoch) // 20:]
                upper = upper[np.isfinite(upper)]
                tops.append(float(upper.max()) if upper.size else -np.inf)
            ax.set_ylim(ylim[0], max(ylim[1], 1.05 * max(tops)))
        ax.set(xlabel="epoch", ylabel=ylabel, title=name)
    if baselines:  # trivial predictors: dotted lines labelled at the right edge, always inside the axis
        ax = axes[0]
        lowest = min(baselines, key=baselines.get) if len(baselines) > 1 else None
        for label, value in baselines.items():  # the lowest label below its line, so that two close ones do not overlap
            ax.axhline(value, color="0.25", ls=":", lw=1.2)
            ax.text(0.995, value, f"{label} ", transform=ax.get_yaxis_transform(), ha="right",
                    va="top" if label == lowest else "bottom", fontsize="small", color="0.25")
        lo, hi = ax.get_ylim()
        b_lo, b_hi = float(min(baselines.values())), float(max(baselines.values()))
        if b_hi > hi - 0.07 * (hi - lo):  # room for the label above the line
            hi = b_hi + 0.08 * (b_hi - min(lo, b_lo))
        if lowest is not None and b_lo < lo + 0.07 * (hi - lo):  # room for the label below the lowest line
            lo = b_lo - 0.08 * (hi - b_lo)
        elif b_lo < lo:
            lo = b_lo - 0.03 * (hi - b_lo)
        ax.set_ylim(lo, hi)
    for note in notes:  # no line, only the label in the legend
        axes[0].plot([], [], " ", label=note)
    if legend or notes:
        axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def plot_losses(
    histories: dict[str, pd.DataFrame], recon_ylim: tuple[float, float] | None = None,
    kl_ylim: tuple[float, float] | None = None, marks: Mapping[str, float | tuple[float, float]] | None = None,
    title: str = "",
) -> matplotlib.figure.Figure:
    """Reconstruction loss and KL against epoch, two panels (the report's Figures 3 and 5).

    One line per training run; :func:`plot_loss_bands` draws several seeds
    of each run as a mean and a band on the same layout.

    Parameters
    ----------
    histories : dict of str to pandas.DataFrame
        Label to a training history with columns ``epoch``, ``reconstruction``, ``kl``.
    recon_ylim, kl_ylim : tuple of float, optional
        Axis limits, e.g. the report's (0, 900) and (0, 14) to compare with its figure. The upper
        limit is raised when a curve exceeds it after its first 5 % of epochs (early transients stay cut).
    marks : mapping of str to int or (int, int), optional
        Label to an epoch drawn as a dashed vertical line (e.g. where the losses flatten), or to an
        epoch range drawn as a shaded vertical span. A mark that is not finite (NaN) draws no line: its
        label is a legend entry (e.g. ``"not flat in 2 of 2 seeds"``, see :func:`flat_marks`).
    title : str

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    A history longer than 2000 epochs is drawn as means of blocks of
    ``k = ceil(n / 2000)`` consecutive epochs (see :func:`plot_loss_bands`).
    """
    curves = [_loss_curve(label, {0: h}, None, _MAX_LOSS_POINTS) for label, h in histories.items()]
    return _draw_loss_panels(curves, recon_ylim, kl_ylim, marks, None, title, legend=len(histories) > 1)


def plot_loss_bands(
    groups: Mapping[str, Mapping[int, pd.DataFrame]], recon_ylim: tuple[float, float] | None = None,
    kl_ylim: tuple[float, float] | None = None, marks: Mapping[str, float | tuple[float, float]] | None = None,
    baselines: Mapping[str, float] | None = None, title: str = "", band: str = "range",
    max_points: int = _MAX_LOSS_POINTS,
) -> matplotlib.figure.Figure:
    """Figures 3 and 5 over several seeds: per group the mean loss over seeds and a band around it.

    Same two panels (Reconstruction, KL) and axis rules as :func:`plot_losses`.
    Each group is drawn on the epochs that all its seeds reached (histories
    of different lengths are cut to the common epochs). A group of one seed
    is drawn as a line without a band.

    Parameters
    ----------
    groups : mapping of str to mapping of int to pandas.DataFrame
        Label (e.g. ``"Actor 01"``, ``"12 male actors"``) to seed -> training
        history with columns ``epoch``, ``reconstruction``, ``kl``. The legend
        gives each label with its number of seeds, e.g. ``"Actor 01 (5 seeds)"``.
    recon_ylim, kl_ylim : tuple of float, optional
        The report's axis limits; the upper limit is raised when a line or band
        exceeds it after its first 5 % of epochs.
    marks : mapping of str to int or (int, int), optional
        Label to an epoch (dashed vertical line) or to an epoch range (shaded
        vertical span, e.g. the range of "flat from" epochs over the seeds, see
        :func:`flat_marks`). A mark that is not finite (NaN) draws no line: its
        label is a legend entry (e.g. ``"not flat in 2 of 2 seeds"``).
        Baselines that are not finite are left out.
    baselines : mapping of str to float, optional
        Label to a reconstruction loss of a trivial predictor (e.g. the mean
        spectrogram of the training clips), drawn as a dotted horizontal line
        on the reconstruction panel, labelled at its right edge (the lowest of
        several below its line, so that close ones stay legible). The
        y limits are widened so that every baseline and its label stay
        visible, also above ``recon_ylim``.
    title : str
    band : {"range", "ci"}, default "range"
        ``"range"``: minimum to maximum over seeds; ``"ci"``: pointwise 95 %
        Student-t interval of the mean over seeds, ``mean ± t(0.975, n-1) · sd / sqrt(n)``.
    max_points : int, default 2000
        Curves longer than this are thinned before drawing: each seed's
        history is replaced by means of blocks of ``k = ceil(n / max_points)``
        consecutive epochs (a running mean of width ``k`` read every ``k``-th
        epoch), drawn at the block's mean epoch; mean and band are taken over
        seeds of these block means. Histories of 25 000 epochs x 5 seeds then draw quickly.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels, Reconstruction and KL; the legend names each group with its number of seeds.

    Raises
    ------
    ValueError
        For an unknown ``band``, an empty group or a group whose seeds share no epoch.

    Examples
    --------
    >>> h = lambda n: pd.DataFrame({"epoch": np.arange(1, n + 1), "reconstruction": 900.0 / np.arange(1, n + 1),
    ...                             "kl": np.full(n, 8.0)})
    >>> fig = plot_loss_bands({"Actor 01": {0: h(300), 1: h(250)}}, baselines={"mean spectrogram": 193.0})
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['Actor 01 (2 seeds)']
    >>> plt.close(fig)
    """
    if band not in ("range", "ci"):
        raise ValueError(f"band must be 'range' or 'ci', got {band!r}")
    if not groups:
        raise ValueError("no group to plot")
    curves = []
    for label, runs in groups.items():
        n = len(runs)
        c = _loss_curve(label, runs, band, max_points)
        curves.append(c._replace(label=f"{label} ({n} seed{'s' if n != 1 else ''})"))
    return _draw_loss_panels(curves, recon_ylim, kl_ylim, marks, baselines, title, legend=True)


def flat_marks(flat: Mapping[str, Sequence[float]], rule: str = "flat rule",
               horizon: float | None = None) -> dict[str, float | tuple[float, float]]:
    """Marks for :func:`plot_loss_bands` that say what the verdict table says of each group's seeds.

    A seed that never flattens (NaN) is censored, not drawn as flat: the span
    covers the seeds that do, and the label counts them ("k of n seeds", as
    the table's "k of n flat"); a group none of whose seeds flattens gets a
    NaN mark, which draws only its label in the legend.

    Parameters
    ----------
    flat : mapping of str to sequence of float
        Group name (``""`` for a figure of one group) to the epoch from which
        each seed's losses are flat, NaN where a seed is not flat by the end
        (e.g. the ``both`` column of ``replication.flat_epochs``).
    rule : str
        Named in the labels.
    horizon : float, optional
        The last epoch the rule can see (``replication.flat_epochs``' ``horizon``), named for censored seeds.

    Returns
    -------
    dict of str to (float, float) or float
        Label to the (first, last) flat epoch over the seeds that flatten, or to NaN.

    Examples
    --------
    >>> flat_marks({"": [16000.0, 18000.0, np.nan]}, horizon=24000)
    {'flat (flat rule) in 2 of 3 seeds, 16000-18000; 1 not flat by epoch 24000': (16000.0, 18000.0)}
    >>> flat_marks({"24 actors": [np.nan, np.nan]})
    {'24 actors: flat (flat rule) in 0 of 2 seeds': nan}
    """
    marks: dict[str, float | tuple[float, float]] = {}
    for name, epochs in flat.items():
        epochs = np.asarray(epochs, dtype=float)
        done = epochs[np.isfinite(epochs)]
        label = f"{name}: " if name else ""
        label += f"flat ({rule}) in {done.size} of {epochs.size} seeds"
        if done.size:
            where = (float(done.min()), float(done.max()))
            label += f", {where[0]:.0f}-{where[1]:.0f}"
        if done.size < epochs.size and horizon is not None:
            label += f"{'; ' if done.size else ', '}{epochs.size - done.size} not flat by epoch {horizon:.0f}"
        marks[label] = where if done.size else float("nan")
    return marks
