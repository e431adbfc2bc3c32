"""Interactive latent-space explorer for JupyterLab 4 / ipywidgets 8.

One call shows it::

    from emovae_utils.widgets import latent_explorer
    latent_explorer(model, X=X, index=index)      # X, index from data.load_features

What it offers (any model with ``encode(x) -> (mu, logvar)``, ``decode(z)`` and
``latent_dim``; every registered variant, conditioned ones too:
``explorer_for(model, X, index)`` picks the keywords below per variant):

* a **condition picker** (``conditions={label: cond}``): the chosen ``cond``
  goes to ``decode(z, cond)`` (a speaker code per actor for ``speaker_vae``,
  an output length for a sequence model, whose width the image and the audio
  follow); ``cond=`` gives one condition per clip for encoding ``X``;
* **sub-latent sliders** (``dims=``): only some dimensions get a slider, the
  others keep the start point's; a model's emotion sub-latent
  (``emotion_dims``, ``supervised_vae``) comes first, labelled "(emotion)";

* one slider per latent dimension, **ordered by use**: the mean KL divergence of
  the posterior from the prior over the clips (nats) is shown beside each
  slider; dimensions below ``kl_threshold`` (0.01 nats) are inactive, greyed and
  folded away in an accordion (moving them changes almost nothing);
* **continuous updates**: the spectrogram and the audio follow a slider while
  it is dragged. Observers only record that a render is wanted; one worker
  thread renders the *latest* state and drops the stale ones, so a burst of
  changes gives the last value and at most a few in between, and the kernel
  never builds a queue (:meth:`LatentExplorer.wait_idle` waits for it);
* a **start** drop-down (the origin, an emotion's mean latent, or the
  posterior mean of any clip) that stays on its choice; "back to start"
  re-applies it;
* an **emotion direction**: from the current point toward a chosen emotion's
  mean latent, ``z = (1 - a) z_sliders + a m_emotion``, amount ``a`` in 0..1;
* a **2-D pad** blending up to four chosen points (clips or emotion means)
  bilinearly, in the spirit of NSynth Super; moving it sets the sliders;
* **A/B**: the starting point's own rendering (a clip's input spectrogram),
  a short pause, then the current point;
* audio by the fast Griffin-Lim inversion (``dsp.log_mel_to_audio(...,
  method="fast")``, warm-started from the previous phase while dragging),
  loudness-normalised (RMS of the voiced part to ``loudness_dbfs``) with
  short fades; autoplay is optional and off by default;
* the spectrogram image, axes in seconds and Hz, drawn without matplotlib
  per update: the frame (axes, ticks, colour bar) is drawn once, each update
  is a colour-map lookup into its plot area and a PNG encoding (zlib).

The logic lives in :class:`LatentExplorer`, which can be driven without a
browser (``set_latent``, ``select``, ``set_direction``, ``set_pad``,
``update``, ``png_bytes``, ``wav_bytes``). In a static view of an executed
notebook (no kernel) the explorer shows its first rendering and says that it
needs a live kernel.
"""
from __future__ import annotations

import base64
import functools
import html
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import INTENSITIES
from .generate import _as_cond, _eval_no_grad, decode_latents, emotion_mean_latents, latent_dim_of, model_device

__all__ = [
    "LatentExplorer",
    "latent_explorer",
    "explorer_for",
    "explorer_defaults",
    "SpectrogramRenderer",
    "spectrogram_png",
    "encode_png",
    "wav_bytes",
    "prepare_audio",
    "dimension_usage",
    "blend_weights",
    "clip_label",
]

ORIGIN = "origin"
def clip_label(row: Any, i: int | None = None) -> str:
    """Drop-down label of one clip, e.g. ``"Actor 01 · happy · strong · rep 2"``.

    ``row`` is a mapping/Series with some of the columns ``actor``, ``emotion``,
    ``intensity``, ``repetition`` (and ``statement``, shown when not 1);
    missing columns and missing values (``None``, NaN, ``<NA>``: the labels of
    own recordings whose names do not parse) are left out; ``name``, then ``i``,
    is used when nothing is known.
    """
    import pandas as pd

    raw = row.get if hasattr(row, "get") else (lambda k, d=None: d)

    def get(key: str, default: Any = None) -> Any:
        value = raw(key, default)
        return default if value is None or (np.ndim(value) == 0 and bool(pd.isna(value))) else value

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
        parts.append(str(INTENSITIES.get(key, intensity)))
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
        name = get("name", None)
        if name is not None:
            return str(name)
        return f"clip {i}" if i is not None else "clip"
    return " · ".join(parts)



