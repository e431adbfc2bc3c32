"""Signal processing: the study's preprocessing recipe and its inverse.

Each step of the recipe in ``docs/study-reference.md`` (report section 3) is
one function, so a notebook can show what every step does:

1. :func:`load_mono`       read the file at its native rate, downmix to mono
2. :func:`resample`        48 kHz -> 16 kHz
3. :func:`voiced_mask`     WebRTC VAD, dilated; :func:`remove_silence` keeps voiced samples
4. :func:`peak_normalise`  ``x / max(x)``
5. :func:`log_mel`         80-band mel power spectrogram in dB
6. :func:`fix_frames`      edge-pad or centre-crop to 128 frames

:func:`preprocess_signal` and :func:`preprocess_file` chain them with a
:class:`PreprocessConfig`. :func:`log_mel_to_audio` goes back from a dB mel
spectrogram to a waveform by Griffin-Lim, as the study did (no vocoder).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import librosa
import numpy as np
import scipy.ndimage
import soundfile as sf
import soxr
import webrtcvad
from threadpoolctl import ThreadpoolController

__all__ = [
    "AudioError",
    "PreprocessConfig",
    "ClipInfo",
    "load_mono",
    "resample",
    "voiced_mask",
    "remove_silence",
    "peak_normalise",
    "log_mel",
    "fix_frames",
    "preprocess_signal",
    "preprocess_file",
    "log_mel_to_audio",
    "save_wav",
]


class AudioError(ValueError):
    """An audio file that cannot be used: unreadable, empty or silent."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of the preprocessing recipe; defaults are the study's values.

    Attributes
    ----------
    sr : int
        Target sample rate (16 kHz).
    res_type : str
        Resampler passed to :func:`librosa.resample`. We use librosa's default
        ``"soxr_hq"``; the authors' code used resampy's ``"kaiser_best"``
        (not installed here; both are high-quality band-limited resamplers).
    vad_mode : int
        WebRTC VAD aggressiveness, 0 (least) to 3 (most aggressive).
    vad_frame_ms : int
        VAD frame length in ms (10, 20 or 30).
    vad_dilation : int
        Length of the structuring element dilating the voiced-frame mask
        (``scipy.ndimage.binary_dilation``; 6 covers 3 frames before, 2 after).
    peak : {"max", "absmax"}
        Peak normalisation divides by ``max(x)`` as the authors' code does;
        ``"absmax"`` divides by ``max(|x|)`` instead.
    n_mels, n_fft, win_length, hop_length, fmin, fmax
        Mel spectrogram settings (Hann window, centred frames, Slaney mel).
    top_db : float
        Dynamic range kept by :func:`librosa.power_to_db` (ref 1.0, amin 1e-10).
    n_frames : int
        Frames per example after :func:`fix_frames` (128, about 2.05 s).
    """

    sr: int = 16000
    res_type: str = "soxr_hq"
    vad_mode: int = 3
    vad_frame_ms: int = 30
    vad_dilation: int = 6
    peak: Literal["max", "absmax"] = "max"
    n_mels: int = 80
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    fmin: float = 0.0
    fmax: float = 8000.0
    top_db: float = 80.0
    n_frames: int = 128

    def to_json(self) -> str:
        """Canonical JSON of all fields (used as part of the feature-cache key)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass(frozen=True)
class ClipInfo:
    """What preprocessing measured on one clip.

    Attributes
    ----------
    n_samples : int
        Samples at the target rate before the VAD.
    n_voiced_samples : int
        Samples kept by the VAD.
    n_voiced_frames : int
        Mel frames of the voiced signal, before fixing to ``n_frames``.
    speech_found : bool
        False when the VAD marked no frame as speech and the clip was kept whole.
    """

    n_samples: int
    n_voiced_samples: int
    n_voiced_frames: int
    speech_found: bool


