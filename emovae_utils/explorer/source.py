"""Where a clip to explore comes from: a RAVDESS clip, an audio file, an upload, a signal.

:func:`read_audio` reads any of them to a mono signal at its own rate;
:func:`clip_from_audio` runs the study's own preprocessing on it
(:func:`emovae_utils.dsp.preprocess_audio` then :func:`~emovae_utils.dsp.log_mel`,
and :func:`~emovae_utils.dsp.fix_frames` for window models) and returns a
:class:`SourceClip`: the model's input (an 80 x 128 window, or the whole
voiced log-mel and its length in frames for a sequence model) together with
the recording itself, for an A/B against it.

Examples
--------
A one-second buzz at 22050 Hz, as a window model sees it:

>>> import numpy as np
>>> t = np.arange(22050) / 22050
>>> y = (0.3 * np.sign(np.sin(2 * np.pi * 150 * t))).astype(np.float32)
>>> clip = clip_from_audio((y, 22050))
>>> clip.features.shape, clip.length, clip.recording_sr
((80, 128), None, 22050)
>>> clip_from_audio((y, 22050), whole=True).length   # a sequence model: every voiced frame (after the VAD)
46
"""
from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..dsp import AudioError, AudioWarning, PreprocessConfig, fix_frames, load_mono, log_mel, preprocess_audio

__all__ = ["SourceClip", "read_audio", "clip_from_audio", "wants_whole_clip"]

#: What an upload or a file must be, for the messages.
FORMATS = "a WAV or FLAC recording"


@dataclass(frozen=True)
class SourceClip:
    """One recording prepared for a model.

    Attributes
    ----------
    name : str
        What it is called (the file name, the upload's name, a RAVDESS clip's label).
    recording : np.ndarray, (n,), float32
        The recording itself: mono, at its own rate, as read (for the A/B).
    recording_sr : int
        Its sample rate.
    features : np.ndarray, (n_mels, T), float32
        The model's input (dB log-mel): ``T = n_frames`` (128) for a window
        model, every voiced frame for a sequence model.
    length : int or None
        ``T`` for a sequence model (its condition ``"lengths"``), None for a window model.
    """

    name: str
    recording: np.ndarray
    recording_sr: int
    features: np.ndarray
    length: int | None = None

    @property
    def cond(self) -> np.ndarray | None:
        """The clip's condition for a sequence model (its length, an int64 scalar), else None."""
        return None if self.length is None else np.asarray(self.length, np.int64)

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return len(self.recording) / self.recording_sr


def _upload_entry(source: Any) -> tuple[bytes, str]:
    """Bytes and name of an upload: raw bytes, a ``FileUpload`` entry (a dict) or its value (a tuple of them)."""
    if isinstance(source, (tuple, list)):
        if not source:
            raise AudioError(f"Nothing was uploaded: click the upload button and choose {FORMATS}.")
        source = source[0]
    if isinstance(source, Mapping):
        if "content" not in source:
            raise AudioError(f"An upload entry must hold the file's 'content' (ipywidgets FileUpload.value[0]); got "
                             f"the keys {sorted(source)}")
        return bytes(source["content"]), str(source.get("name") or "upload")
    return bytes(source), "upload"