# ---------------------------------------------------------------- image
def encode_png(rgb: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image (zlib, no row filter).

    Examples
    --------
    >>> encode_png(np.zeros((2, 3, 3), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, ch = rgb.shape
    if ch != 3:
        raise ValueError(f"expected (H, W, 3), got {rgb.shape}")
    raw = np.empty((h, 1 + 3 * w), np.uint8)
    raw[:, 0] = 0  # filter type "none" for every row
    raw[:, 1:] = rgb.reshape(h, 3 * w)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + chunk(b"IEND", b""))


_SENTINEL = (255, 0, 255)


class SpectrogramRenderer:
    """Draws dB log-mel spectrograms to PNG fast: the frame once, the pixels per call.

    The frame (axes in seconds and Hz, tick labels, a colour bar in dB, an
    optional title) is drawn once with matplotlib's Agg canvas (no pyplot);
    each :meth:`png` call only maps the spectrogram through the colour map
    (nearest neighbour into the plot area, low frequencies at the bottom) and
    encodes the PNG: a few milliseconds instead of about 100.

    Parameters
    ----------
    n_mels, n_frames : int
        Shape of the spectrograms.
    clim : (float, float)
        Colour range in dB (fixed, so that images are comparable).
    config : PreprocessConfig, optional
        Sample rate, hop and frequency range of the axes.
    figsize : (float, float)
        Inches; with ``dpi`` gives the image size in pixels.
    dpi : int
    cmap : str
    title : str, optional
    """

    def __init__(self, n_mels: int = 80, n_frames: int = 128, clim: tuple[float, float] = (-80.0, 20.0),
                 config: Any = None, figsize: tuple[float, float] = (6.0, 3.0), dpi: int = 80,
                 cmap: str = "magma", title: str | None = None) -> None:
        import librosa
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from .dsp import PreprocessConfig

        c = config or PreprocessConfig()
        self.n_mels, self.n_frames = int(n_mels), int(n_frames)
        lo, hi = float(clim[0]), float(clim[1])
        if not hi > lo:
            hi = lo + 1.0
        self.clim = (lo, hi)
        cm = matplotlib.colormaps[cmap]
        self.lut = (np.asarray(cm(np.linspace(0, 1, 256)))[:, :3] * 255 + 0.5).astype(np.uint8)

        fig = Figure(figsize=figsize, dpi=dpi)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes((0.12, 0.17, 0.70, 0.72 if title else 0.78))
        cax = fig.add_axes((0.85, 0.17, 0.025, 0.72 if title else 0.78))
        ax.set_facecolor(tuple(v / 255 for v in _SENTINEL))
        if self.n_mels < 1 or self.n_frames < 1:
            raise ValueError(f"a spectrogram needs at least one band and one frame, got "
                             f"({self.n_mels}, {self.n_frames})")
        duration = self.n_frames * c.hop_length / c.sr
        ax.set_xlim(0, duration)
        ax.set_ylim(-0.5, self.n_mels - 0.5)
        # at most 6 tick intervals whatever the width (0.25 s up to 1.5 s, 0.5 s up to 3 s, ...)
        step = next((s for s in (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0) if duration / s <= 6), 120.0)
        ax.set_xticks(np.arange(0, duration + 1e-9, step))
        ax.set_xlabel("time (s)", fontsize=9)
        centres = librosa.mel_frequencies(self.n_mels + 2, fmin=c.fmin, fmax=c.fmax)[1:-1]
        mel_c = librosa.hz_to_mel(centres)
        hz = [f for f in (250, 500, 1000, 2000, 4000, 7000) if centres[0] <= f <= centres[-1]]
        ax.set_yticks(np.interp(librosa.hz_to_mel(np.array(hz, float)), mel_c, np.arange(self.n_mels)))
        ax.set_yticklabels([f"{f:g}" for f in hz])
        ax.set_ylabel("frequency (Hz, mel scale)", fontsize=9)
        ax.tick_params(labelsize=8)
        if title:
            ax.set_title(title, fontsize=9)
        sm = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(lo, hi), cmap=cm)
        cb = fig.colorbar(sm, cax=cax)
        cb.set_label("dB", fontsize=9)
        cb.ax.tick_params(labelsize=8)
        canvas.draw()
        frame = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        inside = np.all(frame == np.array(_SENTINEL, np.uint8), axis=-1)
        rows, cols = np.nonzero(inside)
        if not len(rows):  # pragma: no cover - would be a matplotlib change
            raise RuntimeError("could not locate the plot area")
        self.r0, self.r1 = int(rows.min()), int(rows.max()) + 1
        self.c0, self.c1 = int(cols.min()), int(cols.max()) + 1
        h, w = self.r1 - self.r0, self.c1 - self.c0
        # nearest source cell of each plot pixel; row 0 (top) is the highest mel band
        self._rows = (self.n_mels - 1 - (np.arange(h) * self.n_mels // h)).astype(np.intp)
        self._cols = (np.arange(w) * self.n_frames // w).astype(np.intp)
        frame[self.r0:self.r1, self.c0:self.c1] = self.lut[0]
        self.frame = frame
        self.size = (frame.shape[1], frame.shape[0])

    def rgb(self, S_db: np.ndarray) -> np.ndarray:
        """The image as an (H, W, 3) uint8 array."""
        S = np.asarray(S_db, dtype=np.float32)
        if S.shape != (self.n_mels, self.n_frames):
            raise ValueError(f"expected a ({self.n_mels}, {self.n_frames}) spectrogram, got {S.shape}")
        lo, hi = self.clim
        idx = np.clip((np.nan_to_num(S, nan=lo) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        out = self.frame.copy()
        out[self.r0:self.r1, self.c0:self.c1] = self.lut[idx[self._rows][:, self._cols]]
        return out

    def png(self, S_db: np.ndarray) -> bytes:
        """PNG bytes of one spectrogram."""
        return encode_png(self.rgb(S_db))


@functools.lru_cache(maxsize=4)
def _renderer(shape: tuple[int, int], clim: tuple[float, float], figsize: tuple[float, float], dpi: int,
              title: str | None) -> SpectrogramRenderer:
    return SpectrogramRenderer(shape[0], shape[1], clim, figsize=figsize, dpi=dpi, title=title)


def spectrogram_png(
    S_db: np.ndarray,
    title: str | None = None,
    clim: tuple[float, float] | None = None,
    figsize: tuple[float, float] = (6.0, 3.0),
    dpi: int = 80,
) -> bytes:
    """Render a dB log-mel spectrogram (n_mels, T) to PNG bytes (axes in s and Hz).

    A cached :class:`SpectrogramRenderer` per shape, colour range, size and
    title; ``clim`` defaults to the spectrogram's own range (rounded to 5 dB).
    """
    S = np.asarray(S_db, dtype=np.float32)
    if clim is None:
        finite = S[np.isfinite(S)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-80.0, 0.0)
        clim = (5 * np.floor(lo / 5), 5 * np.ceil(hi / 5))
    clim = (float(clim[0]), float(clim[1]))
    return _renderer(S.shape, clim, tuple(figsize), int(dpi), title).png(S)


# ---------------------------------------------------------------- audio
def prepare_audio(y: np.ndarray, sr: int = 16000, loudness_dbfs: float = -20.0, fade_ms: float = 10.0,
                  peak: float = 0.97) -> np.ndarray:
    """Loudness-normalise a rendering and fade its edges.

    The level is the RMS over the louder part of the signal (20 ms frames
    within 40 dB of the loudest one), scaled to ``loudness_dbfs``; the gain is
    then lowered if needed so that the peak stays below ``peak``. Raised-cosine
    fades of ``fade_ms`` at both ends avoid clicks.

    Returns
    -------
    np.ndarray, float32, same length
    """
    y = np.nan_to_num(np.asarray(y, dtype=np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    if not y.size or not np.any(y):
        return y.copy()
    hop = max(1, int(0.02 * sr))
    n = len(y) // hop
    if n >= 1:
        e = (y[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(axis=1)
        keep = e >= e.max() * 1e-4
        rms = float(np.sqrt(e[keep].mean()))
    else:
        rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    gain = 10 ** (loudness_dbfs / 20) / max(rms, 1e-12)
    gain = min(gain, peak / max(float(np.max(np.abs(y))), 1e-12))
    out = (y * np.float32(gain)).astype(np.float32)
    k = min(int(sr * fade_ms / 1000), len(out) // 2)
    if k > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)).astype(np.float32)
        out[:k] *= ramp
        out[-k:] *= ramp[::-1]
    return out


def wav_bytes(y: np.ndarray, sr: int = 16000, normalise: bool = True) -> bytes:
    """16-bit PCM WAV bytes of ``y``.

    Like :func:`emovae_utils.dsp.save_wav`: scaled to peak 0.9 when
    ``normalise``, otherwise clipped to [-1, 1] (the explorer passes audio
    already levelled by :func:`prepare_audio`).
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if normalise and peak > 0:
        y = y * (0.9 / peak)
    pcm = np.round(np.clip(y, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, 1,
                         int(sr), int(sr) * 2, 2, 16, b"data", len(pcm))
    return header + pcm


# ---------------------------------------------------------------- latent statistics
def dimension_usage(mu: np.ndarray, logvar: np.ndarray | None = None, threshold: float = 0.01):
    """How much each latent dimension is used: mean KL to the prior over the clips.

    Parameters
    ----------
    mu : np.ndarray, shape (N, D)
        Posterior means.
    logvar : np.ndarray, shape (N, D), optional
        Posterior log-variances. Without them the KL is not known: the
        dimensions are ordered by the variance of ``mu`` and all are active.
    threshold : float
        Dimensions with a mean KL below this (nats) are inactive.

    Returns
    -------
    pandas.DataFrame
        Index ``dim`` (0..D-1); columns ``kl`` (nats, NaN without ``logvar``),
        ``mu_std``, ``active``, ``rank`` (0 = most used). Sort by ``rank`` for
        the slider order.
    """
    import pandas as pd

    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"mu must be (N, D), got shape {mu.shape}")
    std = mu.std(axis=0)
    if logvar is not None:
        lv = np.asarray(logvar, dtype=np.float64)
        kl = (0.5 * (mu ** 2 + np.exp(lv) - 1.0 - lv)).mean(axis=0)
        order = np.argsort(-kl, kind="stable")
        active = kl >= threshold
    else:
        kl = np.full(mu.shape[1], np.nan)
        order = np.argsort(-std, kind="stable")
        active = np.ones(mu.shape[1], bool)
    rank = np.empty(mu.shape[1], int)
    rank[order] = np.arange(mu.shape[1])
    return pd.DataFrame({"kl": kl, "mu_std": std, "active": active, "rank": rank},
                        index=pd.Index(np.arange(mu.shape[1]), name="dim"))


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


# ---------------------------------------------------------------- conditions
def _cond_value(value: Any, what: str = "condition") -> np.ndarray:
    """A condition as a numpy array: floats as float32, integers and booleans as they are."""
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{what} must be numeric (an array, a tensor or a number), got {a.dtype} {a!r:.80}")
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32, copy=False)
    return a


def _repeat(a: np.ndarray, n: int) -> np.ndarray:
    """One clip's condition repeated to ``n`` rows: () -> (n,), (k,) -> (n, k), ..."""
    return np.repeat(a[None], n, axis=0)


def _call(fn: Any, x: torch.Tensor, cond: torch.Tensor | None) -> Any:
    """``fn(x)`` without a condition (models whose methods take none), else ``fn(x, cond)``."""
    return fn(x) if cond is None else fn(x, cond)


def _encode_clips(model: nn.Module, X: np.ndarray, cond: np.ndarray | None, fallback: np.ndarray | None,
                  batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ``(mu, logvar)`` of clips ``X``, each (N, D), float32.

    ``cond`` (N, ...): one condition per clip. Without it the clips are
    encoded without a condition; if the model refuses that (ValueError or
    TypeError) and ``fallback`` (one clip's condition) is given, with it on
    every clip.
    """
    dev = model_device(model)
    Xt = torch.as_tensor(X, dtype=torch.float32)

    def run(get_cond) -> tuple[np.ndarray, np.ndarray]:
        mus, lvs = [], []
        with _eval_no_grad(model):
            for start in range(0, len(Xt), batch_size):
                xb = Xt[start:start + batch_size].to(dev)
                mu, logvar = _call(model.encode, xb, get_cond(start, len(xb)))
                mus.append(mu.detach().float().cpu().numpy())
                lvs.append(logvar.detach().float().cpu().numpy())
        return np.concatenate(mus).astype(np.float32, copy=False), np.concatenate(lvs).astype(np.float32, copy=False)

    if cond is not None:
        return run(lambda s, n: _as_cond(cond[s:s + n], dev))
    try:
        return run(lambda s, n: None)
    except (ValueError, TypeError) as exc:
        if fallback is None:
            raise ValueError(f"{type(model).__name__}.encode needs a condition for the clips X: pass cond= "
                             f"(one per clip, shape (N, ...)) or conditions= ({exc})") from exc
        return run(lambda s, n: _as_cond(_repeat(fallback, n), dev))


# ---------------------------------------------------------------- pad widget
_PAD_ESM = r"""
function render({ model, el }) {
  const size = 168;
  const pad = document.createElement("div");
  pad.className = "emovae-pad-area";
  pad.tabIndex = 0;
  pad.title = "drag to blend the four corners; arrow keys move by 5 %";
  pad.style.cssText = `position:relative;width:${size}px;height:${size}px;border:1px solid #999;` +
    "border-radius:6px;background:linear-gradient(135deg,#f3e6f5,#e3eef8);touch-action:none;" +
    "cursor:crosshair;user-select:none;outline-offset:2px";
  const dot = document.createElement("div");
  dot.style.cssText = "position:absolute;width:12px;height:12px;margin:-8px 0 0 -8px;border-radius:50%;" +
    "background:#c2185b;border:2px solid #fff;box-shadow:0 0 2px #000;pointer-events:none";
  const where = ["left:4px;top:2px", "right:4px;top:2px;text-align:right", "left:4px;bottom:2px",
                 "right:4px;bottom:2px;text-align:right"];
  const labels = where.map(css => {
    const s = document.createElement("span");
    s.style.cssText = "position:absolute;max-width:" + (size / 2 - 6) + "px;overflow:hidden;white-space:nowrap;" +
      "text-overflow:ellipsis;font-size:10px;line-height:12px;color:#333;pointer-events:none;" + css;
    pad.appendChild(s);
    return s;
  });
  pad.appendChild(dot);
  const draw = () => {
    const p = model.get("position") || [0.5, 0.5];
    dot.style.left = (p[0] * size) + "px";
    dot.style.top = (p[1] * size) + "px";
    const names = model.get("labels") || [];
    labels.forEach((s, i) => { s.textContent = names[i] || ""; s.title = names[i] || ""; });
  };
  const send = (x, y) => {
    x = Math.min(1, Math.max(0, x)); y = Math.min(1, Math.max(0, y));
    model.set("position", [x, y]);
    model.save_changes();
    draw();
  };
  let dragging = false;
  const at = ev => {
    const r = pad.getBoundingClientRect();
    send((ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height);
  };
  pad.addEventListener("pointerdown", ev => {
    dragging = true; pad.focus();
    try { pad.setPointerCapture(ev.pointerId); } catch (e) {}
    at(ev); ev.preventDefault();
  });
  pad.addEventListener("pointermove", ev => { if (dragging) at(ev); });
  const stop = () => { dragging = false; };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  pad.addEventListener("keydown", ev => {
    const d = { ArrowLeft: [-0.05, 0], ArrowRight: [0.05, 0], ArrowUp: [0, -0.05], ArrowDown: [0, 0.05] }[ev.key];
    if (!d) return;
    const p = model.get("position") || [0.5, 0.5];
    send(p[0] + d[0], p[1] + d[1]);
    ev.preventDefault();
  });
  model.on("change:position", draw);
  model.on("change:labels", draw);
  draw();
  el.classList.add("emovae-pad");
  el.appendChild(pad);
}
export default { render };
"""


@functools.lru_cache(maxsize=1)
def _pad_class():
    import anywidget
    import traitlets

    class Pad(anywidget.AnyWidget):
        """A square pad; ``position`` = [x, y] in [0, 1]² (y downwards), ``labels`` = corner names."""

        _esm = _PAD_ESM
        position = traitlets.List(traitlets.Float(), default_value=[0.5, 0.5]).tag(sync=True)
        labels = traitlets.List(traitlets.Unicode(), default_value=["", "", "", ""]).tag(sync=True)

    return Pad


# ---------------------------------------------------------------- the explorer
_STYLE = """<style>
.emovae-latent-explorer .emovae-inactive { opacity: 0.5; }
.emovae-latent-explorer .emovae-kl { font-size: 11px; color: #555; min-width: 90px; }
.emovae-latent-explorer .emovae-note { font-size: 11px; color: #555; }
</style>"""

_STATIC_NOTE = ("Latent explorer: interactive, it needs a live Python kernel (JupyterLab with ipywidgets). "
                "Run the notebook's cells to use it; a static view shows its first rendering only.")


@functools.lru_cache(maxsize=1)
def _explorer_box_class():
    import ipywidgets as W

    class ExplorerBox(W.VBox):
        """The explorer's top-level box; a static view (no kernel) shows a note and the first image."""

        def __repr__(self) -> str:
            return _STATIC_NOTE

        def _repr_mimebundle_(self, **kwargs: Any):
            data = super()._repr_mimebundle_(**kwargs)
            if data is None:
                return None
            data["text/plain"] = _STATIC_NOTE
            ex = getattr(self, "explorer", None)
            img = ""
            if ex is not None and ex.first_png:
                img = ("<br><img alt='first rendering' src='data:image/png;base64,"
                       + base64.b64encode(ex.first_png).decode() + "'>")
            data["text/html"] = f"<div class='emovae-static'><p><em>{html.escape(_STATIC_NOTE)}</em></p>{img}</div>"
            return data

    return ExplorerBox


class LatentExplorer:
    """Sliders over the latent space of a VAE, with live spectrogram and audio.

    Parameters
    ----------
    model : nn.Module
        VAE with ``encode(x) -> (mu, logvar)``, ``decode(z)`` and (ideally)
        ``latent_dim``; ``encode(x, cond)`` / ``decode(z, cond)`` with a
        condition (``conditions``, ``cond``), called without one otherwise.
        A model whose ``decode`` refuses ``cond=None`` (ValueError or
        TypeError, e.g. ``speaker_vae``) needs ``conditions``.
    X : np.ndarray, optional
        Spectrograms (N, n_mels, T) of the clips: encoded to the posteriors
        (for the start points and the KL per dimension); a clip's own rendering
        (A/B) inverts its row of ``X``. Also fixes the colour range of the
        image (1st-99th percentile).
    index : pandas.DataFrame, optional
        One row per clip (``data.ravdess_index`` columns); gives the clip labels
        and, with an ``emotion`` column, the emotion means (start points,
        emotion direction, pad corners).
    mu, logvar : array-like, optional
        Posterior means and log-variances (N, D), instead of encoding ``X``.
    value_range : (float, float), default (-4, 4)
        Slider range.
    step : float, default 0.01
    audio : bool, default True
        Render audio on each update.
    method : {"fast", "reference"}, default "fast"
        Inversion (:func:`emovae_utils.dsp.log_mel_to_audio`); "fast" starts
        from the previous rendering's phase while the point moves.
    threaded : bool, default True
        Render in a worker thread that coalesces requests (the latest wins);
        False renders inside each observer (a burst then renders every value).
    autoplay : bool, default False
        Initial state of the "autoplay" check box.
    kl_threshold : float, default 0.01
        Dimensions with a mean KL below this (nats) are inactive.
    show_inactive : bool, default False
        Unfold the inactive dimensions.
    loudness_dbfs, fade_ms : float
        See :func:`prepare_audio`.
    clim : (float, float), optional
        Colour range in dB; default from ``X``, else from the origin's decoding.
    config : PreprocessConfig, optional
        Sample rate and STFT settings (the study's by default).
    conditions : mapping of str to array-like, optional
        Condition picker: label -> the ``cond`` of one clip (e.g. a speaker
        code (80,), or a length in frames for a sequence model). The chosen
        one, repeated to the batch, is passed to ``model.decode(z, cond)``;
        changing it re-renders. A condition may change the output width
        (T other than 128): the image's time axis and the audio follow.
    condition : str, optional
        The label chosen first (default: the first one).
    cond : array-like (N, ...), optional
        One condition per clip of ``X``, for encoding them
        (``model.encode(X, cond)``). Without it the clips are encoded
        without a condition, or, if the model refuses that, with the chosen
        condition of ``conditions``.
    dims : sequence of int, optional
        Latent dimensions that get a slider (default: all); the others keep
        the start point's values (a clip, a mean, the pad's blend, 0).
        For a model with an ``emotion_dims`` attribute (``supervised_vae``)
        the emotion sub-latent ``z0 .. z{emotion_dims-1}`` comes first,
        labelled "(emotion)", never folded away.

    Attributes
    ----------
    widget : ipywidgets.VBox
        What to display (its static view says it needs a live kernel).
    sliders : list of ipywidgets.FloatSlider
        One per dimension of ``dims``, in ``dims`` order: ``sliders[k]`` for
        ``z_{dims[k]}`` (with all dimensions, ``sliders[i]`` for ``z_i``).
    dims : list of int
        Dimensions with a slider, ascending; ``slider_of[d]`` is d's slider.
    slider_order : list of int
        The order in which they are displayed (emotion sub-latent, then by use).
    emotion_dims : list of int
        The model's emotion sub-latent (empty for models without one).
    order : list of int
        Dimensions, most used first.
    conditions : dict of str to np.ndarray
        The condition picker's entries (empty without conditions);
        ``condition`` is its drop-down (None without conditions).
    usage : pandas.DataFrame
        :func:`dimension_usage` of the clips (None without clips).
    dropdown, direction, amount, pad, pad_corners, autoplay, image, audio, ab_audio, status
        The controls and outputs.
    z : np.ndarray (D,)
        Latent of the last render; ``spectrogram``, ``png_bytes``, ``wav_bytes``
        are its outputs; ``n_updates`` counts renders.
    """

    def __init__(
        self,
        model: nn.Module,
        X: np.ndarray | None = None,
        index: Any = None,
        mu: np.ndarray | torch.Tensor | None = None,
        *,
        logvar: np.ndarray | torch.Tensor | None = None,
        value_range: tuple[float, float] = (-4.0, 4.0),
        step: float = 0.01,
        audio: bool = True,
        method: str = "fast",
        threaded: bool = True,
        autoplay: bool = False,
        kl_threshold: float = 0.01,
        show_inactive: bool = False,
        loudness_dbfs: float = -20.0,
        fade_ms: float = 10.0,
        clim: tuple[float, float] | None = None,
        config: Any = None,
        sr: int | None = None,
        conditions: Any = None,
        condition: str | None = None,
        cond: Any = None,
        dims: Sequence[int] | None = None,
    ) -> None:
        import ipywidgets as W

        from . import inversion
        from .dsp import PreprocessConfig

        self.model = model
        self.config = config or PreprocessConfig()
        self.sr = int(sr or self.config.sr)
        self.latent_dim = latent_dim_of(model)
        self.render_audio = bool(audio)
        if method not in inversion.METHODS:
            raise ValueError(f"method must be one of {inversion.METHODS}, got {method!r}")
        self.method = method
        self.threaded = bool(threaded)
        self.loudness_dbfs, self.fade_ms = float(loudness_dbfs), float(fade_ms)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.X = None if X is None else np.asarray(X, dtype=np.float32)

        # condition picker (before anything is decoded)
        self.conditions: dict[str, np.ndarray] = {}
        if conditions is not None:
            items = list(conditions.items()) if hasattr(conditions, "items") else list(conditions)
            if not items:
                raise ValueError("conditions is empty: give at least one label -> cond, or None")
            for label, value in items:
                self.conditions[str(label)] = _cond_value(value, f"conditions[{label!r}]")
        self.condition = None
        if self.conditions:
            labels = list(self.conditions)
            if condition is not None and str(condition) not in self.conditions:
                raise KeyError(f"condition {condition!r} is not one of {labels}")
            self.condition = W.Dropdown(options=labels, value=str(condition) if condition is not None else labels[0],
                                        description="condition", style={"description_width": "70px"},
                                        layout=W.Layout(width="430px"))
            self.condition.add_class("emovae-condition")
        elif condition is not None:
            raise ValueError("condition= needs conditions=")
        self.cond = None if cond is None else _cond_value(cond, "cond")
        if self.cond is not None:
            if self.X is None:
                raise ValueError("cond= holds one condition per clip of X; X is missing")
            if self.cond.ndim == 0 or len(self.cond) != len(self.X):
                raise ValueError(f"cond must hold one condition per clip, ({len(self.X)}, ...), "
                                 f"got shape {self.cond.shape}")

        # the origin's decoding: checks that decode works as called (with or without a condition)
        origin = np.zeros(self.latent_dim, np.float32)
        try:
            S0 = self.decode(origin)
        except (ValueError, TypeError) as exc:
            name = type(model).__name__
            if self.conditions:
                raise ValueError(f"{name}.decode(z, cond) failed with condition {self.condition.value!r}: "
                                 f"{exc}") from exc
            raise ValueError(
                f"{name}.decode needs a condition (cond) and none was given: pass conditions={{label: cond}}, "
                f"one cond per choice (e.g. a speaker code per actor), or build the explorer with "
                f"emovae_utils.widgets.explorer_for(model, X, index), which picks them. The model said: "
                f"{type(exc).__name__}: {exc}") from exc
        if S0.ndim != 2:
            raise ValueError(f"decode must give (N, n_mels, T) spectrograms, got {(1,) + S0.shape}")

        def _np(a):
            if a is None:
                return None
            a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
            return a.astype(np.float32, copy=False)

        mu, logvar = _np(mu), _np(logvar)
        if mu is None and self.X is not None and len(self.X):
            fallback = self.conditions[self.condition.value] if self.condition is not None else None
            mu, logvar = _encode_clips(model, self.X, self.cond, fallback)
        if mu is not None and (mu.ndim != 2 or mu.shape[1] != self.latent_dim):
            raise ValueError(f"mu must be (N, {self.latent_dim}), got shape {mu.shape}")
        if logvar is not None and mu is not None and logvar.shape != mu.shape:
            raise ValueError(f"logvar must have the shape of mu {mu.shape}, got {logvar.shape}")
        self.mu, self.logvar = mu, logvar
        self.index = index
        if index is not None and mu is not None and len(index) != len(mu):
            raise ValueError(f"index has {len(index)} rows but mu has {len(mu)}")

        # dimensions ordered by use
        self.kl_threshold = float(kl_threshold)
        self.usage = dimension_usage(mu, logvar, kl_threshold) if mu is not None and len(mu) else None
        if self.usage is not None:
            self.order = [int(i) for i in self.usage.sort_values("rank").index]
            self.active = self.usage["active"].to_numpy(bool)
        else:
            self.order = list(range(self.latent_dim))
            self.active = np.ones(self.latent_dim, bool)

        # start points
        self.starts: dict[str, np.ndarray] = {ORIGIN: np.zeros(self.latent_dim, np.float32)}
        self.start_labels: dict[str, str] = {ORIGIN: "origin (all 0)"}
        self.emotion_means: dict[str, np.ndarray] = {}
        if mu is not None:
            if index is not None and "emotion" in getattr(index, "columns", []):
                known = index["emotion"].notna().to_numpy()  # own recordings may have no label
                means = (emotion_mean_latents(mu[known], list(index["emotion"][known])) if known.any()
                         else None)
                cols = [f"z{i}" for i in range(self.latent_dim)]
                for emo, row in (means.iterrows() if means is not None else ()):
                    key = f"mean:{emo}"
                    self.emotion_means[str(emo)] = row[cols].to_numpy(dtype=np.float32)
                    self.starts[key] = self.emotion_means[str(emo)]
                    self.start_labels[key] = f"mean: {emo} (n={int(row['n'])})"
            for i in range(len(mu)):
                row = index.iloc[i] if index is not None else None
                key = f"clip:{i}"
                self.starts[key] = mu[i]
                self.start_labels[key] = clip_label(row, i) if row is not None else f"clip {i}"
        self.options = [(lab, key) for key, lab in self.start_labels.items()]

        # image renderer with a fixed colour range
        if clim is None:
            if self.X is not None and len(self.X):
                lo, hi = np.percentile(self.X, [1, 99])
            else:
                lo, hi = np.percentile(S0, [1, 99])
            clim = (float(lo), float(hi))
        self.clim = (float(clim[0]), float(clim[1]))
        # one renderer per spectrogram shape (a condition may change the width), same colours
        self._renderers: dict[tuple[int, int], SpectrogramRenderer] = {}
        self.renderer = self._renderer_for(S0.shape)
        self._inverter = inversion.FastInverter(self.config)
        self._inverter_shape: tuple[int, int] | None = None

        # ------------------------------------------------------------ sliders
        D = self.latent_dim
        if dims is None:
            shown = list(range(D))
        else:
            shown = [int(d) for d in np.asarray(dims, dtype=np.int64).reshape(-1)]
            bad = [d for d in shown if not 0 <= d < D]
            if bad or not shown or len(set(shown)) != len(shown):
                raise ValueError(f"dims must be distinct dimensions in 0..{D - 1}, at least one; got {list(dims)}")
        self.dims = sorted(shown)
        k = getattr(model, "emotion_dims", None)
        try:
            k = int(k) if k is not None and np.ndim(k) == 0 else 0
        except (TypeError, ValueError):
            k = 0
        self.emotion_dims = list(range(min(max(k, 0), D)))
        emotion = [d for d in self.emotion_dims if d in self.dims]
        rest = [d for d in self.order if d in self.dims and d not in self.emotion_dims]
        self.slider_order = emotion + rest

        lo, hi = self.value_range
        wide = bool(emotion)
        self.sliders = []
        self.slider_of = {}
        rows = {}
        for i in self.dims:
            s = W.FloatSlider(value=0.0, min=lo, max=hi, step=step,
                              description=f"z{i} (emotion)" if i in self.emotion_dims else f"z{i}",
                              continuous_update=True, readout_format=".2f",
                              style={"description_width": "96px" if wide else "32px"},
                              layout=W.Layout(width="494px" if wide else "430px"))
            s.add_class("emovae-slider")
            if i in self.emotion_dims:
                s.add_class("emovae-emotion-slider")
            if self.usage is not None and not np.isnan(self.usage.loc[i, "kl"]):
                kl = float(self.usage.loc[i, "kl"])
                text = f"{kl:.2f} nats" + ("" if self.active[i] else " · inactive")
            else:
                text = ""
            label = W.HTML(text)
            label.add_class("emovae-kl")
            row = W.HBox([s, label])
            if not self.active[i]:
                s.style.handle_color = "#bbbbbb"
                row.add_class("emovae-inactive")
                s.add_class("emovae-inactive-slider")
            self.sliders.append(s)
            self.slider_of[i] = s
            rows[i] = row
        # the emotion sub-latent is shown even where inactive; the others as before
        emotion_rows = [rows[i] for i in emotion]
        active_rows = [rows[i] for i in rest if self.active[i]]
        inactive_rows = [rows[i] for i in rest if not self.active[i]]
        kl_known = self.usage is not None and not self.usage["kl"].isna().all()
        note = ("Sliders ordered by use: mean KL from the prior over the clips (nats), beside each."
                if kl_known else "Sliders ordered by the spread of the clips' posterior means.")
        if emotion:
            span = f"z0–z{len(self.emotion_dims) - 1}" if len(self.emotion_dims) > 1 else "z0"
            note = (f"First the emotion sub-latent ({span}, the dimensions trained to carry the emotion)"
                    + ("; then the others. " + note if rest else "."))
        if len(self.dims) < D:
            note += (f" {len(self.dims)} of {D} dimensions have a slider; the others keep the start "
                     "point's values.")
        head = W.HTML("<span class='emovae-note'>" + html.escape(note) + "</span>")
        slider_box = [head, *emotion_rows, *active_rows]
        self.inactive_box = None
        if inactive_rows:
            inner = W.VBox(inactive_rows)
            self.inactive_box = W.Accordion(children=[inner], selected_index=0 if show_inactive else None)
            self.inactive_box.set_title(
                0, f"{len(inactive_rows)} inactive dimension{'s' if len(inactive_rows) > 1 else ''} "
                   f"(KL < {self.kl_threshold:g} nats): moving them changes almost nothing")
            self.inactive_box.add_class("emovae-inactive-dims")
            slider_box.append(self.inactive_box)

        # ------------------------------------------------------------ widgets

        self.dropdown = W.Dropdown(options=self.options, value=ORIGIN, description="start from",
                                   style={"description_width": "70px"}, layout=W.Layout(width="430px"))
        self.dropdown.add_class("emovae-start")
        self.back_button = W.Button(description="back to start", icon="undo",
                                    tooltip="set the sliders to the chosen start point again",
                                    layout=W.Layout(width="130px"))
        self.ab_button = W.Button(description="A/B", icon="play",
                                  tooltip="play the start point's own rendering, then the current point",
                                  layout=W.Layout(width="80px"))
        self.ab_button.add_class("emovae-ab")
        self.autoplay = W.Checkbox(value=bool(autoplay), description="autoplay", indent=False,
                                   layout=W.Layout(width="90px"))
        self.autoplay.add_class("emovae-autoplay")

        emotions = list(self.emotion_means)
        self.direction = W.Dropdown(options=emotions or [("(no emotion labels)", None)],
                                    value=emotions[0] if emotions else None, description="toward",
                                    disabled=not emotions, style={"description_width": "50px"},
                                    layout=W.Layout(width="200px"))
        self.direction.add_class("emovae-direction")
        self.amount = W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.01, description="amount",
                                    continuous_update=True, readout_format=".2f", disabled=not emotions,
                                    style={"description_width": "56px"}, layout=W.Layout(width="320px"))
        self.amount.add_class("emovae-amount")
        direction_box = W.VBox([
            W.HTML("<b>Emotion direction</b> <span class='emovae-note'>toward an emotion's mean latent "
                   "(amount 1: the mean)</span>"),
            W.HBox([self.direction, self.amount]),
        ])

        Pad = _pad_class()
        corner_keys = [f"mean:{e}" for e in emotions[:4]]
        clip_keys = [k for k in self.starts if k.startswith("clip:")]
        while len(corner_keys) < 4 and clip_keys:
            corner_keys.append(clip_keys.pop(0))
        corner_options = [("(none)", "")] + self.options
        self.pad_corners = [
            W.Dropdown(options=corner_options, value=corner_keys[j] if j < len(corner_keys) else "",
                       description=name, style={"description_width": "90px"}, layout=W.Layout(width="330px"))
            for j, name in enumerate(("top left", "top right", "bottom left", "bottom right"))
        ]
        self.pad = Pad(labels=self._corner_labels())
        self.pad.add_class("emovae-pad-widget")
        pad_box = W.VBox([
            W.HTML("<b>Blend pad</b> <span class='emovae-note'>drag to blend the four corners "
                   "(it sets the sliders)</span>"),
            W.HBox([self.pad, W.VBox(self.pad_corners)]),
        ])

        self.image = W.Image(format="png", layout=W.Layout(width=f"{self.renderer.size[0]}px"))
        self.image.add_class("emovae-spectrogram")
        self.audio = W.Audio(format="wav", autoplay=bool(autoplay), loop=False, controls=True)
        self.audio.add_class("emovae-audio")
        self.ab_audio = W.Audio(format="wav", autoplay=True, loop=False, controls=True)
        self.ab_audio.add_class("emovae-ab-audio")
        self.status = W.HTML()
        self.status.add_class("emovae-status")

        left = W.VBox([W.HBox([self.dropdown]),
                       *([W.HBox([self.condition])] if self.condition is not None else []),
                       W.HBox([self.back_button, self.ab_button, self.autoplay]),
                       *slider_box])
        right = W.VBox([self.image,
                        W.HBox([W.HTML("<span class='emovae-note'>current</span>", layout=W.Layout(width="60px")),
                                self.audio]),
                        W.HBox([W.HTML("<span class='emovae-note'>A/B</span>", layout=W.Layout(width="60px")),
                                self.ab_audio]),
                        self.status])
        self.widget = _explorer_box_class()([W.HTML(_STYLE), W.HBox([left, right]),
                                             W.HBox([direction_box, pad_box],
                                                    layout=W.Layout(justify_content="space-between"))])
        self.widget.add_class("emovae-latent-explorer")
        self.widget.explorer = self  # type: ignore[attr-defined]

        # ------------------------------------------------------------ state
        self.z = np.zeros(self.latent_dim, np.float32)
        self._z_fixed = np.zeros(self.latent_dim, np.float32)  # values of the dimensions without a slider
        self.spectrogram: np.ndarray | None = None
        self.png_bytes = b""
        self.wav_bytes = b""
        self.first_png = b""
        self.audio_samples: np.ndarray | None = None
        self.n_updates = 0
        self.render_ms: list[float] = []
        self._silent = False
        self._clamped = False
        self._start_audio: dict[str, np.ndarray] = {}
        self._render_lock = threading.RLock()
        self._cv = threading.Condition()
        self._requested = 0  # request counter
        self._done = 0  # request counter value the last render started from
        self._busy = False
        self._worker: threading.Thread | None = None
        self._closed = False

        for s in self.sliders:
            s.observe(self._on_slider, names="value")
        self.dropdown.observe(self._on_dropdown, names="value")
        self.direction.observe(self._on_direction, names="value")
        self.amount.observe(self._on_direction, names="value")
        self.pad.observe(self._on_pad, names="position")
        for d in self.pad_corners:
            d.observe(self._on_corner, names="value")
        self.autoplay.observe(self._on_autoplay, names="value")
        if self.condition is not None:
            self.condition.observe(self._on_condition, names="value")
        self.back_button.on_click(lambda _b: self.back_to_start())
        self.ab_button.on_click(lambda _b: self.play_ab())
        self.update()
        self.first_png = self.png_bytes

    # ------------------------------------------------------------------ logic
    def get_latent(self) -> np.ndarray:
        """Slider values as a (D,) float32 vector (before the emotion direction).

        Dimensions without a slider (``dims``) hold the start point's values.
        """
        z = self._z_fixed.copy()
        for d, s in zip(self.dims, self.sliders):
            z[d] = s.value
        return z

    # ------------------------------------------------------------ conditions
    @property
    def condition_label(self) -> str | None:
        """Label of the chosen condition (None without conditions)."""
        return None if self.condition is None else self.condition.value

    def current_cond(self, n: int = 1) -> torch.Tensor | None:
        """The chosen condition repeated to ``n`` rows, as passed to ``decode`` (None without conditions)."""
        if self.condition is None:
            return None
        return _as_cond(_repeat(self.conditions[self.condition.value], n), model_device(self.model))

    def decode(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Decode latents (N, D) or (D,) with the chosen condition: (N, n_mels, T) or (n_mels, T) float32."""
        n = 1 if np.ndim(z) == 1 else len(z)
        return decode_latents(self.model, z, self.current_cond(n))

    def set_condition(self, label: str, sync: bool = True) -> None:
        """Choose the condition ``label`` (as the picker does) and render."""
        if self.condition is None:
            raise ValueError("this explorer has no conditions (conditions= was not given)")
        if label not in self.conditions:
            raise KeyError(f"condition {label!r} is not one of {list(self.conditions)}")
        if self.condition.value != label:
            self.condition.unobserve(self._on_condition, names="value")
            try:
                self.condition.value = label
            finally:
                self.condition.observe(self._on_condition, names="value")
        self._inverter.reset()  # a jump: start the phase afresh
        self.request_render(sync=sync)

    def _renderer_for(self, shape: tuple[int, ...]) -> SpectrogramRenderer:
        shape = (int(shape[0]), int(shape[1]))
        r = self._renderers.get(shape)
        if r is None:
            r = self._renderers[shape] = SpectrogramRenderer(shape[0], shape[1], self.clim, self.config,
                                                             title="decoded log-mel spectrogram")
        return r

    def current_latent(self) -> np.ndarray:
        """The latent that is rendered: ``(1 - a) * sliders + a * mean[emotion]``."""
        base = self.get_latent()
        a = float(self.amount.value)
        target = self.emotion_means.get(self.direction.value) if self.direction.value is not None else None
        if a <= 0 or target is None:
            return base
        return ((1.0 - a) * base.astype(np.float64) + a * target.astype(np.float64)).astype(np.float32)

    def set_latent(self, z: Sequence[float] | np.ndarray, update: bool = True) -> None:
        """Set all sliders at once (values outside the range are clamped); render once if ``update``."""
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        if z.shape[0] != self.latent_dim:
            raise ValueError(f"expected {self.latent_dim} values, got {z.shape[0]}")
        lo, hi = self.value_range
        self._z_fixed = z.astype(np.float32)  # the dimensions without a slider keep the exact values
        self._silent = True
        try:
            for d, s in zip(self.dims, self.sliders):
                s.value = float(np.clip(z[d], lo, hi))
        finally:
            self._silent = False
        zs = z[self.dims]
        self._clamped = bool(np.any((zs < lo) | (zs > hi)))
        if update:
            self.update()

    def select(self, key: str) -> None:
        """Start from a drop-down entry (``"origin"``, ``"mean:<emotion>"``, ``"clip:<i>"``)."""
        if key not in self.starts:
            raise KeyError(key)
        if self.dropdown.value != key:
            self.dropdown.unobserve(self._on_dropdown, names="value")
            try:
                self.dropdown.value = key
            finally:
                self.dropdown.observe(self._on_dropdown, names="value")
        self.back_to_start(sync=True)

    def back_to_start(self, sync: bool = False) -> None:
        """Set the sliders to the chosen start point again (emotion amount back to 0)."""
        key = self.dropdown.value or ORIGIN
        self._silent = True
        try:
            self.amount.value = 0.0
        finally:
            self._silent = False
        self._inverter.reset()  # a jump: start the phase afresh (same point, same audio)
        self.set_latent(self.starts[key], update=False)
        self.request_render(sync=sync)

    def reset(self) -> None:
        """Back to the origin (all sliders 0)."""
        self.select(ORIGIN)

    def set_direction(self, emotion: str, amount: float, sync: bool = True) -> None:
        """Move toward ``emotion``'s mean latent by ``amount`` (0..1) and render."""
        if emotion not in self.emotion_means:
            raise KeyError(f"no mean latent for {emotion!r}; known: {list(self.emotion_means)}")
        self._silent = True
        try:
            self.direction.value = emotion
            self.amount.value = float(np.clip(amount, 0.0, 1.0))
        finally:
            self._silent = False
        self.request_render(sync=sync)

    def pad_latent(self, x: float, y: float) -> np.ndarray:
        """The pad's blend at (x, y): bilinear weights of the corners' latents."""
        keys = [d.value for d in self.pad_corners]
        present = [bool(k) for k in keys]
        if not any(present):
            return self.get_latent()
        w = blend_weights(x, y, present)
        z = sum(wi * self.starts[k].astype(np.float64) for wi, k in zip(w, keys) if k)
        return np.asarray(z, dtype=np.float32)

    def set_pad(self, x: float, y: float, sync: bool = True) -> None:
        """Move the pad to (x, y): the sliders take the blend of the corners; render."""
        self._silent = True
        try:
            self.pad.position = [float(np.clip(x, 0, 1)), float(np.clip(y, 0, 1))]
        finally:
            self._silent = False
        self.set_latent(self.pad_latent(x, y), update=False)
        self.request_render(sync=sync)

    def start_audio(self, key: str | None = None) -> np.ndarray:
        """The start point's own rendering (levelled): a clip's input spectrogram, else its decoding."""
        key = key or self.dropdown.value or ORIGIN
        own = key.startswith("clip:") and self.X is not None
        cache = key if own else f"{key}|{self.condition_label}"  # a decoding depends on the condition
        if cache not in self._start_audio:
            from .inversion import log_mel_to_audio

            if own:
                S = self.X[int(key.split(":", 1)[1])]
            else:
                with self._render_lock:
                    S = self.decode(self.starts[key])
            y = log_mel_to_audio(S, self.config, method=self.method)
            self._start_audio[cache] = prepare_audio(y, self.sr, self.loudness_dbfs, self.fade_ms)
        return self._start_audio[cache]

    def ab_bytes(self, gap_s: float = 0.3) -> bytes:
        """WAV of A (the start's own rendering), ``gap_s`` of silence, then B (the current point)."""
        a = self.start_audio()
        b = self.audio_samples
        if b is None:  # audio=False: render the current point's audio now
            from .inversion import log_mel_to_audio

            with self._render_lock:
                S = self.decode(self.current_latent())
            b = prepare_audio(log_mel_to_audio(S, self.config, method=self.method), self.sr,
                              self.loudness_dbfs, self.fade_ms)
        y = np.concatenate([a, np.zeros(int(gap_s * self.sr), np.float32), b])
        return wav_bytes(y, self.sr, normalise=False)

    def play_ab(self) -> None:
        """Put A-then-B in the A/B player, which plays it once."""
        data = self.ab_bytes()
        if self.ab_audio.value == data:
            self.ab_audio.value = b""  # same bytes: force a new source so that it plays again
        self.ab_audio.value = data

    def _render(self, z: np.ndarray) -> None:
        t0 = time.perf_counter()
        S = self.decode(z)
        if S.ndim != 2:
            raise ValueError(f"decode gave shape {S.shape}, expected (n_mels, T)")
        self.renderer = self._renderer_for(S.shape)
        png = self.renderer.png(S)
        wav = None
        if S.shape != self._inverter_shape:  # another width: the previous phase does not fit
            self._inverter.reset()
            self._inverter_shape = S.shape
        if self.render_audio:
            if self.method == "fast":
                y = self._inverter(S)
            else:
                from .inversion import log_mel_to_audio

                y = log_mel_to_audio(S, self.config, method=self.method)
            y = prepare_audio(y, self.sr, self.loudness_dbfs, self.fade_ms)
            wav = wav_bytes(y, self.sr, normalise=False)
            self.audio_samples = y
        self.z, self.spectrogram, self.png_bytes = z, S, png
        # image and audio of the same point go out back to back
        self.image.value = png
        if wav is not None:
            self.wav_bytes = wav
            self.audio.value = wav
        self.n_updates += 1
        ms = 1000 * (time.perf_counter() - t0)
        self.render_ms.append(ms)
        note = " · values outside the slider range were clamped" if self._clamped else ""
        a = float(self.amount.value)
        toward = f" · {a:.2f} toward {self.direction.value}" if a > 0 and self.direction.value else ""
        if self.condition is not None:
            toward = f" · condition {self.condition.value}" + toward
        first = ("<br><i>Move a control to explore. This needs a live kernel: in a saved copy of the "
                 "notebook the controls do nothing.</i>") if self.n_updates == 1 else ""
        self.status.value = (f"<small>render {self.n_updates} ({ms:.0f} ms){html.escape(toward + note)}<br>"
                             + html.escape("z = [" + ", ".join(f"{v:+.2f}" for v in z) + "]") + first
                             + "</small>")

    def update(self) -> None:
        """Render the current point now, in this thread (image, audio and status)."""
        with self._render_lock:
            self._render(self.current_latent())

    def request_render(self, sync: bool = False) -> None:
        """Ask for a render of the current state.

        Threaded (the default): wakes the worker, which renders the latest
        state once it is free; requests that arrive meanwhile are merged.
        ``sync=True`` or ``threaded=False`` render now, in this thread.
        """
        if sync or not self.threaded:
            self._safe(self.update)
            return
        with self._cv:
            self._requested += 1
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="emovae-explorer", daemon=True)
                self._worker.start()
            self._cv.notify_all()

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._done == self._requested and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                self._done = self._requested  # everything asked so far is covered by this render
                self._busy = True
            try:
                self._safe(self.update, reraise=False)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every requested render is done; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._busy or self._done != self._requested:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        """Stop the worker and close the widgets."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        _close_tree(self.widget)

    def _safe(self, fn, reraise: bool = True) -> None:
        try:
            fn()
        except Exception as exc:  # shown in the widget; a callback error is otherwise hidden
            self.status.value = (f"<span style='color:#b00'>update failed: "
                                 f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>")
            if reraise:
                raise

    # -------------------------------------------------------------- callbacks
    def _corner_labels(self) -> list[str]:
        return [self.start_labels.get(d.value, "") if d.value else "" for d in self.pad_corners]

    def _on_slider(self, change: dict) -> None:
        if self._silent:
            return
        self._clamped = False
        self.request_render()

    def _on_dropdown(self, change: dict) -> None:
        if change["new"] is None:
            return
        self.back_to_start()

    def _on_direction(self, change: dict) -> None:
        if self._silent:
            return
        self.request_render()

    def _on_pad(self, change: dict) -> None:
        if self._silent:
            return
        x, y = (list(change["new"]) + [0.5, 0.5])[:2]
        self.set_latent(self.pad_latent(x, y), update=False)
        self.request_render()

    def _on_corner(self, change: dict) -> None:
        self.pad.labels = self._corner_labels()

    def _on_condition(self, change: dict) -> None:
        if change["new"] is None:
            return
        self._inverter.reset()
        self.request_render()

    def _on_autoplay(self, change: dict) -> None:
        self.audio.autoplay = bool(change["new"])

    def _ipython_display_(self) -> None:  # pragma: no cover - notebook only
        from IPython.display import display

        display(self.widget)


def _close_tree(w: Any) -> None:
    for child in getattr(w, "children", ()):
        _close_tree(child)
    w.close()


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
    ipywidgets.VBox
        Display it (last expression of a cell). The :class:`LatentExplorer`
        behind it is ``widget.explorer``. Without a live kernel its view says
        so and shows the first rendering.
    """
    return LatentExplorer(model, X=X, index=index, mu=mu, **kwargs).widget


#: Conditions of a ``sequence_vae``: output lengths in frames (16 kHz, hop 256: 62.5 frames per second).
SEQUENCE_LENGTHS = {"1.0 s": 63, "2.05 s": 128, "3.0 s": 188}


def _registered_name(model: nn.Module) -> str | None:
    try:
        from .models import registered_name

        return registered_name(model)
    except Exception:  # not registered, or the models package lacks the variant
        return None


def _actor_label(actor: Any) -> str:
    try:
        return f"Actor {int(actor):02d}"
    except (TypeError, ValueError):
        return f"Actor {actor}"


def explorer_defaults(model: nn.Module, X: np.ndarray | None = None, index: Any = None) -> dict[str, Any]:
    """The conditioning keywords :func:`explorer_for` gives :class:`LatentExplorer` for ``model``.

    * a model with a ``cond_dim`` (``speaker_vae``): ``conditions`` = one
      speaker code per actor (``conditions.make_condition("speaker_code", X, index)``,
      the codes the trials train and are scored with), labelled ``"Actor 01"``..., and
      ``cond`` = each clip's speaker code (for encoding);
    * a ``sequence_vae``: ``conditions`` = output lengths (:data:`SEQUENCE_LENGTHS`),
      ``cond`` = each clip's length (``index["n_frames"]``, else the width of ``X``);
    * any other model: nothing (its ``emotion_dims``, if any, is read by the explorer itself).
    """
    out: dict[str, Any] = {}
    if getattr(model, "cond_dim", None) is not None:
        if X is None or index is None or "actor" not in getattr(index, "columns", []):
            raise ValueError(f"{type(model).__name__} is conditioned on the speaker: explorer_for needs X and an "
                             "index with an 'actor' column to form the speaker codes (or pass conditions=)")
        from .conditions import make_condition

        actors = np.asarray(index["actor"])
        codes = make_condition("speaker_code", np.asarray(X), index)
        conditions: dict[str, np.ndarray] = {}
        keys = list(dict.fromkeys(actors.tolist()))
        try:
            keys = sorted(keys)
        except TypeError:
            pass
        for a in keys:
            conditions[_actor_label(a)] = codes[int(np.flatnonzero(actors == a)[0])]
        out["conditions"] = conditions
        out["cond"] = codes
    elif _registered_name(model) == "sequence_vae":
        out["conditions"] = dict(SEQUENCE_LENGTHS)
        if X is not None:
            if index is not None and "n_frames" in getattr(index, "columns", []):
                from .conditions import make_condition

                out["cond"] = make_condition("lengths", np.asarray(X), index)  # n_frames, capped at X's width
            else:
                out["cond"] = np.full(len(X), np.shape(X)[-1], np.int64)
    return out


def explorer_for(model: nn.Module, X: np.ndarray | None = None, index: Any = None, **kwargs: Any):
    """:func:`latent_explorer` with the defaults that fit ``model``'s variant.

    Works for every registered variant: unconditional ones (``emotion_vae``,
    ``beta_vae``, ``sigma_vae``, ``tc_vae``) as :func:`latent_explorer`;
    ``supervised_vae`` with its emotion sub-latent first; ``speaker_vae``
    with a speaker picker (one code per actor of ``index``); ``sequence_vae``
    with a length picker. See :func:`explorer_defaults`; ``**kwargs``
    (any :class:`LatentExplorer` keyword, e.g. ``conditions=``, ``dims=``)
    override the defaults.

    Returns
    -------
    ipywidgets.VBox
        As :func:`latent_explorer` (the explorer is ``widget.explorer``).

    Examples
    --------
    >>> w = explorer_for(model, X, index)            # doctest: +SKIP
    >>> w.explorer.set_condition("Actor 02")         # doctest: +SKIP
    """
    options = {**explorer_defaults(model, X, index), **kwargs}
    return latent_explorer(model, X=X, index=index, **options)
