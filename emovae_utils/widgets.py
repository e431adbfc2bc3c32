"""Interactive latent-space explorer for JupyterLab 4 / ipywidgets 8.

One call shows it::

    from emovae_utils.widgets import latent_explorer
    latent_explorer(model, X=X, index=index)      # X, index from data.load_features

One slider per latent dimension (range -4..4, ``continuous_update=False``: the
spectrogram and the audio are recomputed when a slider is released), a
drop-down to start from the posterior mean ``mu`` of any real clip or from an
emotion's mean latent, a "reset to 0" button, the decoded dB log-mel
spectrogram (PNG rendered by matplotlib's Agg backend, without pyplot) and a
Griffin-Lim rendering of it (16 kHz WAV, not autoplayed).

The logic lives in :class:`LatentExplorer`, which can be driven without a
browser (``set_latent``, ``update``, ``png_bytes``, ``wav_bytes``).
"""
from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .generate import decode_latents, emotion_mean_latents, encode_mu, latent_dim_of

__all__ = ["LatentExplorer", "latent_explorer", "spectrogram_png", "wav_bytes", "clip_label"]

ORIGIN = "origin"
_INTENSITY_NAMES = {1: "normal", 2: "strong", "01": "normal", "02": "strong"}


def clip_label(row: Any, i: int | None = None) -> str:
    """Drop-down label of one clip, e.g. ``"Actor 01 · happy · strong · rep 2"``.

    ``row`` is a mapping/Series with some of the columns ``actor``, ``emotion``,
    ``intensity``, ``repetition`` (and ``statement``, shown when not 1);
    missing columns are left out; ``i`` is used when nothing is known.
    """
    get = row.get if hasattr(row, "get") else (lambda k, d=None: d)
    parts: list[str] = []
    actor = get("actor", None)
    if actor is not None:
        try:
            parts.append(f"Actor {int(actor):02d}")
        except (TypeError, ValueError):
            parts.append(f"Actor {actor}")
    emotion = get("emotion", None)
    if emotion is not None:
        parts.append(str(emotion))
    intensity = get("intensity", None)
    if intensity is not None:
        try:
            key: Any = int(intensity)
        except (TypeError, ValueError):
            key = intensity
        parts.append(str(_INTENSITY_NAMES.get(key, intensity)))
    statement = get("statement", None)
    if statement is not None:
        try:
            if int(statement) != 1:
                parts.append(f"stmt {int(statement)}")
        except (TypeError, ValueError):
            parts.append(f"stmt {statement}")
    rep = get("repetition", None)
    if rep is not None:
        try:
            parts.append(f"rep {int(rep)}")
        except (TypeError, ValueError):
            parts.append(f"rep {rep}")
    if not parts:
        return f"clip {i}" if i is not None else "clip"
    return " · ".join(parts)