def load_mono(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file at its native sample rate and downmix it to mono.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.wav`` or ``.flac`` file (anything libsndfile reads).

    Returns
    -------
    y : np.ndarray, float32, shape (n,)
        Samples in [-1, 1); stereo files are averaged over channels.
    sr : int
        The file's sample rate.

    Raises
    ------
    AudioError
        If the file cannot be decoded or holds no samples.
    """
    try:
        data, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(f"Cannot read audio file {path}: {err}") from err
    if data.shape[0] == 0:
        raise AudioError(f"Audio file {path} is empty (0 samples).")
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(y), int(sr)


def resample(y: np.ndarray, orig_sr: int, sr: int = 16000, res_type: str = "soxr_hq") -> np.ndarray:
    """Resample ``y`` from ``orig_sr`` to ``sr`` (no-op when they are equal).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
    orig_sr, sr : int
        Source and target rates.
    res_type : str
        Resampler for :func:`librosa.resample` (the study's code: resampy
        ``"kaiser_best"``; default here: librosa's ``"soxr_hq"``).

    Returns
    -------
    np.ndarray, float32
    """
    if orig_sr == sr:
        return y.astype(np.float32, copy=False)
    if not res_type.startswith("soxr"):
        return librosa.resample(y, orig_sr=orig_sr, target_sr=sr, res_type=res_type).astype(np.float32, copy=False)
    # What librosa.resample does for soxr, without importing scipy.signal (~1 s per process).
    y_hat = soxr.resample(y, orig_sr, sr, quality=res_type)
    n = int(np.ceil(len(y) * float(sr) / orig_sr))
    return librosa.util.fix_length(y_hat, size=n).astype(np.float32, copy=False)


def voiced_mask(
    y: np.ndarray, sr: int = 16000, mode: int = 3, frame_ms: int = 30, dilation: int = 6
) -> np.ndarray:
    """Sample-level voice-activity mask from the WebRTC VAD.

    The clip is scaled to peak 1 (``max |y|``), zero-padded at the end to a
    whole number of frames, converted to int16 by ``round(32767 * x)`` and each
    frame is classified by a *fresh* ``webrtcvad.Vad(mode)``. The VAD is
    stateful: one reused across clips carries its noise estimate over, and a
    fresh one on unscaled audio finds no speech at all in some quiet clips.
    The voiced-frame mask is dilated with a length-``dilation`` structuring
    element and expanded to samples.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal at ``sr`` (8, 16, 32 or 48 kHz).
    sr : int
    mode : int
        Aggressiveness 0..3.
    frame_ms : int
        Frame length, 10, 20 or 30 ms.
    dilation : int
        Structuring-element length; 0 or 1 means no dilation.

    Returns
    -------
    np.ndarray, bool, shape (n,)
        True for samples in (dilated) voiced frames.
    """
    frame = sr * frame_ms // 1000
    n = len(y)
    n_frames = -(-n // frame)
    peak = float(np.max(np.abs(y))) if n else 0.0
    if peak == 0.0:
        return np.zeros(n, dtype=bool)
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[:n] = y / peak
    pcm = np.round(32767 * padded).astype(np.int16)
    vad = webrtcvad.Vad(mode)
    flags = np.fromiter(
        (vad.is_speech(pcm[i * frame : (i + 1) * frame].tobytes(), sr) for i in range(n_frames)),
        dtype=bool,
        count=n_frames,
    )
    if dilation > 1:
        flags = scipy.ndimage.binary_dilation(flags, structure=np.ones(dilation, dtype=bool))
    return np.repeat(flags, frame)[:n]


def remove_silence(y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, bool]:
    """Concatenate the voiced samples of ``y``, silence inside the utterance included.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
    mask : np.ndarray of bool, shape (n,)
        From :func:`voiced_mask`.

    Returns
    -------
    y_voiced : np.ndarray
        ``y[mask]``, or ``y`` unchanged when the mask is empty.
    speech_found : bool
        False when no sample was voiced (the clip is then kept whole).
    """
    if not mask.any():
        return y, False
    return y[mask], True


def peak_normalise(y: np.ndarray, peak: Literal["max", "absmax"] = "max") -> np.ndarray:
    """Scale ``y`` so that its peak is 1.

    Parameters
    ----------
    y : np.ndarray
    peak : {"max", "absmax"}
        ``"max"`` divides by ``max(y)`` as the authors' code does (a clip whose
        largest excursion is negative then peaks below -1); ``"absmax"`` by
        ``max(|y|)``.

    Returns
    -------
    np.ndarray, float32

    Raises
    ------
    AudioError
        If the peak is not positive (a silent signal).
    """
    p = float(np.max(y) if peak == "max" else np.max(np.abs(y))) if len(y) else 0.0
    if not p > 0.0:
        raise AudioError("Signal is silent (peak <= 0); cannot normalise.")
    return (y / p).astype(np.float32, copy=False)


_BLAS = ThreadpoolController()


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


def log_mel(y: np.ndarray, config: PreprocessConfig | None = None) -> np.ndarray:
    """Mel power spectrogram in dB, as ``librosa.feature.melspectrogram`` + ``power_to_db``.

    Hann window, centred frames (zero padding), Slaney mel filters,
    ``power_to_db(ref=1.0, amin=1e-10, top_db=config.top_db)``. No further
    scaling: the model sees raw dB values.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal at ``config.sr``.
    config : PreprocessConfig, optional

    Returns
    -------
    np.ndarray, float32, shape (n_mels, T)
    """
    c = config or PreprocessConfig()
    stft = librosa.stft(
        y, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window="hann", center=True
    )
    power = stft.real**2 + stft.imag**2
    # One BLAS thread: multi-threaded OpenBLAS sums in another order, and features
    # would then depend (in the last bit) on how many processes built them.
    with _BLAS.limit(limits=1, user_api="blas"):
        mel = _mel_basis(c.sr, c.n_fft, c.n_mels, c.fmin, c.fmax) @ power
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=c.top_db).astype(np.float32, copy=False)


def fix_frames(S: np.ndarray, n_frames: int = 128) -> np.ndarray:
    """Fix a spectrogram to ``n_frames`` frames.

    Shorter inputs are padded on the right by repeating the last frame
    (``librosa.util.fix_length(mode="edge")``); longer ones are centre-cropped
    starting at ``(T - n_frames) // 2``.

    Parameters
    ----------
    S : np.ndarray, shape (n_mels, T)
    n_frames : int

    Returns
    -------
    np.ndarray, shape (n_mels, n_frames)
    """
    T = S.shape[-1]
    if T < n_frames:
        return librosa.util.fix_length(S, size=n_frames, axis=-1, mode="edge")
    start = (T - n_frames) // 2
    return np.ascontiguousarray(S[..., start : start + n_frames])


def preprocess_signal(
    y: np.ndarray, sr: int, config: PreprocessConfig | None = None
) -> tuple[np.ndarray, ClipInfo]:
    """Run the whole recipe on a mono signal.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal at its native rate ``sr``.
    sr : int
    config : PreprocessConfig, optional
        Defaults to the study's values.

    Returns
    -------
    features : np.ndarray, float32, shape (n_mels, n_frames)
    info : ClipInfo
        Lengths before and after the VAD and whether speech was found. A clip
        with no voiced frame is kept whole; callers decide how to warn.

    Raises
    ------
    AudioError
        If the signal is empty or silent.
    """
    c = config or PreprocessConfig()
    if len(y) == 0:
        raise AudioError("Signal is empty (0 samples).")
    if not np.any(y):
        raise AudioError("Signal is silent (all samples are zero).")
    y = resample(y, sr, c.sr, c.res_type)
    mask = voiced_mask(y, c.sr, c.vad_mode, c.vad_frame_ms, c.vad_dilation)
    voiced, found = remove_silence(y, mask)
    S = log_mel(peak_normalise(voiced, c.peak), c)
    info = ClipInfo(len(y), len(voiced), S.shape[1], found)
    return fix_frames(S, c.n_frames).astype(np.float32, copy=False), info


def _preprocess_path(path: str | os.PathLike, config: PreprocessConfig) -> tuple[np.ndarray, ClipInfo]:
    y, sr = load_mono(path)
    try:
        return preprocess_signal(y, sr, config)
    except AudioError as err:
        raise AudioError(f"{path}: {err}") from err


def preprocess_file(path: str | os.PathLike, config: PreprocessConfig | None = None) -> np.ndarray:
    """Features of one audio file by the study's recipe.

    Parameters
    ----------
    path : str or os.PathLike
        ``.wav`` or ``.flac``.
    config : PreprocessConfig, optional
        Defaults to the study's values.

    Returns
    -------
    np.ndarray, float32, shape (80, 128)
        Log-mel in dB.

    Raises
    ------
    AudioError
        Naming the file, if it is unreadable, empty or silent.

    Warns
    -----
    UserWarning
        If the VAD finds no speech; the clip is then kept whole.
    """
    features, info = _preprocess_path(path, config or PreprocessConfig())
    if not info.speech_found:
        warnings.warn(f"VAD found no speech in {path}; the whole clip was kept.", stacklevel=2)
    return features


def log_mel_to_audio(
    S_db: np.ndarray, config: PreprocessConfig | None = None, n_iter: int = 32, seed: int = 0
) -> np.ndarray:
    """Invert a dB mel spectrogram to a waveform by Griffin-Lim, as the study did.

    ``db_to_power``, then :func:`librosa.feature.inverse.mel_to_stft` (NNLS)
    and :func:`librosa.griffinlim` with the STFT settings of ``config``. The
    random phase initialisation is seeded so the same input gives the same audio.

    Parameters
    ----------
    S_db : np.ndarray, shape (n_mels, T)
    config : PreprocessConfig, optional
    n_iter : int
        Griffin-Lim iterations (librosa's default 32, as in the study).
    seed : int
        Seed of the random initial phase.

    Returns
    -------
    np.ndarray, float32, shape (~T * hop_length,)
        Waveform at ``config.sr`` (16 kHz).
    """
    c = config or PreprocessConfig()
    power = librosa.db_to_power(np.asarray(S_db, dtype=np.float32))
    mag = librosa.feature.inverse.mel_to_stft(
        power, sr=c.sr, n_fft=c.n_fft, power=2.0, fmin=c.fmin, fmax=c.fmax
    )
    y = librosa.griffinlim(
        mag,
        n_iter=n_iter,
        hop_length=c.hop_length,
        win_length=c.win_length,
        n_fft=c.n_fft,
        window="hann",
        center=True,
        random_state=seed,
    )
    return y.astype(np.float32, copy=False)


def save_wav(path: str | os.PathLike, y: np.ndarray, sr: int = 16000, normalise: bool = True) -> Path:
    """Write a mono 16-bit WAV file, creating parent folders.

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y, dtype=np.float32)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if normalise and peak > 0:
        y = y * (0.9 / peak)
    sf.write(path, np.clip(y, -1.0, 1.0), sr, subtype="PCM_16")
    return path


def render_wav(S_db: np.ndarray, path: str | os.PathLike, config: PreprocessConfig | None = None) -> Path:
    """Griffin-Lim a dB mel spectrogram and write it to ``path``, atomically.

    :func:`log_mel_to_audio` then :func:`save_wav` (peak-normalised) through a
    temporary file in the same folder, so ``path`` is either absent or complete.
    Used for the training samples, in worker processes (this module does not
    import torch).

    Parameters
    ----------
    S_db : np.ndarray, shape (n_mels, T)
    path : str or os.PathLike
    config : PreprocessConfig, optional

    Returns
    -------
    pathlib.Path
    """
    c = config or PreprocessConfig()
    path = Path(path)
    y = log_mel_to_audio(S_db, c)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    save_wav(tmp, y, sr=c.sr)
    os.replace(tmp, path)
    return path


def _one_thread_worker() -> None:  # pragma: no cover - runs in worker processes
    """Process-pool initializer: keep numpy/scipy's BLAS on one thread."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
