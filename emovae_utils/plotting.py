"""Figures of the report, drawn with matplotlib and seaborn.

Every function draws and returns a :class:`matplotlib.figure.Figure` (or
draws into a given axis); :func:`save_figure` writes it under the report's
name. Nothing here calls ``plt.show``: notebooks display the returned figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

import librosa.display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .data import EMOTIONS
from .dsp import PreprocessConfig
from .io import atomic_write
from .paths import project_path

__all__ = [
    "save_figure",
    "plot_log_mel",
    "plot_log_mel_grid",
    "plot_vad",
    "plot_voiced_lengths",
    "plot_dataset_summary",
    "plot_losses",
    "plot_loss_bands",
    "plot_reconstructions",
    "EMOTION_COLORS",
    "plot_mu_sigma_by_emotion",
    "plot_mu_sigma_by_dimension",
    "plot_mi_heatmaps",
    "plot_confusion_matrices",
    "plot_probe_summary",
    "plot_count_sensitivity",
    "plot_embedding_grid",
]


def save_figure(fig: matplotlib.figure.Figure, name: str, figures_dir: str | os.PathLike = "figures") -> Path:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` (150 dpi, tight bounding box), atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    name : str
        File stem saying which report figure or table it is, e.g. ``"fig3_single_actor_losses"``.
    figures_dir : str or os.PathLike
        Relative paths are taken from the project root.

    Returns
    -------
    pathlib.Path
    """
    path = project_path(figures_dir, create=True) / f"{name}.png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=150, bbox_inches="tight"))


def plot_log_mel(
    S_db: np.ndarray, ax: matplotlib.axes.Axes | None = None, title: str = "",
    config: PreprocessConfig | None = None, colorbar: bool = False, vmin: float | None = None,
    vmax: float | None = None,
) -> matplotlib.axes.Axes:
    """Draw one dB mel spectrogram with time (s) and mel-frequency (Hz) axes.

    Parameters
    ----------
    S_db : np.ndarray, shape (n_mels, T)
    ax : matplotlib.axes.Axes, optional
    title : str
    config : PreprocessConfig, optional
        For the sample rate, hop and frequency range of the axes.
    colorbar : bool
    vmin, vmax : float, optional
        Colour limits in dB.

    Returns
    -------
    matplotlib.axes.Axes
    """
    c = config or PreprocessConfig()
    ax = ax or plt.subplots(figsize=(5, 3))[1]
    img = librosa.display.specshow(
        S_db, sr=c.sr, hop_length=c.hop_length, x_axis="time", y_axis="mel", fmin=c.fmin, fmax=c.fmax,
        ax=ax, vmin=vmin, vmax=vmax, cmap="magma",
    )
    ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(img, ax=ax, format="%+2.0f dB")
    return ax


def plot_log_mel_grid(
    spectrograms: Sequence[np.ndarray] | np.ndarray, titles: Sequence[str], ncols: int = 4,
    suptitle: str = "", config: PreprocessConfig | None = None,
) -> matplotlib.figure.Figure:
    """Small multiples of dB mel spectrograms on one colour scale (e.g. the report's Table 1).

    Parameters
    ----------
    spectrograms : sequence of np.ndarray, each (n_mels, T)
    titles : sequence of str
    ncols : int
    suptitle : str
    config : PreprocessConfig, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(spectrograms)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    vmin = float(min(np.min(s) for s in spectrograms))
    vmax = float(max(np.max(s) for s in spectrograms))
    for ax, S, title in zip(axes.flat, spectrograms, titles):
        plot_log_mel(S, ax=ax, title=title, config=config, vmin=vmin, vmax=vmax)
        ax.label_outer()
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.colorbar(axes.flat[0].collections[0], ax=axes, format="%+2.0f dB", shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_vad(y: np.ndarray, mask: np.ndarray, sr: int = 16000, title: str = "") -> matplotlib.figure.Figure:
    """Waveform with the VAD decision: voiced regions shaded, the mask drawn below.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
    mask : np.ndarray of bool, shape (n,)
        From :func:`emovae_utils.dsp.voiced_mask`.
    sr : int
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = np.arange(len(y)) / sr
    fig, ax = plt.subplots(figsize=(9, 2.8), layout="constrained")
    ax.plot(t, y, lw=0.5, color="0.25", label="waveform")
    peak = float(np.max(np.abs(y))) or 1.0
    ax.fill_between(t, -peak, peak, where=mask, color="tab:green", alpha=0.2, step="mid", label="kept (voiced)")
    ax.plot(t, np.where(mask, 1.05 * peak, -1.05 * peak), color="tab:green", lw=1, label="VAD decision")
    ax.set(xlabel="time (s)", ylabel="amplitude", xlim=(0, t[-1] if len(t) else 1), title=title)
    ax.legend(loc="upper right", fontsize="small")
    return fig


