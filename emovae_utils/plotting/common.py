"""What every figure shares: :func:`save_figure` and the colours of categories (:data:`EMOTION_COLORS`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import pandas as pd
import seaborn as sns

from ..data import EMOTIONS
from ..io import atomic_write
from ..paths import project_path

__all__ = ["save_figure", "EMOTION_COLORS"]


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
