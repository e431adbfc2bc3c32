"""Figures of the clips themselves: log-mel spectrograms, the VAD, lengths, the data set, reconstructions, traversals.

Notebooks 01 (preprocessing), 02 and 04 (reconstructions) and 03 (latent traversals).
"""

from __future__ import annotations

from collections.abc import Sequence

import librosa.display
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..dsp import PreprocessConfig

__all__ = [
    "plot_log_mel",
    "plot_log_mel_grid",
    "plot_vad",
    "plot_voiced_lengths",
    "plot_dataset_summary",
    "plot_reconstructions",
    "plot_latent_traversal",
]


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
