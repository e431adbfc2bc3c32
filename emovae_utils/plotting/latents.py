"""Figures of the latent space: posteriors, mutual information, 2-D maps, claim (a)'s counts.

The report's Figures 4 and 6 and its section 5.3 (notebook 05).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .common import EMOTION_COLORS, _category_colors, _emotion_order

__all__ = [
    "plot_mu_sigma_by_emotion",
    "plot_mu_sigma_by_dimension",
    "plot_mi_heatmaps",
    "plot_embedding_grid",
    "plot_count_sensitivity",
]


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
        One axis, one row per setting, the claimed count as a dashed line.

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
