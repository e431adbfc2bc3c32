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
:class:`PreprocessConfig`; :func:`preprocess_audio` stops before step 5 and
returns the waveform the log-mel is computed from (whole, or the stretch of it
that the 128 frames cover), for features measured on the audio the VAE sees.
:func:`mel_basis` is the one mel filter bank and :func:`~emovae_utils.resources.one_blas_thread` the one
thread policy (the inversions of :mod:`emovae_utils.inversion` use both);
:func:`why_undecodable` says in words why a file is not audio.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import struct
import warnings
from dataclasses import dataclass
from typing import Literal

import librosa
import numpy as np
import scipy.ndimage
import soundfile as sf
import soxr
import webrtcvad

from .resources import one_blas_thread

__all__ = [
    "AudioError",
    "AudioWarning",
    "ConfigError",
    "PreprocessConfig",
    "ClipInfo",
    "load_mono",
    "resample",
    "voiced_mask",
    "remove_silence",
    "peak_normalise",
    "mel_basis",
    "log_mel",
    "fix_frames",
    "preprocess_audio",
    "preprocess_signal",
    "preprocess_file",
    "why_undecodable",
]


class AudioError(ValueError):
    """An audio file or signal that cannot be used.

    Raised for files that cannot be decoded, are truncated or empty, and for
    signals that are silent, hold NaN or inf, or have no positive sample to
    normalise by. The message names the file (where there is one), says what
    is wrong and what to do.
    """


class AudioWarning(UserWarning):
    """Audio whose features are usable but degraded (e.g. recorded at too low a rate for the mel range)."""


class ConfigError(ValueError):
    """A :class:`PreprocessConfig` value the recipe cannot run; names the field, the value and what is allowed."""


