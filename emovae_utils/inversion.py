"""Mel-spectrogram inversion: from a dB mel spectrogram back to a waveform, and to a WAV file.

:func:`log_mel_to_audio` goes back by Griffin-Lim, as the study did (no
vocoder), :func:`save_wav` writes a waveform atomically and :func:`render_wav`
does both (what the training-sample workers and
:func:`emovae_utils.generate.render_audio` run). :func:`log_mel_to_audio`
chooses between two inversions with ``method``:

``"reference"``
    The study's inversion, unchanged: :func:`librosa.feature.inverse.mel_to_stft`
    (non-negative least squares by L-BFGS-B) and 32 iterations of
    :func:`librosa.griffinlim` (its default momentum 0.99, seeded random phase).
``"fast"``
    The same two steps, computed faster (:func:`mel_to_audio_fast`):

    * NNLS by accelerated projected gradient (FISTA, step ``1/||B||²``),
      warm-started from the clipped pseudo-inverse ``max(B⁺ P, 0)`` and with
      the gradient computed as ``Bᵀ(B X − P)`` (80 × 513 products, not 513 × 513);
    * Griffin-Lim with the same momentum (the "fast Griffin-Lim" of Perraudin
      et al. 2013), on a precomputed STFT plan in float32 (one real FFT over
      all frames, overlap-add by reshaping), and optionally started from a
      given phase: while a slider is dragged, the previous rendering's phase
      (:class:`FastInverter`) gives a better start than random phase.

    The pseudo-inverse alone (without NNLS iterations) is 4x faster still but
    loses about one PESQ point; ``benchmarks/inversion.py`` measures both
    methods on real clips (milliseconds, PESQ-wb, STOI).

The mel filter bank is :func:`emovae_utils.dsp.mel_basis`, the one the
features are made with. Both methods run under :func:`emovae_utils.resources.one_blas_thread`
(one BLAS thread; the FFTs use one worker): BLAS's default, a thread per core,
made the fast method six times slower on a busy machine (597 ms instead of 93
ms per clip) and its result depend in the last bits on the core count. This
module imports :mod:`emovae_utils.dsp` (numpy, librosa, no torch, no
scipy.signal), so worker processes stay light.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import librosa
import numpy as np
import scipy.fft
import soundfile as sf

from . import dsp
from .dsp import PreprocessConfig
from .io import atomic_write
from .resources import one_blas_thread

__all__ = [
    "METHODS",
    "FAST_NNLS_ITER",
    "FAST_GL_ITER",
    "log_mel_to_audio",
    "save_wav",
    "render_wav",
    "nnls_operators",
    "nnls_fista",
    "StftPlan",
    "griffin_lim",
    "mel_to_audio_fast",
    "mel_to_audio_reference",
    "FastInverter",
    "clean_pair",
]

#: Names accepted by :func:`log_mel_to_audio`.
METHODS = ("reference", "fast")
#: FISTA iterations of the fast NNLS (its quality saturates at about 30-50).
FAST_NNLS_ITER = 40
#: Griffin-Lim iterations of the fast method from random phase (as the reference).
FAST_GL_ITER = 32
#: Griffin-Lim iterations when started from a previous rendering's phase.
FAST_GL_ITER_WARM = 16
#: Momentum of Griffin-Lim (librosa's default, used by the reference too).
MOMENTUM = 0.99


def _config(config: PreprocessConfig | None) -> PreprocessConfig:
    return config or PreprocessConfig()


def log_mel_to_audio(
    S_db: np.ndarray,
    config: PreprocessConfig | None = None,
    method: Literal["reference", "fast"] = "reference",
    n_iter: int | None = None,
    seed: int = 0,
    *,
    init: np.ndarray | None = None,
) -> np.ndarray:
    """Invert a dB mel spectrogram to a waveform by Griffin-Lim.

    ``method="reference"`` (the default) is the study's inversion:
    ``db_to_power``, :func:`librosa.feature.inverse.mel_to_stft` (NNLS by
    L-BFGS-B) and :func:`librosa.griffinlim` (32 iterations, momentum 0.99),
    with the STFT settings of ``config``; the report's audio files use it.
    ``method="fast"`` (for interaction) computes the same two steps faster:
    NNLS by FISTA from the clipped pseudo-inverse and a fast Griffin-Lim,
    optionally started from a previous phase (``init``); see the module's
    description and ``benchmarks/inversion.py`` for its speed
    and quality (PESQ, STOI) against the reference. The random phase is
    seeded, so the same input gives the same audio.

    Parameters
    ----------
    S_db : np.ndarray, shape (n_mels, T)
    config : PreprocessConfig, optional
    method : {"reference", "fast"}
    n_iter : int, optional
        Griffin-Lim iterations; default 32 (librosa's default, as in the
        study), or 16 for ``"fast"`` started from ``init``.
    seed : int
        Seed of the random initial phase.
    init : complex np.ndarray, shape (1 + n_fft/2, T), optional
        ``"fast"`` only: starting phase, e.g. of the previous rendering
        (:class:`FastInverter` keeps it).

    Returns
    -------
    np.ndarray, float32, shape (hop_length * (T - 1),)
        Waveform at ``config.sr`` (16 kHz).

    Examples
    --------
    >>> S_db = np.full((80, 16), -40.0, dtype=np.float32)
    >>> y = log_mel_to_audio(S_db, method="fast")
    >>> y.shape, y.dtype, bool(np.array_equal(y, log_mel_to_audio(S_db, method="fast")))
    ((3840,), dtype('float32'), True)
    """
    if method == "reference":
        if init is not None:
            raise ValueError("init (a starting phase) is only used by method='fast'")
        return mel_to_audio_reference(S_db, config, 32 if n_iter is None else n_iter, seed)
    if method == "fast":
        return mel_to_audio_fast(S_db, config, n_iter=n_iter, init=init, seed=seed)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def save_wav(path: str | os.PathLike, y: np.ndarray, sr: int = 16000, normalise: bool = True) -> Path:
    """Write a mono 16-bit WAV file atomically (:func:`emovae_utils.io.atomic_write`), creating parent folders.

    Parameters
    ----------
    path : str or os.PathLike
    y : np.ndarray, shape (n,)
    sr : int
    normalise : bool
        Scale to peak 0.9 first (Griffin-Lim output from raw dB has no fixed
        level); otherwise samples are clipped to [-1, 1].

    Returns
    -------
    pathlib.Path
    """
    y = np.asarray(y, dtype=np.float32)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if normalise and peak > 0:
        y = y * (0.9 / peak)
    return atomic_write(path, lambda tmp: sf.write(tmp, np.clip(y, -1.0, 1.0), sr, subtype="PCM_16"))


def render_wav(S_db: np.ndarray, path: str | os.PathLike, config: PreprocessConfig | None = None) -> Path:
    """Griffin-Lim a dB mel spectrogram and write it to ``path``, atomically.

    :func:`log_mel_to_audio` then :func:`save_wav` (peak-normalised, through a
    temporary file in the same folder, so ``path`` is either absent or complete).
    The one render-and-write path: the training samples (in worker processes;
    this module does not import torch) and :func:`emovae_utils.generate.render_audio`.

    Parameters
    ----------
    S_db : np.ndarray, shape (n_mels, T)
    path : str or os.PathLike
    config : PreprocessConfig, optional

    Returns
    -------
    pathlib.Path
    """
    c = _config(config)
    save_wav(path, log_mel_to_audio(S_db, c), sr=c.sr)
    return Path(path)


@functools.lru_cache(maxsize=8)
def _operators(config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray, float]:
    B = dsp.mel_basis(config).astype(np.float64)
    pinv = np.linalg.pinv(B)
    lipschitz = float(np.linalg.norm(B, 2) ** 2)
    out = (B.astype(np.float32), pinv.astype(np.float32), lipschitz)
    for a in out[:2]:
        a.setflags(write=False)
    return out


def nnls_operators(config: PreprocessConfig | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """What the fast NNLS needs: the mel filter bank ``B``, its pseudo-inverse and ``||B||₂²``.

    ``B`` is :func:`emovae_utils.dsp.mel_basis` (n_mels, 1 + n_fft/2), the
    pseudo-inverse (1 + n_fft/2, n_mels) is computed in float64; both float32,
    read-only, cached per configuration.

    Examples
    --------
    >>> B, pinv, L = nnls_operators()
    >>> B.shape, pinv.shape, bool(np.array_equal(B, dsp.mel_basis()))
    ((80, 513), (513, 80), True)
    """
    return _operators(_config(config))


def nnls_fista(
    P: np.ndarray, config: PreprocessConfig | None = None, n_iter: int = FAST_NNLS_ITER,
    x0: np.ndarray | None = None,
) -> np.ndarray:
    """Non-negative power spectrogram ``X`` with ``B X ≈ P``, by FISTA.

    Minimises ``½‖B X − P‖²`` over ``X ≥ 0`` (the problem
    :func:`librosa.util.nnls` solves with L-BFGS-B) by projected gradient
    steps of size ``1/‖B‖₂²`` with Nesterov momentum and an adaptive restart
    (momentum is reset when the objective's gradient points against the step).

    Parameters
    ----------
    P : np.ndarray, shape (n_mels, T)
        Mel power spectrogram.
    config : PreprocessConfig, optional
    n_iter : int
        Gradient steps; 0 returns the start point.
    x0 : np.ndarray, shape (1 + n_fft/2, T), optional
        Start point; default the clipped pseudo-inverse ``max(B⁺ P, 0)``.

    Returns
    -------
    np.ndarray, float32, shape (1 + n_fft/2, T)
    """
    B, pinv, L = nnls_operators(config)
    P = np.asarray(P, dtype=np.float32)
    X = np.maximum(pinv @ P, 0.0) if x0 is None else np.maximum(np.asarray(x0, np.float32), 0.0)
    Y = X.copy()
    t = 1.0
    step = np.float32(1.0 / L)
    for _ in range(int(n_iter)):
        G = B.T @ (B @ Y - P)
        Xn = np.maximum(Y - step * G, 0.0)
        # adaptive restart (O'Donoghue & Candes): drop momentum when it overshoots
        if float(np.vdot(G, Xn - X)) > 0:
            t = 1.0
        tn = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        Y = Xn + np.float32((t - 1.0) / tn) * (Xn - X)
        X, t = Xn, tn
    return X


@dataclass
class StftPlan:
    """Centred STFT and its inverse for a fixed frame count, as librosa computes them.

    ``stft`` equals :func:`librosa.stft` with a periodic Hann window,
    ``center=True`` and zero padding; ``istft`` equals :func:`librosa.istft`
    (window-sum-square normalisation, output length ``hop * (T - 1)``).
    Arrays are time-major, (T, 1 + n_fft/2), float32/complex64.
    """

    n_fft: int
    hop: int
    n_frames: int

    def __post_init__(self) -> None:
        if self.n_fft % self.hop:
            raise ValueError(f"n_fft ({self.n_fft}) must be a multiple of hop ({self.hop})")
        n = np.arange(self.n_fft)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * n / self.n_fft)).astype(np.float32)
        self.k = self.n_fft // self.hop
        self.padded = self.n_fft + self.hop * (self.n_frames - 1)
        wss = np.zeros((self.n_frames + self.k - 1, self.hop), np.float64)
        w2 = (self.window.astype(np.float64) ** 2).reshape(self.k, self.hop)
        for j in range(self.k):
            wss[j:j + self.n_frames] += w2[j]
        wss = wss.reshape(-1)
        tiny = np.finfo(np.float32).tiny
        self._inv_wss = np.where(wss > tiny, 1.0 / np.maximum(wss, tiny), 1.0).astype(np.float32)
        self.length = self.hop * (self.n_frames - 1)

    def stft(self, y: np.ndarray) -> np.ndarray:
        """(T, F) complex64 STFT of a signal of ``self.length`` samples (shorter: zero-padded)."""
        pad = self.n_fft // 2
        buf = np.zeros(self.padded, np.float32)
        n = min(len(y), self.padded - 2 * pad)
        buf[pad:pad + n] = y[:n]
        frames = np.lib.stride_tricks.as_strided(
            buf, shape=(self.n_frames, self.n_fft), strides=(buf.strides[0] * self.hop, buf.strides[0]),
            writeable=False)
        return scipy.fft.rfft(frames * self.window, axis=-1, workers=1).astype(np.complex64, copy=False)

    def istft(self, X: np.ndarray) -> np.ndarray:
        """Signal (``self.length`` samples, float32) of a (T, F) complex STFT."""
        frames = scipy.fft.irfft(X, n=self.n_fft, axis=-1, workers=1).astype(np.float32, copy=False)
        frames *= self.window
        fr = frames.reshape(self.n_frames, self.k, self.hop)
        out = np.zeros((self.n_frames + self.k - 1, self.hop), np.float32)
        for j in range(self.k):
            out[j:j + self.n_frames] += fr[:, j]
        out = out.reshape(-1) * self._inv_wss
        pad = self.n_fft // 2
        return out[pad:pad + self.length]


@functools.lru_cache(maxsize=8)
def _plan(n_fft: int, hop: int, n_frames: int) -> StftPlan:
    return StftPlan(n_fft, hop, n_frames)


def griffin_lim(
    mag: np.ndarray, config: PreprocessConfig | None = None, n_iter: int = FAST_GL_ITER,
    momentum: float = MOMENTUM, init: np.ndarray | None = None, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fast Griffin-Lim (with momentum), the loop of :func:`librosa.griffinlim`.

    Parameters
    ----------
    mag : np.ndarray, shape (1 + n_fft/2, T)
        STFT magnitude.
    config : PreprocessConfig, optional
        n_fft and hop (``win_length`` must equal ``n_fft``, as in the study).
    n_iter : int
    momentum : float
        0 gives the classic Griffin-Lim; 0.99 is librosa's default.
    init : np.ndarray, shape (1 + n_fft/2, T), complex, optional
        Starting phase (unit-modulus complex numbers, e.g. the second return
        value of a previous call); default random phase from ``seed``
        (librosa's draw: ``exp(2πi · RandomState(seed).random_sample(shape))``).
    seed : int

    Returns
    -------
    y : np.ndarray, float32, shape (hop * (T - 1),)
    angles : np.ndarray, complex64, shape (1 + n_fft/2, T)
        The final phase, to start the next call from.
    """
    c = _config(config)
    if c.win_length != c.n_fft:
        raise ValueError("the fast Griffin-Lim needs win_length == n_fft")
    mag = np.asarray(mag, dtype=np.float32)
    F, T = mag.shape
    if F != 1 + c.n_fft // 2:
        raise ValueError(f"mag must have {1 + c.n_fft // 2} rows, got {F}")
    plan = _plan(c.n_fft, c.hop_length, T)
    S = np.ascontiguousarray(mag.T)
    if init is None or np.shape(init) != mag.shape:
        phase = np.random.RandomState(seed).random_sample(size=mag.shape)  # librosa's draw
        angles = np.exp(2j * np.pi * phase).astype(np.complex64).T.copy()
    else:
        a = np.asarray(init, dtype=np.complex64).T
        angles = a / (np.abs(a) + np.finfo(np.float32).tiny)
    eps = np.finfo(np.float32).tiny
    beta = np.float32(momentum / (1.0 + momentum))
    tprev = None
    for _ in range(int(n_iter)):
        rebuilt = plan.stft(plan.istft(S * angles))
        angles = rebuilt - beta * tprev if tprev is not None else rebuilt.copy()
        angles /= np.abs(angles) + eps
        tprev = rebuilt
    y = plan.istft(S * angles)
    return y, np.ascontiguousarray(angles.T)


def _power(S_db: np.ndarray) -> np.ndarray:
    S_db = np.asarray(S_db, dtype=np.float32)
    if S_db.ndim != 2:
        raise ValueError(f"S_db must be (n_mels, T), got shape {S_db.shape}")
    return np.power(np.float32(10.0), np.float32(0.1) * S_db)  # librosa.db_to_power, ref 1


def mel_to_audio_fast(
    S_db: np.ndarray, config: PreprocessConfig | None = None, *, n_iter: int | None = None,
    nnls_iter: int = FAST_NNLS_ITER, momentum: float = MOMENTUM, init: np.ndarray | None = None,
    seed: int = 0, return_phase: bool = False,
):
    """dB mel spectrogram -> waveform by FISTA-NNLS and fast Griffin-Lim.

    Parameters
    ----------
    S_db : np.ndarray, shape (n_mels, T)
    config : PreprocessConfig, optional
    n_iter : int, optional
        Griffin-Lim iterations; default 32 from random phase, 16 from ``init``.
    nnls_iter : int
        FISTA steps (0: the clipped pseudo-inverse alone).
    momentum : float
    init : complex np.ndarray, shape (1 + n_fft/2, T), optional
        Starting phase, e.g. from the previous call with ``return_phase=True``.
    seed : int
        Seed of the random phase when ``init`` is None.
    return_phase : bool
        Also return the final phase.

    Returns
    -------
    y : np.ndarray, float32, shape (hop * (T - 1),)
    angles : np.ndarray, complex64 (only with ``return_phase``)
    """
    c = _config(config)
    with one_blas_thread():  # the thread policy of rendering; see the module's description
        X = nnls_fista(_power(S_db), c, n_iter=nnls_iter)
        if n_iter is None:
            n_iter = FAST_GL_ITER if init is None else FAST_GL_ITER_WARM
        y, angles = griffin_lim(np.sqrt(X), c, n_iter=n_iter, momentum=momentum, init=init, seed=seed)
    return (y, angles) if return_phase else y


def mel_to_audio_reference(
    S_db: np.ndarray, config: PreprocessConfig | None = None, n_iter: int = 32, seed: int = 0,
) -> np.ndarray:
    """The study's inversion: librosa's NNLS (``mel_to_stft``) and ``griffinlim`` (32 iterations)."""
    c = _config(config)
    power = librosa.db_to_power(np.asarray(S_db, dtype=np.float32))
    with one_blas_thread():  # the thread policy of rendering; see the module's description
        mag = librosa.feature.inverse.mel_to_stft(
            power, sr=c.sr, n_fft=c.n_fft, power=2.0, fmin=c.fmin, fmax=c.fmax
        )
        y = librosa.griffinlim(
            mag, n_iter=n_iter, hop_length=c.hop_length, win_length=c.win_length, n_fft=c.n_fft,
            window="hann", center=True, random_state=seed,
        )
    return y.astype(np.float32, copy=False)


class FastInverter:
    """Fast inversion that starts each call from the previous call's phase.

    For interaction: consecutive spectrograms along a slider drag are close,
    and the previous phase is a better start than random phase, so fewer
    Griffin-Lim iterations (``warm_iter``) are needed. The first call, and
    any call after :meth:`reset`, starts from the seeded random phase with
    ``cold_iter`` iterations.

    Parameters
    ----------
    config : PreprocessConfig, optional
    cold_iter, warm_iter : int
        Griffin-Lim iterations from random phase and from the previous phase.
    nnls_iter : int
    seed : int
    """

    def __init__(self, config: PreprocessConfig | None = None, cold_iter: int = FAST_GL_ITER,
                 warm_iter: int = FAST_GL_ITER_WARM, nnls_iter: int = FAST_NNLS_ITER, seed: int = 0) -> None:
        self.config = _config(config)
        self.cold_iter, self.warm_iter, self.nnls_iter, self.seed = cold_iter, warm_iter, nnls_iter, seed
        self.angles: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous phase."""
        self.angles = None

    def __call__(self, S_db: np.ndarray, warm: bool = True) -> np.ndarray:
        init = self.angles if warm else None
        y, self.angles = mel_to_audio_fast(
            S_db, self.config, n_iter=self.warm_iter if init is not None else self.cold_iter,
            nnls_iter=self.nnls_iter, init=init, seed=self.seed, return_phase=True)
        return y


def clean_pair(path, config: PreprocessConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A clip's features and the clean signal they describe, sample for sample.

    Runs the preprocessing recipe (:func:`emovae_utils.dsp.preprocess_signal`:
    resample, VAD, peak normalisation, log-mel, 128 frames) and also returns
    the voiced, normalised signal cut to the frames kept
    (:func:`emovae_utils.dsp.preprocess_audio` with ``window=True``): the
    centre crop's ``hop * (n_frames - 1)`` samples, or the whole voiced signal
    (``hop * (T - 1)`` samples) when the clip was padded.
    An inversion of the features, trimmed to that length, is aligned with it,
    so PESQ and STOI can score the inversion alone.

    Parameters
    ----------
    path : path-like
        An audio file.
    config : PreprocessConfig, optional

    Returns
    -------
    S_db : np.ndarray, float32, shape (n_mels, n_frames)
    y_clean : np.ndarray, float32, shape (hop * (min(T, n_frames) - 1),)
        ``T``: the voiced signal's frame count.

    Examples
    --------
    >>> import tempfile
    >>> t = np.arange(48000) / 48000
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> sf.write(path, (0.3 * np.sign(np.sin(2 * np.pi * 150 * t)) * (t > 0.3)).astype(np.float32), 48000)
    >>> S_db, y_clean = clean_pair(path)
    >>> S_db.shape, len(y_clean) % 256, len(y_clean) < 16000
    ((80, 128), 0, True)
    """
    c = _config(config)
    y, sr = dsp.load_mono(path)
    S, info = dsp.preprocess_signal(y, sr, c)
    window, _ = dsp.preprocess_audio(y, sr, c, window=True)  # the samples fix_frames' frames cover
    kept = min(info.n_voiced_frames, c.n_frames)
    return S, window[:(kept - 1) * c.hop_length]
