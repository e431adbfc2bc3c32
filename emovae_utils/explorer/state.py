"""The explorer's state, without widgets: which point is rendered and how the controls move it.

:class:`ExplorerState` holds the slider values (and the exact values of the
dimensions without a slider), the chosen start point, the emotion direction
and its amount, the blend pad's position and corners, and the chosen
condition; :meth:`ExplorerState.current_latent` is the point to render. The
view (:mod:`emovae_utils.explorer.view`) mirrors it in ipywidgets; everything
here runs, and is tested, without them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..data import clip_label
from ..generate import emotion_mean_latents

__all__ = ["ORIGIN", "ExplorerState", "blend_weights", "start_points", "checked_dims", "unusable_clips"]

#: Key of the start point at the origin (all 0).
ORIGIN = "origin"
#: The pad's corners, in :func:`blend_weights` order.
CORNERS = ("top left", "top right", "bottom left", "bottom right")


def blend_weights(x: float, y: float, present: Sequence[bool] = (True, True, True, True)) -> np.ndarray:
    """Bilinear weights of the pad's four corners at (x, y) in [0, 1]².

    Corners in the order top-left, top-right, bottom-left, bottom-right
    (``y`` grows downwards). Missing corners (``present`` False) get weight 0
    and the others are renormalised; where all present weights are 0 they
    are equal.

    Examples
    --------
    >>> blend_weights(0, 0).tolist()
    [1.0, 0.0, 0.0, 0.0]
    >>> blend_weights(0.5, 0.5).tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    x, y = float(np.clip(x, 0, 1)), float(np.clip(y, 0, 1))
    w = np.array([(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y]) * np.asarray(present, bool)
    if not np.any(present):
        raise ValueError("no corner is set")
    s = w.sum()
    return w / s if s > 1e-12 else np.asarray(present, float) / np.sum(present)


def unusable_clips(*arrays: np.ndarray | None) -> np.ndarray:
    """Indices of the clips (rows) with a NaN or an infinite value in any of ``arrays`` (each (N, ...) or None).

    Examples
    --------
    >>> unusable_clips(np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, np.inf]]), None).tolist()
    [1, 2]
    """
    bad = None
    for a in arrays:
        if a is None or not len(a):
            continue
        rows = ~np.isfinite(np.asarray(a, dtype=np.float64).reshape(len(a), -1)).all(axis=1)
        bad = rows if bad is None else bad | rows
    return np.flatnonzero(bad) if bad is not None else np.zeros(0, np.intp)


def start_points(mu: np.ndarray | None, index: Any, latent_dim: int, unusable: Sequence[int] = ()
                 ) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, np.ndarray]]:
    """The start points: the origin, each emotion's mean latent, each clip's posterior mean.

    Parameters
    ----------
    mu : np.ndarray (N, D), optional
        Posterior means of the clips.
    index : pandas.DataFrame, optional
        One row per clip: labels (:func:`emovae_utils.data.clip_label`) and,
        with an ``emotion`` column, the emotion means (clips without a label left out).
    latent_dim : int
    unusable : sequence of int
        Clips with NaN or infinite values (:func:`unusable_clips`): left out of
        the emotion means, labelled "(NaN: unusable)".

    Returns
    -------
    starts : dict
        Key (``"origin"``, ``"mean:<emotion>"``, ``"clip:<i>"``) -> latent (D,), float32.
    labels : dict
        Key -> drop-down label.
    emotion_means : dict
        Emotion -> mean latent (D,), float32.

    Examples
    --------
    >>> import pandas as pd
    >>> starts, labels, means = start_points(np.eye(2, dtype=np.float32), pd.DataFrame({"emotion": ["sad", "sad"]}), 2)
    >>> list(labels.values()), means["sad"].tolist()
    (['origin (all 0)', 'mean: sad (n=2)', 'sad', 'sad'], [0.5, 0.5])
    """
    starts: dict[str, np.ndarray] = {ORIGIN: np.zeros(latent_dim, np.float32)}
    labels: dict[str, str] = {ORIGIN: "origin (all 0)"}
    emotion_means: dict[str, np.ndarray] = {}
    if mu is None:
        return starts, labels, emotion_means
    if index is not None and "emotion" in getattr(index, "columns", []):
        known = index["emotion"].notna().to_numpy().copy()  # own recordings may have no label
        known[np.asarray(unusable, dtype=np.intp)] = False
        means = emotion_mean_latents(mu[known], list(index["emotion"][known])) if known.any() else None
        cols = [f"z{i}" for i in range(latent_dim)]
        for emo, row in (means.iterrows() if means is not None else ()):
            key = f"mean:{emo}"
            emotion_means[str(emo)] = row[cols].to_numpy(dtype=np.float32)
            starts[key] = emotion_means[str(emo)]
            labels[key] = f"mean: {emo} (n={int(row['n'])})"
    bad = set(int(i) for i in unusable)
    for i in range(len(mu)):
        row = index.iloc[i] if index is not None else None
        key = f"clip:{i}"
        starts[key] = mu[i]
        label = clip_label(row, i) if row is not None else f"clip {i}"
        labels[key] = label + (" (NaN: unusable)" if i in bad else "")
    return starts, labels, emotion_means