VAD_RATES: tuple[int, ...] = (8000, 16000, 32000, 48000)
"""Sample rates (Hz) the WebRTC VAD accepts; :attr:`PreprocessConfig.sr` must be one of them."""
VAD_FRAME_MS: tuple[int, ...] = (10, 20, 30)
"""VAD frame lengths (ms) the WebRTC VAD accepts."""
PEAKS: tuple[str, ...] = ("max", "absmax")
RES_TYPES: tuple[str, ...] = (
    "soxr_vhq", "soxr_hq", "soxr_mq", "soxr_lq", "soxr_qq", "kaiser_best", "kaiser_fast", "fft", "scipy",
    "polyphase", "linear", "zero_order_hold", "sinc_best", "sinc_medium", "sinc_fastest",
)
"""Resamplers :func:`librosa.resample` knows (``kaiser_*`` need resampy, ``sinc_*`` etc. samplerate)."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of the preprocessing recipe; defaults are the study's values.

    Attributes
    ----------
    sr : int
        Target sample rate (16 kHz); one of 8000, 16000, 32000, 48000, the
        rates the WebRTC VAD runs at (files at any rate are resampled to it).
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
    top_db : float or None
        Dynamic range kept by :func:`librosa.power_to_db` (ref 1.0, amin 1e-10).
    n_frames : int
        Frames per example after :func:`fix_frames` (128, about 2.05 s).

    Raises
    ------
    ConfigError
        On construction, for a value the recipe cannot run (see ``__post_init__``).

    Examples
    --------
    >>> PreprocessConfig().n_frames
    128
    >>> PreprocessConfig(sr=22050)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ConfigError: PreprocessConfig(sr=22050) is not allowed: sr must be one of 8000, 16000, 32000, 48000 (...).
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

    def __post_init__(self) -> None:
        """Raise ConfigError for a value the recipe cannot run (``sr=22050``), naming field, value, what is allowed."""

        def bad(field: str, allowed: str, why: str = "") -> ConfigError:
            value = getattr(self, field)
            return ConfigError(
                f"PreprocessConfig({field}={value!r}) is not allowed: {field} must be {allowed}"
                + (f" ({why})" if why else "") + "."
            )

        def whole(field: str, low: int) -> None:
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise bad(field, f"an integer >= {low}")

        def number(field: str) -> float:
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                raise bad(field, "a finite number")
            return float(v)

        if self.sr not in VAD_RATES or isinstance(self.sr, bool):
            raise bad("sr", "one of " + ", ".join(map(str, VAD_RATES)),
                      "the rates the WebRTC VAD runs at; recordings at any rate are resampled to it")
        if self.vad_frame_ms not in VAD_FRAME_MS or isinstance(self.vad_frame_ms, bool):
            raise bad("vad_frame_ms", "one of 10, 20, 30", "the frame lengths the WebRTC VAD accepts")
        if self.vad_mode not in (0, 1, 2, 3) or isinstance(self.vad_mode, bool):
            raise bad("vad_mode", "one of 0, 1, 2, 3", "WebRTC VAD aggressiveness; the study used 3")
        whole("vad_dilation", 0)
        if self.peak not in PEAKS:
            raise bad("peak", "'max' (the study's x / max(x)) or 'absmax' (x / max|x|)")
        if self.res_type not in RES_TYPES:
            raise bad("res_type", "one of " + ", ".join(RES_TYPES), "see librosa.resample")
        for field in ("n_mels", "n_fft", "hop_length", "n_frames"):
            whole(field, 1)
        whole("win_length", 1)
        if self.win_length > self.n_fft:
            raise bad("win_length", f"at most n_fft={self.n_fft}")
        fmin, fmax = number("fmin"), number("fmax")
        if fmin < 0:
            raise bad("fmin", ">= 0 Hz")
        if not fmin < fmax <= self.sr / 2:
            raise bad("fmax", f"above fmin={self.fmin} and at most sr / 2 = {self.sr / 2:g} Hz")
        if self.top_db is not None and not number("top_db") > 0:
            raise bad("top_db", "a positive number of dB, or None for no clipping")

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
    notes : tuple of str
        What degrades the features but leaves them usable (a rate too low for the mel range); callers warn.
    """

    n_samples: int
    n_voiced_samples: int
    n_voiced_frames: int
    speech_found: bool
    notes: tuple[str, ...] = ()


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
        Naming the file and the cause, if it cannot be decoded (empty, a text
        file, another format), is truncated (fewer samples than its header
        declares), holds no samples, holds NaN or inf, or its channels cancel
        in the downmix (one the negative of the other).

    Examples
    --------
    A RAVDESS clip (``ravdess_dir``: the folder of ``Actor_01`` ... ``Actor_24``, WAV or FLAC):

    >>> path = next((ravdess_dir / "Actor_01").glob("03-01-01-01-01-01-01.*"))
    >>> y, sr = load_mono(path)
    >>> y.shape, sr
    ((158558,), 48000)
    """
    if not os.path.isfile(path):
        raise AudioError(f"{path} does not exist or is not a file: check the path (moved or deleted?).")
    try:
        with sf.SoundFile(os.fspath(path)) as f:
            sr, declared, fmt = f.samplerate, f.frames, f.format
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, MemoryError) as err:
        raise AudioError(
            f"{path} cannot be decoded as audio: {why_undecodable(path, err)}. Copy or export it again, or remove it."
        ) from err
    wav = _wav_data_bytes(path)
    if wav is not None and wav[1] < wav[0]:
        declared_bytes, present_bytes = wav
        raise AudioError(
            f"{path} is truncated: it holds {present_bytes} of the {declared_bytes} data bytes its header "
            f"declares ({100 * present_bytes / declared_bytes:.0f} %, {data.shape[0] / sr:.2f} s). "
            "An interrupted copy or download usually does this: copy or export the file again."
        )
    if fmt != "MP3" and data.shape[0] < declared:  # MP3 frame counts are estimates
        raise AudioError(
            f"{path} is truncated: decoding stopped after {data.shape[0]} of the {declared} frames its header "
            "declares. An interrupted copy or download usually does this: copy or export the file again."
        )
    if data.shape[0] == 0:
        raise AudioError(f"{path} is empty (0 samples): record or export it again, or remove it.")
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise AudioError(
            f"{path} has {bad} non-finite samples (NaN or inf) of {data.size}: the file was written from a "
            "failed computation or is damaged. Export it again, or remove it."
        )
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if data.shape[1] > 1 and np.any(data):
        kept = float(np.dot(y, y)) / float(np.mean(np.einsum("ij,ij->j", data, data)))  # mono vs channel energy
        if kept < 1e-4:
            raise AudioError(
                f"{path}: its {data.shape[1]} channels cancel in the mono downmix (one is the negative of the "
                f"other: opposite polarity), leaving {10 * np.log10(max(kept, 1e-30)):.0f} dB of their energy. "
                "Keep one channel, e.g. ffmpeg -i in.wav -af 'pan=mono|c0=c0' out.wav."
            )
    return np.ascontiguousarray(y), int(sr)


def why_undecodable(path: str | os.PathLike, err: BaseException) -> str:
    """Why soundfile cannot open ``path`` (its error ``err``), in words, from the file's size and first bytes.

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.wav")
    >>> _ = open(path, "w").write("hello")
    >>> why_undecodable(path, RuntimeError("Format not recognised."))
    "not audio: a text file (it begins 'hello')"
    """
    try:
        with open(path, "rb") as f:
            size, head = os.fstat(f.fileno()).st_size, f.read(512)
    except OSError as e:
        return f"it cannot be read ({e.strerror or e})"
    if size == 0:
        return "0 bytes, the file is empty (an interrupted copy or a recording that was never written)"
    text = head.decode("utf-8", "replace").replace("\ufffd", "", 1)  # a character cut at byte 512
    if b"\0" not in head and all(ch.isprintable() or ch in "\t\n\r\f" for ch in text):
        first = (text.strip().splitlines() or [""])[0][:40]
        return f"not audio: a text file (it begins {first!r})"
    if head[4:8] == b"ftyp":
        return "an MP4/M4A container, which soundfile cannot read: convert it (ffmpeg -i in.m4a out.wav)"
    reason = (getattr(err, "error_string", None) or str(err)).strip() or type(err).__name__
    return f"the file is damaged, truncated or not audio (libsndfile: {reason})"


def _wav_data_bytes(path: str | os.PathLike) -> tuple[int, int] | None:
    """(declared, present) byte counts of a RIFF/WAVE file's ``data`` chunk.

    ``None`` when the file is not RIFF/WAVE, has no ``data`` chunk, or declares
    the 0 or 0xFFFFFFFF placeholder size of an unfinished stream (libsndfile
    then reads what is there, which is all there is). libsndfile silently
    shortens a ``data`` chunk that runs past the end of the file, so this is
    the only place a truncated WAV shows.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            order = "<" if head[:4] == b"RIFF" else ">"
            size = os.fstat(f.fileno()).st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                chunk, n = struct.unpack(order + "4sI", f.read(8))
                if chunk == b"data":
                    return None if n in (0, 0xFFFFFFFF) else (n, size - pos - 8)
                pos += 8 + n + (n & 1)
    except OSError:
        return None
    return None


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
    flags = np.fromiter((vad.is_speech(pcm[i * frame : (i + 1) * frame].tobytes(), sr) for i in range(n_frames)),
                        dtype=bool, count=n_frames)
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
        ``max(|y|)``. ``"max"`` needs at least one positive sample: a clip
        offset below zero (DC offset) has none, and the recipe's ``x / max(x)``
        would flip and blow it up, so it is refused rather than guessed at.

    Returns
    -------
    np.ndarray, float32

    Raises
    ------
    AudioError
        If ``y`` is empty, all zero, holds NaN or inf, or (``peak="max"``) has
        no positive sample.

    Examples
    --------
    >>> peak_normalise(np.array([0.5, -1.0, 0.25]))
    array([ 1. , -2. ,  0.5], dtype=float32)
    >>> peak_normalise(np.array([0.5, -1.0, 0.25]), peak="absmax")
    array([ 0.5 , -1.  ,  0.25], dtype=float32)
    """
    if peak not in PEAKS:
        raise ValueError(f"peak={peak!r}: must be 'max' or 'absmax'.")
    if len(y) == 0 or not np.any(y):
        raise AudioError("Signal is silent (empty or all samples zero); cannot normalise.")
    if not np.isfinite(y).all():
        raise AudioError(f"Signal has {int(np.size(y) - np.count_nonzero(np.isfinite(y)))} non-finite samples "
                         "(NaN or inf); cannot normalise.")
    if peak == "absmax":
        return (y / float(np.max(np.abs(y)))).astype(np.float32, copy=False)
    p = float(np.max(y))
    if not p > 0.0:
        raise AudioError(
            f"Signal has no positive sample (max {p:.3g}, min {float(np.min(y)):.3g}), so the recipe's x / max(x) "
            "(peak='max') is undefined; a DC offset usually causes this. Remove the offset (subtract the mean) "
            "or use PreprocessConfig(peak='absmax')."
        )
    return (y / p).astype(np.float32, copy=False)


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    B = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    B.setflags(write=False)  # cached and shared: nobody may change it in place
    return B


def mel_basis(config: PreprocessConfig | None = None) -> np.ndarray:
    """The mel filter bank of the recipe, :func:`librosa.filters.mel` with ``config``'s settings.

    Slaney mel, Slaney-normalised; cached per setting and read-only. :func:`log_mel`
    applies it, and the inversions in :mod:`emovae_utils.inversion` undo it.

    Parameters
    ----------
    config : PreprocessConfig, optional

    Returns
    -------
    np.ndarray, float32, shape (n_mels, 1 + n_fft // 2)

    Examples
    --------
    >>> B = mel_basis()
    >>> B.shape, B.dtype, B.flags.writeable
    ((80, 513), dtype('float32'), False)
    """
    c = config or PreprocessConfig()
    return _mel_basis(c.sr, c.n_fft, c.n_mels, c.fmin, c.fmax)


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
    with one_blas_thread():
        mel = mel_basis(c) @ power
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


def preprocess_audio(
    y: np.ndarray, sr: int, config: PreprocessConfig | None = None, window: bool = False
) -> tuple[np.ndarray, ClipInfo]:
    """The waveform the VAE's log-mel is computed from: steps 2-4 of the recipe.

    Resample to ``config.sr`` (:func:`resample`), drop silence with the WebRTC
    VAD (:func:`voiced_mask`, :func:`remove_silence`) and peak-normalise
    (:func:`peak_normalise`). :func:`preprocess_signal` computes its log-mel
    from exactly this waveform, so both share one recipe.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal at its native rate ``sr``.
    sr : int
    config : PreprocessConfig, optional
        Defaults to the study's values.
    window : bool, default False
        False: the whole voiced signal. True: only the samples the
        ``config.n_frames`` frames kept by :func:`fix_frames` stand for,
        ``n_frames * hop_length`` samples (32768 = 2.048 s at the defaults).
        Frame ``t`` of the centred STFT is centred on sample
        ``t * hop_length``; a clip of ``T = 1 + m // hop_length`` frames
        (``m`` voiced samples) with ``T > n_frames`` is centre-cropped by
        :func:`fix_frames` to frames ``s .. s + n_frames - 1``,
        ``s = (T - n_frames) // 2``, so the window is samples
        ``s * hop_length`` to ``(s + n_frames) * hop_length``. Shorter clips
        start at sample 0 and are zero-padded on the right (where
        :func:`fix_frames` repeats the last frame, so the padding is silence
        here, not a held spectrum); the same right-padding covers a window
        that runs up to one hop past the end of the clip.

    Returns
    -------
    audio : np.ndarray, float32, shape (m,) or (n_frames * hop_length,)
        At ``config.sr``; peak 1 (``max(audio) == 1`` with ``peak="max"``,
        the window's peak can be lower when the crop leaves the peak out).
    info : ClipInfo
        As :func:`preprocess_signal`'s: lengths before and after the VAD, the
        voiced signal's frame count (before fixing to ``n_frames``), and
        whether speech was found (a clip without is kept whole).

    Raises
    ------
    AudioError
        If the signal is not mono, is empty, silent or holds NaN or inf, is
        (or its voiced part is) shorter than one analysis window (``n_fft``
        samples at ``config.sr``), or (``peak="max"``) the voiced part has no
        positive sample.

    See Also
    --------
    preprocess_signal : the log-mel of this waveform, fixed to ``n_frames``.

    Examples
    --------
    >>> t = np.arange(3 * 48000) / 48000
    >>> y = (0.3 * np.sign(np.sin(2 * np.pi * 150 * t)) * (t > 0.3)).astype(np.float32)
    >>> audio, info = preprocess_audio(y, 48000)
    >>> audio.dtype, len(audio) == info.n_voiced_samples, float(audio.max())
    (dtype('float32'), True, 1.0)
    >>> info.n_voiced_frames == 1 + len(audio) // 256
    True
    >>> preprocess_audio(y, 48000, window=True)[0].shape  # 128 frames x hop 256
    (32768,)
    """
    c = config or PreprocessConfig()
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(f"Signal must be mono, shape (n,), not {y.shape}; downmix it first (see load_mono).")
    if len(y) == 0:
        raise AudioError("Signal is empty (0 samples).")
    finite = np.isfinite(y)
    if not finite.all():
        raise AudioError(
            f"Signal has {int(y.size - np.count_nonzero(finite))} non-finite samples (NaN or inf) of {y.size}: "
            "the audio is damaged or came from a failed computation; fix its source."
        )
    if not np.any(y):
        raise AudioError("Signal is silent (all samples are zero): nothing to analyse; record it again or remove it.")
    y = resample(y, sr, c.sr, c.res_type)
    _check_length(len(y), "Signal", c)
    mask = voiced_mask(y, c.sr, c.vad_mode, c.vad_frame_ms, c.vad_dilation)
    voiced, found = remove_silence(y, mask)
    _check_length(len(voiced), "The VAD's voiced part", c)
    audio = peak_normalise(voiced, c.peak)
    n_frames = 1 + len(audio) // c.hop_length  # frames of the centred STFT in log_mel
    info = ClipInfo(len(y), len(voiced), n_frames, found, _rate_notes(sr, c))
    if window:
        start = max(n_frames - c.n_frames, 0) // 2 * c.hop_length  # fix_frames' first frame, in samples
        size = c.n_frames * c.hop_length
        audio = audio[start : start + size]
        if len(audio) < size:
            audio = np.pad(audio, (0, size - len(audio)))
    return np.ascontiguousarray(audio, dtype=np.float32), info


def _check_length(n: int, what: str, c: PreprocessConfig) -> None:
    """Refuse ``n`` samples at ``c.sr`` when they do not fill one analysis window (``n_fft``)."""
    if n < c.n_fft:
        raise AudioError(f"{what} is too short: {n} samples at {c.sr} Hz ({1000 * n / c.sr:.0f} ms), shorter than one "
                         f"analysis window (n_fft = {c.n_fft} samples, {1000 * c.n_fft / c.sr:.0f} ms). Use recordings "
                         "of at least a word (about 0.3 s), or remove it.")


def _rate_notes(sr: int, c: PreprocessConfig) -> tuple[str, ...]:
    """The note for a native rate whose Nyquist frequency lies below ``fmax`` (empty top mel bands), or ()."""
    empty = int(np.sum(librosa.mel_frequencies(c.n_mels + 2, fmin=c.fmin, fmax=c.fmax)[: c.n_mels] >= sr / 2))
    return () if c.fmax <= sr / 2 else (
        f"recorded at {sr} Hz, too low a rate for the mel range: it holds nothing above {sr / 2:g} Hz but fmax = "
        f"{c.fmax:g} Hz, so resampling up to {c.sr} Hz leaves {empty} of the {c.n_mels} mel bands empty. Use a "
        f"recording at {2 * c.fmax:g} Hz or more, or PreprocessConfig(fmax={sr / 2:g}) for all clips.",)


def preprocess_signal(
    y: np.ndarray, sr: int, config: PreprocessConfig | None = None
) -> tuple[np.ndarray, ClipInfo]:
    """Run the whole recipe on a mono signal.

    :func:`log_mel` of :func:`preprocess_audio`'s waveform, fixed to
    ``config.n_frames`` frames by :func:`fix_frames`.

    Parameters
    ----------
    y, sr, config
        As :func:`preprocess_audio`: a mono signal (n,) at its native rate
        ``sr``, and the recipe's settings (default: the study's).

    Returns
    -------
    features : np.ndarray, float32, shape (n_mels, n_frames)
    info : ClipInfo
        Lengths before and after the VAD and whether speech was found. A clip
        with no voiced frame is kept whole; callers decide how to warn.

    Raises
    ------
    AudioError
        As :func:`preprocess_audio` (empty, silent, NaN or inf, too short, no positive sample).

    Examples
    --------
    >>> t = np.arange(48000) / 48000
    >>> y = (0.3 * np.sign(np.sin(2 * np.pi * 150 * t)) * (t > 0.3)).astype(np.float32)
    >>> S, info = preprocess_signal(y, 48000)
    >>> S.shape, info.n_samples
    ((80, 128), 16000)
    """
    c = config or PreprocessConfig()
    S, info = _voiced_log_mel(y, sr, c)
    return fix_frames(S, c.n_frames).astype(np.float32, copy=False), info


def _voiced_log_mel(y: np.ndarray, sr: int, c: PreprocessConfig) -> tuple[np.ndarray, ClipInfo]:
    """Steps 2-5 of the recipe: the whole voiced log-mel (n_mels, n_voiced_frames), before ``fix_frames``."""
    audio, info = preprocess_audio(y, sr, c)
    S = log_mel(audio, c)
    if S.shape[1] != info.n_voiced_frames:  # pragma: no cover - guards the frame count preprocess_audio reports
        raise RuntimeError(f"log_mel gave {S.shape[1]} frames, preprocess_audio expected {info.n_voiced_frames}")
    return S, info


def _preprocess_path(path: str | os.PathLike, config: PreprocessConfig,
                     whole: bool = False) -> tuple[np.ndarray, ClipInfo]:
    """:func:`preprocess_signal` of a file; ``whole=True``: the voiced log-mel before ``fix_frames``."""
    y, sr = load_mono(path)
    try:
        return _voiced_log_mel(y, sr, config) if whole else preprocess_signal(y, sr, config)
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
    AudioWarning
        For each of ``ClipInfo.notes`` (e.g. a rate too low for the mel range).
    """
    features, info = _preprocess_path(path, config or PreprocessConfig())
    if not info.speech_found:
        warnings.warn(f"VAD found no speech in {path}; the whole clip was kept.", stacklevel=2)
    for note in info.notes:
        warnings.warn(AudioWarning(f"{path}: {note}"), stacklevel=2)
    return features