def spectrogram_png(
    S_db: np.ndarray,
    title: str | None = None,
    clim: tuple[float, float] | None = None,
    figsize: tuple[float, float] = (6.0, 3.0),
    dpi: int = 80,
) -> bytes:
    """Render a dB log-mel spectrogram (n_mels, T) to PNG bytes.

    Uses a bare :class:`matplotlib.figure.Figure` on the Agg canvas: nothing is
    registered with pyplot, so no figure is left open and nothing is shown.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    vmin, vmax = clim if clim is not None else (None, None)
    im = ax.imshow(np.asarray(S_db), origin="lower", aspect="auto", cmap="magma",
                   vmin=vmin, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="dB")
    ax.set_xlabel("frame")
    ax.set_ylabel("mel band")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    fig.clear()
    return buf.getvalue()


def wav_bytes(y: np.ndarray, sr: int = 16000, normalise: bool = True) -> bytes:
    """16-bit PCM WAV bytes of ``y``.

    Like :func:`emovae_utils.dsp.save_wav`: scaled to peak 0.9 when
    ``normalise`` (Griffin-Lim output from raw dB has no fixed level),
    otherwise clipped to [-1, 1].
    """
    import soundfile as sf

    y = np.asarray(y, dtype=np.float32).reshape(-1)
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if normalise and peak > 0:
        y = y * (0.9 / peak)
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class LatentExplorer:
    """Sliders over the latent space of a VAE, with live spectrogram and audio.

    Parameters
    ----------
    model : nn.Module
        VAE with ``encode``/``decode`` (e.g. :class:`emovae_utils.model.EmotionVAE`);
        the number of sliders is its latent size.
    X : np.ndarray, optional
        Spectrograms (N, 80, 128); encoded to ``mu`` when ``mu`` is not given.
        Also fixes the colour range of the spectrogram image (1st-99th percentile).
    index : pandas.DataFrame, optional
        One row per clip (``data.ravdess_index`` columns); gives the clip labels
        and, with an ``emotion`` column, the "mean: <emotion>" start points.
    mu : array-like, optional
        Posterior means (N, D) of the clips.
    value_range : (float, float), default (-4, 4)
        Slider range.
    step : float, default 0.05
    sr : int, default 16000
    audio : bool, default True
        Compute the Griffin-Lim audio on each update.
    clim : (float, float), optional
        Colour range in dB; default from ``X`` or automatic per image.

    Attributes
    ----------
    sliders : list of ipywidgets.FloatSlider
    dropdown : ipywidgets.Dropdown
    reset_button : ipywidgets.Button
    image : ipywidgets.Image
    audio : ipywidgets.Audio
    widget : ipywidgets.VBox
        What to display.
    z : np.ndarray (D,)
        Latent vector of the last update.
    spectrogram : np.ndarray (n_mels, T)
        Its decoding (dB).
    png_bytes, wav_bytes : bytes
        The current image and audio.
    n_updates : int
        Number of renders so far.
    """

    def __init__(
        self,
        model: nn.Module,
        X: np.ndarray | None = None,
        index: Any = None,
        mu: np.ndarray | torch.Tensor | None = None,
        *,
        value_range: tuple[float, float] = (-4.0, 4.0),
        step: float = 0.05,
        sr: int = 16000,
        audio: bool = True,
        clim: tuple[float, float] | None = None,
    ) -> None:
        import ipywidgets as W

        self.model = model
        self.latent_dim = latent_dim_of(model)
        self.sr = int(sr)
        self.render_audio = bool(audio)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        if mu is None and X is not None:
            mu = encode_mu(model, X)
        if mu is not None:
            mu = mu.detach().cpu().numpy() if torch.is_tensor(mu) else np.asarray(mu)
            mu = mu.astype(np.float32, copy=False)
            if mu.ndim != 2 or mu.shape[1] != self.latent_dim:
                raise ValueError(f"mu must be (N, {self.latent_dim}), got shape {mu.shape}")
        self.mu = mu
        self.index = index
        if index is not None and mu is not None and len(index) != len(mu):
            raise ValueError(f"index has {len(index)} rows but mu has {len(mu)}")
        if clim is None and X is not None and len(X):
            lo, hi = np.percentile(np.asarray(X), [1, 99])
            clim = (float(lo), float(hi))
        self.clim = clim

        self.starts: dict[str, np.ndarray] = {ORIGIN: np.zeros(self.latent_dim, np.float32)}
        options: list[tuple[str, str]] = [("origin (all 0)", ORIGIN)]
        if mu is not None:
            if index is not None and "emotion" in getattr(index, "columns", []):
                means = emotion_mean_latents(mu, list(index["emotion"]))
                cols = [f"z{i}" for i in range(self.latent_dim)]
                for emo, row in means.iterrows():
                    key = f"mean:{emo}"
                    self.starts[key] = row[cols].to_numpy(dtype=np.float32)
                    options.append((f"mean: {emo} (n={int(row['n'])})", key))
            for i in range(len(mu)):
                row = index.iloc[i] if index is not None else None
                key = f"clip:{i}"
                self.starts[key] = mu[i]
                options.append((clip_label(row, i) if row is not None else f"clip {i}", key))
        self.options = options

        lo, hi = self.value_range
        self.sliders = [
            W.FloatSlider(value=0.0, min=lo, max=hi, step=step, description=f"z{i}",
                          continuous_update=False, readout_format=".2f",
                          layout=W.Layout(width="320px"))
            for i in range(self.latent_dim)
        ]
        self.dropdown = W.Dropdown(options=options, value=ORIGIN, description="start from",
                                   layout=W.Layout(width="420px"))
        self.reset_button = W.Button(description="reset to 0", icon="undo")
        self.image = W.Image(format="png", layout=W.Layout(width="480px"))
        self.audio = W.Audio(format="wav", autoplay=False, loop=False, controls=True)
        self.status = W.HTML()
        self.image.add_class("emovae-spectrogram")
        self.audio.add_class("emovae-audio")
        self.status.add_class("emovae-status")
        for s in self.sliders:
            s.add_class("emovae-slider")

        left = W.VBox([self.dropdown, self.reset_button, *self.sliders])
        right = W.VBox([self.image, self.audio, self.status])
        self.widget = W.HBox([left, right])
        self.widget.add_class("emovae-latent-explorer")
        self.widget.explorer = self  # type: ignore[attr-defined]

        self.z = np.zeros(self.latent_dim, np.float32)
        self.spectrogram: np.ndarray | None = None
        self.png_bytes = b""
        self.wav_bytes = b""
        self.n_updates = 0
        self._silent = False
        self._clamped = False

        for s in self.sliders:
            s.observe(self._on_slider, names="value")
        self.dropdown.observe(self._on_dropdown, names="value")
        self.reset_button.on_click(self._on_reset)
        self.update()

    # ------------------------------------------------------------------ logic
    def get_latent(self) -> np.ndarray:
        """Current slider values as a (D,) float32 vector."""
        return np.array([s.value for s in self.sliders], dtype=np.float32)

    def set_latent(self, z: Sequence[float] | np.ndarray, update: bool = True) -> None:
        """Set all sliders at once (values outside the range are clamped) and render once."""
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        if z.shape[0] != self.latent_dim:
            raise ValueError(f"expected {self.latent_dim} values, got {z.shape[0]}")
        lo, hi = self.value_range
        self._silent = True
        try:
            for s, v in zip(self.sliders, np.clip(z, lo, hi)):
                s.value = float(v)
        finally:
            self._silent = False
        self._clamped = bool(np.any((z < lo) | (z > hi)))
        if update:
            self.update()

    def select(self, key: str) -> None:
        """Start from a drop-down entry (``"origin"``, ``"mean:<emotion>"``, ``"clip:<i>"``)."""
        if key not in self.starts:
            raise KeyError(key)
        if self.dropdown.value != key:
            self.dropdown.value = key  # the observer sets the latent
        else:
            self.set_latent(self.starts[key])

    def reset(self) -> None:
        """All sliders to 0."""
        self.select(ORIGIN)

    def update(self) -> None:
        """Decode the slider values and refresh the image and the audio."""
        self.z = self.get_latent()
        self.spectrogram = decode_latents(self.model, self.z)
        title = "z = [" + ", ".join(f"{v:+.2f}" for v in self.z) + "]"
        self.png_bytes = spectrogram_png(self.spectrogram, title=title, clim=self.clim)
        self.image.value = self.png_bytes
        if self.render_audio:
            from . import dsp

            y = dsp.log_mel_to_audio(self.spectrogram)
            self.wav_bytes = wav_bytes(y, self.sr)
            self.audio.value = self.wav_bytes
        self.n_updates += 1
        note = " (values outside the slider range were clamped)" if self._clamped else ""
        self.status.value = f"<small>render {self.n_updates}{html.escape(note)}</small>"

    # -------------------------------------------------------------- callbacks
    def _safe_update(self) -> None:
        try:
            self.update()
        except Exception as exc:  # shown in the widget; a callback error is otherwise hidden
            self.status.value = (f"<span style='color:#b00'>update failed: "
                                 f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>")
            raise

    def _on_slider(self, change: dict) -> None:
        if self._silent:
            return
        self._clamped = False
        # the latent no longer equals the chosen start point: blank the drop-down
        # (silently) so that choosing the same entry again re-applies it
        if self.dropdown.value is not None and not np.allclose(
                self.get_latent(), np.clip(self.starts[self.dropdown.value], *self.value_range)):
            self._silent_dropdown(None)
        self._safe_update()

    def _silent_dropdown(self, value: str | None) -> None:
        self.dropdown.unobserve(self._on_dropdown, names="value")
        try:
            self.dropdown.value = value
        finally:
            self.dropdown.observe(self._on_dropdown, names="value")

    def _on_dropdown(self, change: dict) -> None:
        key = change["new"]
        if key is None:
            return
        self.set_latent(self.starts[key], update=False)
        self._safe_update()

    def _on_reset(self, _button: Any = None) -> None:
        self.reset()

    def _ipython_display_(self) -> None:  # pragma: no cover - notebook only
        from IPython.display import display

        display(self.widget)


def latent_explorer(
    model: nn.Module,
    X: np.ndarray | None = None,
    index: Any = None,
    mu: np.ndarray | torch.Tensor | None = None,
    **kwargs: Any,
):
    """Build the latent explorer and return its top-level widget.

    Parameters
    ----------
    model, X, index, mu, **kwargs
        See :class:`LatentExplorer`.

    Returns
    -------
    ipywidgets.Widget
        Display it (last expression of a cell). The :class:`LatentExplorer`
        behind it is ``widget.explorer``.
    """
    return LatentExplorer(model, X=X, index=index, mu=mu, **kwargs).widget
