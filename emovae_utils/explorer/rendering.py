"""Drawing the explorer's outputs: spectrogram PNGs without pyplot, levelled WAV audio.

* :func:`encode_png`, :class:`SpectrogramRenderer` (the frame drawn once, the
  pixels per call) and :func:`spectrogram_png` (a cached renderer per shape);
* :func:`prepare_audio` (loudness to ``loudness_dbfs``, short fades) and
  :func:`wav_bytes` (16-bit PCM);
* :class:`PointRenderer`: one rendering of a decoded spectrogram, image and
  audio, with one :class:`SpectrogramRenderer` per width and the warm-started
  inversion (:class:`emovae_utils.inversion.FastInverter`) while the point moves.

No widgets here: the explorer's view (:mod:`emovae_utils.explorer.view`) puts
the bytes into its image and audio players.
"""
from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "encode_png",
    "SpectrogramRenderer",
    "spectrogram_png",
    "prepare_audio",
    "wav_bytes",
    "Rendering",
    "PointRenderer",
]


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

        from ..dsp import PreprocessConfig

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

    Like :func:`emovae_utils.inversion.save_wav`: scaled to peak 0.9 when
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


# ---------------------------------------------------------------- one point
@dataclass
class Rendering:
    """Image and audio of one decoded point (``audio``, ``wav`` None when audio is off)."""

    spectrogram: np.ndarray
    png: bytes
    renderer: SpectrogramRenderer
    audio: np.ndarray | None = None
    wav: bytes | None = None


class PointRenderer:
    """Renders decoded spectrograms to PNG and levelled WAV, in the explorer's fixed colours.

    Parameters
    ----------
    clim : (float, float)
        Colour range in dB, the same for every width.
    config : PreprocessConfig
        Sample rate and STFT settings of the axes and the inversion.
    sr : int
        Sample rate of the audio.
    method : {"fast", "reference"}
        Inversion (:func:`emovae_utils.inversion.log_mel_to_audio`); "fast" is
        warm-started from the previous rendering's phase (:meth:`reset_phase`
        after a jump).
    loudness_dbfs, fade_ms : float
        See :func:`prepare_audio`.
    audio : bool
        Invert each rendering (else images only).

    Examples
    --------
    >>> from emovae_utils.dsp import PreprocessConfig
    >>> r = PointRenderer((-80.0, 0.0), PreprocessConfig(), 16000, audio=False)
    >>> out = r.render(np.full((80, 128), -40.0, np.float32))
    >>> out.png[:4], out.wav is None
    (b'\\x89PNG', True)
    """

    def __init__(self, clim: tuple[float, float], config: Any, sr: int, method: str = "fast",
                 loudness_dbfs: float = -20.0, fade_ms: float = 10.0, audio: bool = True) -> None:
        from .. import inversion

        self.clim, self.config, self.sr, self.method = clim, config, int(sr), method
        self.loudness_dbfs, self.fade_ms, self.audio = float(loudness_dbfs), float(fade_ms), bool(audio)
        # one renderer per spectrogram shape (a condition may change the width), same colours
        self._renderers: dict[tuple[int, int], SpectrogramRenderer] = {}
        self._inverter = inversion.FastInverter(config)
        self._inverter_shape: tuple[int, int] | None = None

    def renderer_for(self, shape: tuple[int, ...]) -> SpectrogramRenderer:
        """The (cached) :class:`SpectrogramRenderer` of spectrograms of ``shape`` (n_mels, T)."""
        shape = (int(shape[0]), int(shape[1]))
        r = self._renderers.get(shape)
        if r is None:
            r = self._renderers[shape] = SpectrogramRenderer(shape[0], shape[1], self.clim, self.config,
                                                             title="decoded log-mel spectrogram")
        return r

    def reset_phase(self) -> None:
        """Start the next inversion afresh (after a jump: another start point, condition, ...)."""
        self._inverter.reset()

    def level(self, y: np.ndarray) -> np.ndarray:
        """:func:`prepare_audio` with the explorer's loudness and fades."""
        return prepare_audio(y, self.sr, self.loudness_dbfs, self.fade_ms)

    def audio_of(self, S_db: np.ndarray) -> np.ndarray:
        """Levelled audio of one spectrogram, inverted from scratch (no warm start)."""
        from ..inversion import log_mel_to_audio

        return self.level(log_mel_to_audio(S_db, self.config, method=self.method))

    def render(self, S_db: np.ndarray) -> Rendering:
        """Image (and audio) of one decoded spectrogram (n_mels, T)."""
        if S_db.ndim != 2:
            raise ValueError(f"decode gave shape {S_db.shape}, expected (n_mels, T)")
        renderer = self.renderer_for(S_db.shape)
        out = Rendering(S_db, renderer.png(S_db), renderer)
        if S_db.shape != self._inverter_shape:  # another width: the previous phase does not fit
            self._inverter.reset()
            self._inverter_shape = S_db.shape
        if self.audio:
            if self.method == "fast":
                y = self._inverter(S_db)
            else:
                from ..inversion import log_mel_to_audio

                y = log_mel_to_audio(S_db, self.config, method=self.method)
            out.audio = self.level(y)
            out.wav = wav_bytes(out.audio, self.sr, normalise=False)
        return out
