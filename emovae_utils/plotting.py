"""Figures of the report, drawn with matplotlib and seaborn.

Every function draws and returns a :class:`matplotlib.figure.Figure` (or
draws into a given axis); :func:`save_figure` writes it under the report's
name. Nothing here calls ``plt.show``: notebooks display the returned figure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

import librosa.display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .dsp import PreprocessConfig
from .paths import project_path

__all__ = [
    "save_figure",
    "plot_log_mel",
    "plot_log_mel_grid",
    "plot_vad",
    "plot_voiced_lengths",
    "plot_dataset_summary",
]


def save_figure(fig: matplotlib.figure.Figure, name: str, figures_dir: str | os.PathLike = "figures") -> Path:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` (150 dpi, tight bounding box).

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
    fig.savefig(path, dpi=150, bbox_inches="tight")
    return path


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