def plot_voiced_lengths(voiced_frames: np.ndarray, n_frames: int = 128) -> matplotlib.figure.Figure:
    """Histogram of voiced lengths in mel frames against the fixed window.

    Parameters
    ----------
    voiced_frames : np.ndarray of int
        Mel frames per clip after the VAD, before fixing the length.
    n_frames : int
        The model's window; shorter clips are padded, longer ones cropped.

    Returns
    -------
    matplotlib.figure.Figure
    """
    v = np.asarray(voiced_frames)
    short, long_ = int((v < n_frames).sum()), int((v > n_frames).sum())
    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    ax.hist(v, bins=40, color="tab:blue", alpha=0.8)
    ax.axvline(n_frames, color="tab:red", lw=2)
    ax.text(n_frames, ax.get_ylim()[1] * 0.95, f"  {n_frames} frames\n  padded: {short} ({short / len(v):.0%})\n"
            f"  cropped: {long_} ({long_ / len(v):.0%})", va="top", color="tab:red")
    ax.set(xlabel="voiced length (mel frames of 16 ms)", ylabel="clips",
           title=f"Voiced length of {len(v)} clips vs the {n_frames}-frame window")
    return fig


def plot_dataset_summary(index: pd.DataFrame, sr: int = 16000) -> matplotlib.figure.Figure:
    """Clips per actor (by gender) and per emotion, and durations before and after the VAD.

    Parameters
    ----------
    index : pandas.DataFrame
        From :func:`emovae_utils.data.load_features` (needs ``n_samples`` and ``n_voiced_samples``).
    sr : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6), layout="constrained")
    sns.countplot(data=index, x="actor", hue="gender", ax=axes[0], dodge=False)
    axes[0].set(title="Clips per actor", ylabel="clips")
    axes[0].tick_params(axis="x", labelsize=7)
    axes[0].legend(loc="lower right", fontsize="small", framealpha=0.9)
    sns.countplot(data=index, x="emotion", hue="intensity", ax=axes[1])
    axes[1].set(title="Clips per emotion", ylabel="clips")
    axes[1].tick_params(axis="x", rotation=45)
    axes[1].legend(loc="lower right", fontsize="small", framealpha=0.9)
    durations = pd.DataFrame({
        "before VAD": index["n_samples"] / sr,
        "after VAD": index["n_voiced_samples"] / sr,
    }).melt(var_name="stage", value_name="seconds")
    sns.histplot(data=durations, x="seconds", hue="stage", bins=40, ax=axes[2], element="step")
    axes[2].set(title="Clip duration (16 kHz)")
    return fig


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
    marks = {k: v for k, v in (marks or {}).items() if _finite(v)}  # e.g. no seed flattened: nothing to mark
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
        for label, value in baselines.items():
            ax.axhline(value, color="0.25", ls=":", lw=1.2)
            ax.text(0.995, value, f"{label} ", transform=ax.get_yaxis_transform(), ha="right", va="bottom",
                    fontsize="small", color="0.25")
        lo, hi = ax.get_ylim()
        b_lo, b_hi = float(min(baselines.values())), float(max(baselines.values()))
        if b_hi > hi - 0.07 * (hi - lo):  # room for the label above the line
            hi = b_hi + 0.08 * (b_hi - min(lo, b_lo))
        if b_lo < lo:
            lo = b_lo - 0.03 * (hi - b_lo)
        ax.set_ylim(lo, hi)
    if legend:
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
        epoch range drawn as a shaded vertical span. Marks that are not finite (NaN) are left out.
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
        vertical span, e.g. the range of "flat from" epochs over the seeds).
        Marks and baselines that are not finite (NaN) are left out.
    baselines : mapping of str to float, optional
        Label to a reconstruction loss of a trivial predictor (e.g. the mean
        spectrogram of the training clips), drawn as a dotted horizontal line
        on the reconstruction panel, labelled at its right edge. The
        y limits are widened so that every baseline stays visible, also above
        ``recon_ylim``.
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


def plot_reconstructions(
    X: np.ndarray, R: np.ndarray, titles: Sequence[str], config: PreprocessConfig | None = None,
) -> matplotlib.figure.Figure:
    """Inputs (top row) and their reconstructions (bottom row), one column per clip, one colour scale.

    Parameters
    ----------
    X, R : np.ndarray, shape (n, n_mels, T)
        Inputs and reconstructions in dB.
    titles : sequence of str
        One per column, e.g. the emotion.
    config : PreprocessConfig, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(X)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 4.6), squeeze=False, sharex=True, sharey=True,
                             layout="constrained")
    vmin, vmax = float(np.min(X)), float(np.max(X))
    for j in range(n):
        plot_log_mel(X[j], ax=axes[0, j], title=titles[j], config=config, vmin=vmin, vmax=vmax)
        plot_log_mel(R[j], ax=axes[1, j], config=config, vmin=vmin, vmax=vmax)
        for ax in axes[:, j]:
            ax.label_outer()
    axes[0, 0].set_ylabel("input\nHz")
    axes[1, 0].set_ylabel("reconstruction\nHz")
    fig.colorbar(axes[0, 0].collections[0], ax=axes, format="%+2.0f dB", shrink=0.8)
    return fig