def checked_dims(dims: Sequence[int] | None, latent_dim: int) -> list[int]:
    """The dimensions that get a slider, ascending (all without ``dims``); checked to be distinct and in range.

    Examples
    --------
    >>> checked_dims([4, 1], 6), checked_dims(None, 3)
    ([1, 4], [0, 1, 2])
    """
    if dims is None:
        return list(range(latent_dim))
    shown = [int(d) for d in np.asarray(dims, dtype=np.int64).reshape(-1)]
    bad = [d for d in shown if not 0 <= d < latent_dim]
    if bad or not shown or len(set(shown)) != len(shown):
        raise ValueError(f"dims must be distinct dimensions in 0..{latent_dim - 1}, at least one; got {list(dims)}")
    return sorted(shown)


class ExplorerState:
    """The point the explorer renders and how its controls move it (no widgets).

    Parameters
    ----------
    latent_dim : int
    mu : np.ndarray (N, D), optional
        Posterior means of the clips (start points, emotion means; see :func:`start_points`).
    index : pandas.DataFrame, optional
        One row per clip of ``mu``.
    dims : sequence of int, optional
        Dimensions with a slider (default all); the others keep the start point's exact values.
    value_range : (float, float)
        Slider range: :meth:`set_latent` clamps the slider dimensions to it.
    conditions : mapping of str to np.ndarray, optional
        Condition picker: label -> one clip's condition.
    condition : str, optional
        The label chosen first (default: the first).
    unusable : sequence of int
        Clips with NaN or infinite values (:func:`unusable_clips`): not in the
        emotion means; choosing one as a start point or a pad corner is an error.

    Attributes
    ----------
    values : np.ndarray (D,), float64
        The point the emotion direction starts from (entries of ``dims``; the
        others unused); the sliders show :meth:`slider_values`, the point rendered.
    fixed : np.ndarray (D,), float32
        The last point set as a whole: the values of the dimensions without a slider.
    start : str
        Key of the chosen start point.
    direction : str or None
        Emotion of the emotion direction (None without emotion means); ``amount`` in 0..1.
    pad_position : list of float
        [x, y] of the pad; ``corners`` the four corners' start keys ("" for none).
    condition : str or None
        Label of the chosen condition.
    clamped : bool
        The last point set had slider values outside the range.

    Examples
    --------
    >>> s = ExplorerState(2, mu=np.array([[1.0, 2.0], [3.0, -6.0]], np.float32))
    >>> s.select("clip:1"); s.current_latent().tolist(), s.clamped
    ([3.0, -4.0], True)
    >>> s.set_value(0, 0.5); s.get_latent().tolist()
    [0.5, -4.0]
    >>> s.set_pad(0.5, 0.0); s.current_latent().tolist()   # halfway between the corners clip 0 and clip 1
    [2.0, -2.0]
    >>> s.start_problem("clip:1") is None
    True
    """

    def __init__(self, latent_dim: int, mu: np.ndarray | None = None, index: Any = None, *,
                 dims: Sequence[int] | None = None, value_range: tuple[float, float] = (-4.0, 4.0),
                 conditions: Mapping[str, np.ndarray] | None = None, condition: str | None = None,
                 unusable: Sequence[int] = ()) -> None:
        self.latent_dim = int(latent_dim)
        self.dims = checked_dims(dims, self.latent_dim)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.unusable = {f"clip:{int(i)}" for i in unusable}
        self.starts, self.start_labels, self.emotion_means = start_points(mu, index, self.latent_dim, unusable)
        self.options = [(lab, key) for key, lab in self.start_labels.items()]
        self.conditions = dict(conditions or {})
        if condition is not None and not self.conditions:
            raise ValueError("condition= needs conditions=")
        if condition is not None and str(condition) not in self.conditions:
            raise KeyError(f"condition {condition!r} is not one of {list(self.conditions)}")
        self.condition = (str(condition) if condition is not None else next(iter(self.conditions), None))
        self.values = np.zeros(self.latent_dim, np.float64)
        self.fixed = np.zeros(self.latent_dim, np.float32)
        self.start = ORIGIN
        emotions = list(self.emotion_means)
        self.direction: str | None = emotions[0] if emotions else None
        self.amount = 0.0
        self.pad_position = [0.5, 0.5]
        self.corners = self._default_corners()
        self.clamped = False

    def _default_corners(self) -> list[str]:
        """Up to four emotion means, then clips."""
        keys = [f"mean:{e}" for e in list(self.emotion_means)[:4]]
        clip_keys = [k for k in self.starts if k.startswith("clip:") and k not in self.unusable]
        while len(keys) < 4 and clip_keys:
            keys.append(clip_keys.pop(0))
        return [keys[j] if j < len(keys) else "" for j in range(len(CORNERS))]

    # ------------------------------------------------------------ the point
    def get_latent(self) -> np.ndarray:
        """Slider values as a (D,) float32 vector (before the emotion direction).

        Dimensions without a slider hold the start point's values.
        """
        z = self.fixed.copy()
        z[self.dims] = self.values[self.dims]
        return z

    def current_latent(self) -> np.ndarray:
        """The latent that is rendered: ``(1 - a) * sliders + a * mean[emotion]``."""
        base = self.get_latent()
        a = float(self.amount)
        target = self.emotion_means.get(self.direction) if self.direction is not None else None
        if a <= 0 or target is None:
            return base
        return ((1.0 - a) * base.astype(np.float64) + a * target.astype(np.float64)).astype(np.float32)

    def set_latent(self, z: Sequence[float] | np.ndarray) -> None:
        """Set all dimensions at once; slider values outside the range are clamped (``clamped``)."""
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        if z.shape[0] != self.latent_dim:
            raise ValueError(f"expected {self.latent_dim} values, got {z.shape[0]}")
        lo, hi = self.value_range
        self.fixed = z.astype(np.float32)  # the dimensions without a slider keep the exact values
        for d in self.dims:
            self.values[d] = float(np.clip(z[d], lo, hi))
        zs = z[self.dims]
        self.clamped = bool(np.any((zs < lo) | (zs > hi)))

    def slider_values(self) -> np.ndarray:
        """What the sliders show: the rendered point (:meth:`current_latent`) clipped to the range, (D,) float64."""
        return np.clip(self.current_latent().astype(np.float64), *self.value_range)

    def set_value(self, dim: int, value: float) -> None:
        """One slider moved (by hand: ``clamped`` is cleared).

        Moved along the emotion direction (amount > 0), the sliders show the
        rendered point: that point becomes the one moved from, the amount 0.
        """
        if self.amount > 0 and self.direction is not None:
            self.set_latent(self.current_latent())
            self.amount = 0.0
        self.values[dim] = value
        self.clamped = False

    # ------------------------------------------------------------ start points
    def start_problem(self, key: str) -> str | None:
        """Why ``key`` cannot be a start point or a pad corner (a clip with NaN or infinite values), else None."""
        if key not in self.unusable:
            return None
        label = self.start_labels[key].removesuffix(" (NaN: unusable)")
        return (f"clip {key.split(':', 1)[1]} ({label}) has NaN or infinite values (in X or its posterior): "
                "it cannot be a start point or a pad corner; fix or drop that clip")

    def select(self, key: str) -> None:
        """Start from ``key`` (``"origin"``, ``"mean:<emotion>"``, ``"clip:<i>"``): go there.

        A clip with NaN or infinite values raises ValueError (:meth:`start_problem`).
        """
        if key not in self.starts:
            raise KeyError(key)
        if self.start_problem(key):
            raise ValueError(self.start_problem(key))
        self.start = key
        self.back_to_start()

    def add_start(self, key: str, z: Sequence[float] | np.ndarray, label: str) -> None:
        """Add (or replace) a start point ``key`` (an own recording's posterior mean); ``options`` follow in place."""
        z = np.asarray(z, dtype=np.float32).reshape(-1)
        if z.shape[0] != self.latent_dim:
            raise ValueError(f"a start point needs {self.latent_dim} values, got {z.shape[0]}")
        self.starts[key] = z
        self.start_labels[key] = label
        self.options[:] = [(lab, k) for k, lab in self.start_labels.items()]

    def set_conditions(self, conditions: Mapping[str, np.ndarray]) -> None:
        """Replace the condition picker's entries (the chosen one must stay among them, else the first is chosen)."""
        if not conditions:
            raise ValueError("conditions is empty")
        self.conditions = dict(conditions)
        if self.condition not in self.conditions:
            self.condition = next(iter(self.conditions))

    def back_to_start(self) -> None:
        """Back to the chosen start point (emotion amount back to 0)."""
        self.amount = 0.0
        self.set_latent(self.starts[self.start])

    # ------------------------------------------------------------ emotion direction and pad
    def set_direction(self, emotion: str, amount: float) -> None:
        """Toward ``emotion``'s mean latent by ``amount`` (clipped to 0..1)."""
        if emotion not in self.emotion_means:
            raise KeyError(f"no mean latent for {emotion!r}; known: {list(self.emotion_means)}")
        self.direction = emotion
        self.amount = float(np.clip(amount, 0.0, 1.0))

    def pad_latent(self, x: float, y: float) -> np.ndarray:
        """The pad's blend at (x, y): bilinear weights of the corners' latents (the sliders' point without corners)."""
        present = [bool(k) for k in self.corners]
        if not any(present):
            return self.get_latent()
        w = blend_weights(x, y, present)
        z = sum(wi * self.starts[k].astype(np.float64) for wi, k in zip(w, self.corners) if k)
        return np.asarray(z, dtype=np.float32)

    def set_pad(self, x: float, y: float) -> None:
        """Move the pad to (x, y): the point becomes the blend of the corners."""
        self.pad_position = [float(np.clip(x, 0, 1)), float(np.clip(y, 0, 1))]
        self.set_latent(self.pad_latent(x, y))

    def set_corner(self, j: int, key: str) -> None:
        """Corner ``j`` (:data:`CORNERS` order) blends start point ``key`` ("" for none)."""
        if key and key not in self.starts:
            raise KeyError(key)
        if key and self.start_problem(key):
            raise ValueError(self.start_problem(key))
        self.corners[j] = key

    def corner_labels(self) -> list[str]:
        """Drop-down labels of the four corners ("" where unset)."""
        return [self.start_labels.get(k, "") if k else "" for k in self.corners]

    # ------------------------------------------------------------ conditions
    def set_condition(self, label: str) -> None:
        """Choose the condition ``label``."""
        if not self.conditions:
            raise ValueError("this explorer has no conditions (conditions= was not given)")
        if label not in self.conditions:
            raise KeyError(f"condition {label!r} is not one of {list(self.conditions)}")
        self.condition = label

    @property
    def cond(self) -> np.ndarray | None:
        """The chosen condition of one clip (None without conditions)."""
        return None if self.condition is None else self.conditions[self.condition]

    def status_note(self) -> str:
        """What the status line adds to a render: the condition, the emotion direction, a clamp."""
        a = float(self.amount)
        toward = f" · {a:.2f} toward {self.direction}" if a > 0 and self.direction else ""
        if self.condition is not None:
            toward = f" · condition {self.condition}" + toward
        return toward + (" · values outside the slider range were clamped" if self.clamped else "")