def _read_upload(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode uploaded bytes with :func:`~emovae_utils.dsp.load_mono` (through a temporary file)."""
    if not data:
        raise AudioError(f"The uploaded file {name!r} is empty (0 bytes): upload {FORMATS} again.")
    suffix = Path(name).suffix if Path(name).suffix.lower() in (".wav", ".flac", ".ogg", ".aiff", ".aif") else ".wav"
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="emovae-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return load_mono(tmp)
    except AudioError as err:
        raise AudioError(f"The uploaded file {name!r} cannot be used: {str(err).replace(tmp, 'it')} "
                         f"Upload {FORMATS}.") from err
    finally:
        os.unlink(tmp)


def read_audio(source: Any) -> tuple[np.ndarray, int, str]:
    """A recording as a mono signal at its own rate, and its name.

    Parameters
    ----------
    source : str, os.PathLike, pandas.Series, (np.ndarray, int), bytes or upload
        A path to an audio file (WAV, FLAC); a row of a RAVDESS index (its
        ``path`` column, e.g. ``index.iloc[i]``); a signal and its rate
        ``(y, sr)``; the bytes of a file; or what an ipywidgets ``FileUpload``
        holds (its ``value``, a tuple of dicts with ``content`` and ``name``, or one of them).

    Returns
    -------
    y : np.ndarray, (n,), float32
    sr : int
    name : str

    Raises
    ------
    AudioError
        An empty upload, a file that cannot be decoded, an empty or damaged
        signal: the message says what to do.

    Examples
    --------
    >>> y, sr, name = read_audio((np.zeros((100, 2)), 8000))   # stereo is averaged
    >>> y.shape, sr, name
    ((100,), 8000, 'signal')
    >>> read_audio(())
    Traceback (most recent call last):
    ...
    emovae_utils.dsp.AudioError: Nothing was uploaded: click the upload button and choose a WAV or FLAC recording.
    """
    if isinstance(source, (str, os.PathLike)):
        y, sr = load_mono(source)
        return y, sr, Path(source).name
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], np.ndarray):
        y, sr = np.asarray(source[0], np.float32), int(source[1])
        if y.ndim == 2:
            y = y.mean(axis=1, dtype=np.float32)
        if y.ndim != 1:
            raise AudioError(f"A signal must be (n,) or (n, channels), got shape {y.shape}")
        return np.ascontiguousarray(y), sr, "signal"
    import pandas as pd

    if isinstance(source, pd.Series):  # a row of an index
        from ..data import clip_label

        if "path" not in source.index:
            raise ValueError(f"an index row must have a 'path' column (data.ravdess_index, data.audio_index); "
                             f"got {list(source.index)}")
        y, sr = load_mono(source["path"])
        return y, sr, clip_label(source)
    data, name = _upload_entry(source)
    y, sr = _read_upload(data, name)
    return y, sr, name


def wants_whole_clip(model: Any) -> bool:
    """Whether ``model`` reads whole variable-length clips (its declared condition is ``"lengths"``).

    Examples
    --------
    >>> from emovae_utils.models import build
    >>> wants_whole_clip(build("sequence_vae")), wants_whole_clip(build("emotion_vae"))
    (True, False)
    """
    from ..models.base import Model

    return isinstance(model, Model) and model.condition == "lengths"


def clip_from_audio(source: Any, model: Any = None, *, whole: bool | None = None,
                    config: PreprocessConfig | None = None) -> SourceClip:
    """The model's input from any recording, by the study's preprocessing.

    Resample to 16 kHz, drop silence (WebRTC VAD), peak-normalise, 80-band
    log-mel (:func:`~emovae_utils.dsp.preprocess_audio`,
    :func:`~emovae_utils.dsp.log_mel`), then, for a window model, edge-pad or
    centre-crop to 128 frames (:func:`~emovae_utils.dsp.fix_frames`): the same
    features :func:`~emovae_utils.data.load_features` (windows) or
    :func:`~emovae_utils.data.load_sequences` (whole clips) give.

    Parameters
    ----------
    source : path, index row, (y, sr), bytes or upload
        See :func:`read_audio`.
    model : Model, optional
        Decides ``whole`` (:func:`wants_whole_clip`) when ``whole`` is None.
    whole : bool, optional
        Keep every voiced frame (a sequence model) instead of the fixed window.
    config : PreprocessConfig, optional
        The recipe's settings (default: the study's).

    Returns
    -------
    SourceClip

    Raises
    ------
    AudioError
        As :func:`read_audio`, and for a silent or too short recording, naming it.

    Warns
    -----
    UserWarning
        If the VAD finds no speech (the clip is then kept whole).
    AudioWarning
        A rate too low for the mel range.

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> y = (0.3 * np.sign(np.sin(2 * np.pi * 150 * t))).astype(np.float32)
    >>> clip_from_audio((y, 16000)).features.shape
    (80, 128)
    """
    c = config or PreprocessConfig()
    whole = wants_whole_clip(model) if whole is None else bool(whole)
    y, sr, name = read_audio(source)
    try:
        audio, info = preprocess_audio(y, sr, c)
    except AudioError as err:
        raise AudioError(f"{name}: {err}") from err
    if not info.speech_found:
        warnings.warn(f"VAD found no speech in {name}; the whole clip was kept.", stacklevel=2)
    for note in info.notes:
        warnings.warn(AudioWarning(f"{name}: {note}"), stacklevel=2)
    S = log_mel(audio, c)
    if not whole:
        S = fix_frames(S, c.n_frames)
    S = np.ascontiguousarray(S, dtype=np.float32)
    return SourceClip(name, y, int(sr), S, S.shape[1] if whole else None)