# ---------------------------------------------------------------------------
# Report section 5.3: latent posteriors, information, probes (notebook 05)
# ---------------------------------------------------------------------------

#: One fixed colour per RAVDESS emotion, used by every emotion-coloured figure.
EMOTION_COLORS: dict[str, str] = dict(zip(EMOTIONS, (
    "tab:gray", "tab:blue", "tab:orange", "tab:purple", "tab:red", "tab:brown", "tab:green", "tab:pink",
)))


def _category_colors(values: Sequence, order: Sequence | None = None) -> dict:
    """Colour per category: :data:`EMOTION_COLORS` for emotions, else tab10 / tab20 (+ Dark2) / husl."""
    cats = list(order) if order is not None else list(pd.unique(pd.Series(list(values))))
    if order is None:
        try:
            cats = sorted(cats)
        except TypeError:
            pass
    if set(cats) <= set(EMOTION_COLORS):
        return {c: EMOTION_COLORS[c] for c in cats}
    if len(cats) <= 10:
        palette = sns.color_palette("tab10", len(cats))
    elif len(cats) <= 24:  # 10 dark, 10 light, 4 more distinct hues
        tab20 = sns.color_palette("tab20")
        palette = (tab20[0::2] + tab20[1::2] + sns.color_palette("Dark2")[:4])[: len(cats)]
    else:
        palette = sns.color_palette("husl", len(cats))
    return dict(zip(cats, palette))


def _emotion_order(values: Sequence) -> list:
    present = set(pd.unique(pd.Series(list(values))))
    known = [e for e in EMOTIONS if e in present]
    return known + sorted(present - set(known), key=str)


def _mu_sigma(mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sigma = np.asarray(mu), np.asarray(sigma)
    if mu.shape != sigma.shape or mu.ndim != 2:
        raise ValueError(f"mu and sigma must be (N, D) of the same shape, got {mu.shape} and {sigma.shape}")
    return mu, sigma


def _active_mask(active: Sequence[bool] | None, n_dims: int) -> np.ndarray:
    """``active`` as a bool array of length ``n_dims`` (all True when None)."""
    if active is None:
        return np.ones(n_dims, dtype=bool)
    a = np.asarray(active, dtype=bool).reshape(-1)
    if a.size != n_dims:
        raise ValueError(f"active has {a.size} entries for {n_dims} latent dimensions")
    return a


def _greyed(color, amount: float = 0.65) -> tuple[float, float, float]:
    """``color`` mixed with mid grey (``amount`` of grey): how the points of an inactive dimension are drawn."""
    rgb = np.asarray(matplotlib.colors.to_rgb(color))
    return tuple(float(v) for v in (1 - amount) * rgb + amount * 0.6)


def _mark_inactive(ax: matplotlib.axes.Axes) -> None:
    """Grey, hatched background of the panel of an inactive latent dimension."""
    ax.set_facecolor("0.9")
    ax.patch.set_hatch("///")
    ax.patch.set_edgecolor("0.8")  # the hatch colour; the axes patch draws no edge line


def _inactive_note(sigma_d: np.ndarray) -> str:
    """Second title line of an inactive dimension's panel, e.g. ``"median σ 0.98 (≈1: prior noise)"``."""
    m = float(np.nanmedian(sigma_d))
    return f"median σ {m:.2f}" + (" (≈1: prior noise)" if abs(m - 1) <= 0.1 else "")


def _shared_sigma_axis(axes: Sequence[matplotlib.axes.Axes], sigma: np.ndarray) -> None:
    """One σ axis for all ``axes``, 0 to max(1.05, max σ), with the prior's σ = 1 dotted."""
    top = max(1.05, float(np.nanmax(sigma)))
    for ax in axes:
        ax.axhline(1.0, color="0.45", ls=":", lw=0.9, zorder=0.5)
        ax.set_ylim(0, top)


def plot_mu_sigma_by_emotion(
    mu: np.ndarray, sigma: np.ndarray, emotions: Sequence[str], highlight: Sequence[int] = (4, 5, 6),
    nmi: Sequence[float] | None = None, title: str = "", seed: int = 0, active: Sequence[bool] | None = None,
    shared_sigma: bool = False,
) -> matplotlib.figure.Figure:
    """mu_i (x) against sigma_i (y) per latent dimension, coloured by true emotion.

    The report's Figures 4 and 6 as the report describes them. Panel a: one
    small multiple per dimension (each on its own scale, so the colours can be
    read); panel b: the ``highlight`` dimensions enlarged, with each emotion's
    mean (mu, sigma) drawn as a large marker.

    Parameters
    ----------
    mu, sigma : np.ndarray, shape (N, D)
        Posterior means and standard deviations (``exp(logvar / 2)``).
    emotions : sequence of str, length N
        True emotion of each clip.
    highlight : sequence of int, default (4, 5, 6)
        0-based dimensions of panel b (the report's "well learnt" 5-7, 1-based).
    nmi : sequence of float, optional, length D
        Normalised MI I(z_i; emotion) / H(emotion), printed in each panel title.
    title : str
    seed : int
        Fixed shuffle of the drawing order, so no emotion is always on top.
    active : sequence of bool, optional, length D
        Which dimensions the model uses (e.g. KL above a threshold). The panels
        of inactive ones get a grey hatched background, "inactive" and the
        median sigma in their title, and faded, greyed points, so that a
        dimension left at the prior does not read as a rich cloud. Default: all active.
    shared_sigma : bool, default False
        Put every panel on one sigma axis, 0 to max(1.05, max sigma), with
        sigma = 1 (the prior) dotted: collapsed dimensions (sigma near 1) and used
        ones (sigma much below 1) then look different. Default: each panel on its own scale.

    Returns
    -------
    matplotlib.figure.Figure
    """
    mu, sigma = _mu_sigma(mu, sigma)
    emotions = np.asarray(emotions)
    order = _emotion_order(emotions)
    colors = _category_colors(emotions, order)
    point_colors = [colors[e] for e in emotions]
    draw = np.random.default_rng(seed).permutation(len(mu))
    n_dims = mu.shape[1]
    act = _active_mask(active, n_dims)
    faded = {e: _greyed(c) for e, c in colors.items()}

    def scatter(ax, d, size, alpha):
        if act[d]:
            ax.scatter(mu[draw, d], sigma[draw, d], c=[point_colors[i] for i in draw], s=size, alpha=alpha, lw=0)
        else:
            _mark_inactive(ax)
            ax.scatter(mu[draw, d], sigma[draw, d], c=[faded[emotions[i]] for i in draw], s=size,
                       alpha=alpha * 0.55, lw=0)

    def label(d):
        text = f"dim {d}" + ("" if act[d] else " · inactive") + (f"  (NMI {nmi[d]:.2f})" if nmi is not None else "")
        return text if act[d] else text + "\n" + _inactive_note(sigma[:, d])

    ncols = min(4, n_dims)
    nrows = -(-n_dims // ncols)
    fig = plt.figure(figsize=(3.3 * ncols, 2.7 * nrows + 3.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.7 * nrows, 3.6])
    axes = top.subplots(nrows, ncols, squeeze=False)
    drawn = []
    for d, ax in enumerate(axes.flat):
        if d >= n_dims:
            ax.set_visible(False)
            continue
        scatter(ax, d, 7, 0.6)
        drawn.append(ax)
        ax.set_title(label(d), fontsize=9, fontweight="bold" if d in highlight else "normal")
        ax.tick_params(labelsize=7)
        if d in highlight:
            for spine in ax.spines.values():
                spine.set(lw=1.8, color="black")
    for ax in axes[-1]:
        ax.set_xlabel("mu", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("sigma", fontsize=8)
    notes = ["bold frame: panel b"] + (["grey: inactive"] if not act.all() else []) + (
        ["one sigma axis, dotted: sigma = 1 (prior)"] if shared_sigma else [])
    top.suptitle(f"a) all dimensions ({'; '.join(notes)})", x=0.01, ha="left", fontsize=10)
    hl = [d for d in highlight if d < n_dims]
    if hl:
        bax = bottom.subplots(1, len(hl), squeeze=False)[0]
        for ax, d in zip(bax, hl):
            scatter(ax, d, 12, 0.45)
            drawn.append(ax)
            for e in order:
                sel = emotions == e
                ax.scatter(mu[sel, d].mean(), sigma[sel, d].mean(), color=colors[e], s=110, marker="D",
                           edgecolor="black", lw=1, zorder=3)
            ax.set(title=label(d), xlabel="mu", ylabel="sigma")
        bottom.suptitle(f"b) dimensions {', '.join(map(str, hl))} (diamonds: emotion means)",
                        x=0.01, ha="left", fontsize=10)
    if shared_sigma:
        _shared_sigma_axis(drawn, sigma)
    handles = [matplotlib.lines.Line2D([], [], ls="", marker="o", color=colors[e], label=e) for e in order]
    fig.legend(handles=handles, loc="outside right upper", title="emotion", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_mu_sigma_by_dimension(
    mu: np.ndarray, sigma: np.ndarray, highlight: Sequence[int] = (4, 5, 6), title: str = "",
    active: Sequence[bool] | None = None, shared_sigma: bool = False,
) -> matplotlib.figure.Figure:
    """mu_i against sigma_i for every dimension on one axis, coloured by dimension index.

    The authors' own rendering of Figures 4 and 6 (their code coloured by
    latent dimension, not by emotion). Panel a: all dimensions; panel b: the
    ``highlight`` dimensions.

    Parameters
    ----------
    mu, sigma : np.ndarray, shape (N, D)
    highlight : sequence of int, default (4, 5, 6)
        0-based dimensions of panel b.
    title : str
    active : sequence of bool, optional, length D
        Which dimensions the model uses. Inactive ones are drawn greyed and
        faded, under the active ones, labelled "dim i · inactive" in the
        legend; a panel showing only inactive dimensions gets a grey hatched
        background and "inactive" in its title. Default: all active.
    shared_sigma : bool, default False
        Both panels on one sigma axis, 0 to max(1.05, max sigma), with sigma = 1 (the prior) dotted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    mu, sigma = _mu_sigma(mu, sigma)
    n_dims = mu.shape[1]
    act = _active_mask(active, n_dims)
    palette = sns.color_palette("tab10", max(n_dims, 3))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    hl = [d for d in highlight if d < n_dims]
    for ax, dims, name in ((axes[0], range(n_dims), "a) all dimensions"),
                           (axes[1], hl, f"b) dimensions {', '.join(map(str, hl))}")):
        for d in dims:
            if act[d]:
                ax.scatter(mu[:, d], sigma[:, d], s=8, alpha=0.5, lw=0, color=palette[d], label=f"dim {d}")
            else:  # under the active dimensions
                ax.scatter(mu[:, d], sigma[:, d], s=6, alpha=0.2, lw=0, color=_greyed(palette[d]),
                           label=f"dim {d} · inactive", zorder=0.8)
        off = [d for d in dims if not act[d]]
        if dims and len(off) == len(dims):
            _mark_inactive(ax)
            name += " · inactive"
        elif off:
            name += f" (faded: inactive {', '.join(map(str, off))})"
        ax.set(xlabel="mu", ylabel="sigma", title=name)
        ax.legend(fontsize=8, markerscale=2, ncol=2 if len(dims) > 4 else 1, loc="best")
    if shared_sigma:
        _shared_sigma_axis(axes, sigma)
    if title:
        fig.suptitle(title)
    return fig


def plot_mi_heatmaps(
    tables: Mapping[str, pd.DataFrame], mig: Mapping[str, pd.Series] | None = None,
    title: str = "", value_label: str = "I(z_i; factor) / H(factor)",
) -> matplotlib.figure.Figure:
    """Side-by-side heat maps of (normalised) mutual information, dimensions x factors.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Name -> table (D, n_factors), e.g. from
        :func:`emovae_utils.metrics.normalised_mi`; one colour scale for all.
    mig : mapping of str to pandas.Series, optional
        Name -> MIG per factor (:func:`emovae_utils.metrics.mig`), shown under each map.
    title : str
    value_label : str
        Colour-bar label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = list(tables)
    vmax = max(float(np.nanmax(t.to_numpy())) for t in tables.values()) or 1.0
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 1, 4.4), squeeze=False,
                             layout="constrained")
    for k, (ax, name) in enumerate(zip(axes[0], names)):
        t = tables[name]
        sns.heatmap(t, ax=ax, vmin=0, vmax=vmax, cmap="viridis", annot=True, fmt=".2f",
                    annot_kws={"fontsize": 8}, cbar=k == len(names) - 1,
                    cbar_kws={"label": value_label} if k == len(names) - 1 else None,
                    yticklabels=[f"dim {d}" for d in t.index])
        ax.set(title=name, ylabel="" if k else "latent dimension")
        ax.tick_params(axis="y", rotation=0)
        if mig is not None and name in mig:
            ax.set_xlabel("MIG: " + ", ".join(f"{f} {v:.2f}" for f, v in mig[name].items()), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


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


def plot_count_sensitivity(
    table: pd.DataFrame, claimed: float | tuple[float, str] | None = None, title: str = "", n_dims: int = 8,
) -> matplotlib.figure.Figure:
    """How robust "k of 8 dimensions separate emotions" is: the count per seed under each counting rule.

    One row per setting (in order of first appearance, top to bottom): each
    seed's count as a dot, dots of equal count spread vertically around the
    row (a deterministic jitter, so every seed stays visible and x stays the
    exact integer), and the mean over seeds as a hollow diamond. The right
    margin gives the mean, the number of seeds and how many of them count
    exactly ``claimed``.

    Parameters
    ----------
    table : pandas.DataFrame
        Long table with columns ``seed``, ``setting`` (str, e.g. ``"NMI ≥ 0.10,
        20 equal-width bins"``) and ``count`` (int); one row per seed and setting.
    claimed : float or (float, str), optional
        The published count, drawn as a vertical dashed line, e.g. ``3`` or
        ``(3, "report")`` (label "claimed" when only a number is given).
    title : str
    n_dims : int, default 8
        Latent dimensions: the x axis runs over the integers 0 .. n_dims
        (further if a count exceeds it).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When a column is missing.

    Examples
    --------
    >>> t = pd.DataFrame({"seed": [0, 1, 0, 1], "setting": ["a", "a", "b", "b"], "count": [3, 2, 3, 3]})
    >>> fig = plot_count_sensitivity(t, claimed=(3, "report"))
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['a', 'b']
    >>> plt.close(fig)
    """
    missing = {"seed", "setting", "count"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks the column(s) {sorted(missing)}")
    value, name = claimed if isinstance(claimed, tuple) else (claimed, "claimed")
    settings = list(pd.unique(table["setting"]))
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(settings) + 1.9), layout="constrained")
    top = n_dims
    for i, setting in enumerate(settings):
        counts = table.loc[table["setting"] == setting, "count"].to_numpy(dtype=float)
        counts = counts[np.isfinite(counts)]
        if not counts.size:
            ax.text(0, i, " no seed", va="center", fontsize=8, color="0.5")
            continue
        top = max(top, int(counts.max()))
        offsets = np.zeros(counts.size)
        for v in np.unique(counts):  # equal counts side by side, vertically
            idx = np.flatnonzero(counts == v)
            offsets[idx] = (np.arange(idx.size) - (idx.size - 1) / 2) * min(0.12, 0.5 / max(idx.size - 1, 1))
        ax.scatter(counts, i + offsets, s=24, color="tab:blue", alpha=0.8, lw=0, zorder=3,
                   label="one seed" if i == 0 else None)
        mean = float(counts.mean())
        ax.scatter(mean, i, marker="D", s=90, facecolor="none", edgecolor="black", lw=1.5, zorder=4,
                   label="mean over seeds" if i == 0 else None)
        note = f"mean {mean:.1f} (n={counts.size})"
        if value is not None:
            note += f"; {int((counts == value).sum())}/{counts.size} seeds at {value:g}"
        ax.text(1.01, i, note, transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    if value is not None:
        ax.axvline(value, color="tab:red", ls="--", lw=1.3, zorder=2, label=f"{name}: {value:g}")
    ax.set_yticks(np.arange(len(settings)), [str(s) for s in settings])
    ax.set_ylim(len(settings) - 0.5, -0.5)  # first setting on top
    ax.set_xticks(np.arange(top + 1))
    ax.set_xlim(-0.5, top + 0.5)
    ax.grid(axis="x", color="0.9", zorder=0)
    ax.set_axisbelow(True)
    ax.set_xlabel(f"dimensions that separate emotions (of {n_dims})")
    if settings:
        fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return fig


def plot_embedding_grid(
    embeddings: Mapping[str, np.ndarray], colour_by: Mapping[str, Sequence], title: str = "",
    seed: int = 0,
) -> matplotlib.figure.Figure:
    """2-D maps (e.g. t-SNE of ``mu``), one row per representation, one column per colouring.

    Parameters
    ----------
    embeddings : mapping of str to np.ndarray (N, 2)
        Row name -> 2-D coordinates (all row-aligned with ``colour_by``).
    colour_by : mapping of str to sequence, length N
        Column name -> category of each point (emotions get
        :data:`EMOTION_COLORS`; up to 24 other categories distinct tab10/tab20 colours).
    title : str
    seed : int
        Fixed shuffle of the drawing order.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows, cols = list(embeddings), list(colour_by)
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(5.2 * len(cols), 4.6 * len(rows) + 1.2),
                             squeeze=False, layout="constrained")
    for j, col in enumerate(cols):
        cats = np.asarray(colour_by[col])
        order = _emotion_order(cats) if set(cats.tolist()) <= set(EMOTION_COLORS) else sorted(set(cats.tolist()))
        colors = _category_colors(cats, order)
        for i, row in enumerate(rows):
            emb = np.asarray(embeddings[row])
            if emb.shape != (len(cats), 2):
                raise ValueError(f"embedding {row!r} has shape {emb.shape}, expected ({len(cats)}, 2)")
            draw = np.random.default_rng(seed).permutation(len(cats))
            ax = axes[i, j]
            ax.scatter(emb[draw, 0], emb[draw, 1], c=[colors[cats[k]] for k in draw], s=9, alpha=0.75, lw=0)
            ax.set(title=f"{row}: coloured by {col}", xticks=[], yticks=[])
        handles = [matplotlib.lines.Line2D([], [], ls="", marker="o", color=colors[c], label=str(c)) for c in order]
        axes[-1, j].legend(handles=handles, title=col, fontsize=7, ncol=min(len(order), 8 if len(order) > 8 else 4),
                           loc="upper center", bbox_to_anchor=(0.5, -0.04), frameon=False, columnspacing=0.8,
                           handletextpad=0.2)
    if title:
        fig.suptitle(title)
    return fig


def plot_latent_traversal(
    grid: np.ndarray, values: Sequence[float], dims: Sequence[int] | None = None,
    config: PreprocessConfig | None = None, difference: bool = True, title: str = "",
) -> matplotlib.figure.Figure:
    """Latent traversals: one row per latent dimension, one column per value.

    Each row decodes the latent vector with only that dimension set (to each
    of ``values``) and the others at 0, e.g. the output of
    :func:`emovae_utils.generate.traverse`. All spectrograms share one colour
    scale. With ``difference``, a last column shows the last value's
    spectrogram minus the first one's (diverging colours, one symmetric scale
    for all rows), titled with its RMS in dB, so a dimension the decoder
    ignores shows up as a blank difference panel.

    Parameters
    ----------
    grid : np.ndarray, shape (n_dims, n_values, n_mels, T)
        dB log-mel spectrograms.
    values : sequence of float, length n_values
        The latent values of the columns.
    dims : sequence of int, optional
        Labels of the rows (default ``0 .. n_dims - 1``).
    config : PreprocessConfig, optional
        For the time and frequency axes.
    difference : bool, default True
        Add the "last - first" column.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    grid = np.asarray(grid)
    if grid.ndim != 4:
        raise ValueError(f"grid must be (n_dims, n_values, n_mels, T), got shape {grid.shape}")
    n_dims, n_vals = grid.shape[:2]
    values = np.asarray(values, dtype=float).reshape(-1)
    if len(values) != n_vals:
        raise ValueError(f"{len(values)} values for {n_vals} columns")
    dims = list(range(n_dims)) if dims is None else [int(d) for d in dims]
    if len(dims) != n_dims:
        raise ValueError(f"{len(dims)} dims for {n_dims} rows")
    c = config or PreprocessConfig()
    ncols = n_vals + int(difference)
    fig, axes = plt.subplots(n_dims, ncols, figsize=(1.7 * ncols + 1.6, 1.15 * n_dims + 1.0), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    vmin, vmax = float(grid.min()), float(grid.max())
    diffs = grid[:, -1] - grid[:, 0]
    dlim = float(np.max(np.abs(diffs))) or 1.0
    for k, d in enumerate(dims):
        for j in range(n_vals):
            plot_log_mel(grid[k, j], ax=axes[k, j], config=c, vmin=vmin, vmax=vmax)
        if difference:
            ax = axes[k, -1]
            dimg = librosa.display.specshow(
                diffs[k], sr=c.sr, hop_length=c.hop_length, x_axis="time", y_axis="mel", fmin=c.fmin,
                fmax=c.fmax, ax=ax, vmin=-dlim, vmax=dlim, cmap="RdBu_r")
            ax.set_title(f"RMS {np.sqrt(np.mean(diffs[k] ** 2)):.1f} dB", fontsize=8)
        axes[k, 0].set_ylabel(f"z{d}", rotation=0, fontsize=11, fontweight="bold", ha="right", va="center")
    for ax in axes.flat:
        ax.tick_params(labelsize=6)
        ax.set_xlabel("")
        if ax not in axes[:, 0]:
            ax.set_ylabel("")
        ax.label_outer()
    for j, v in enumerate(values):
        axes[0, j].set_title(f"z = {v:+.2g}", fontsize=9)
    if difference:
        axes[0, -1].set_title(f"({values[-1]:+.2g}) - ({values[0]:+.2g})\n" + axes[0, -1].get_title(), fontsize=8)
    fig.colorbar(axes[0, 0].collections[0], ax=axes, format="%+2.0f dB", shrink=0.45, label="log-mel", pad=0.01)
    if difference:
        fig.colorbar(dimg, ax=axes, format="%+2.0f dB", shrink=0.45, label="last - first", pad=0.01)
    fig.supxlabel("time (s)", fontsize=9)
    fig.supylabel("latent dimension (mel frequency, Hz)", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


__all__ += ["plot_latent_traversal"]


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


__all__ += ["plot_emotion_vs_speaker"]
