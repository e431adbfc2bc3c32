"""Speech that is not RAVDESS, made on the spot: eSpeak NG, for tests and for judges' sanity checks.

:func:`synthesize_speech` renders a sentence with Debian's ``espeak-ng``
program (``apt-get install espeak-ng``; nothing is downloaded at run time)
and writes it as a mono 16-bit WAV. Its voices (``en-us``, ``en-us+f3``,
``en-gb``, ...) give clips of a known text by speakers no model has heard.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import soundfile as sf

from .dsp import resample
from .inversion import save_wav

__all__ = ["ESPEAK_SR", "espeak_available", "synthesize_speech"]

#: The rate espeak-ng writes (Hz); :func:`synthesize_speech` resamples to any other ``sr``.
ESPEAK_SR = 22050

_INSTALL = ("synthesize_speech needs the espeak-ng program, which is not on PATH: install it with "
            "'sudo apt-get install espeak-ng' (Debian, Ubuntu) or 'brew install espeak-ng' (macOS)")


def espeak_available() -> bool:
    """True where the ``espeak-ng`` program is on ``PATH`` (what :func:`synthesize_speech` runs).

    Examples
    --------
    >>> isinstance(espeak_available(), bool)
    True
    """
    return shutil.which("espeak-ng") is not None


def synthesize_speech(text: str, path: str | os.PathLike, sr: int = ESPEAK_SR, *, voice: str = "en-us",
                      speed: int = 150, pitch: int = 50) -> Path:
    """Speak ``text`` with espeak-ng and write it to ``path`` (mono 16-bit WAV, atomically).

    Parameters
    ----------
    text : str
        What is said (after ``--`` on espeak-ng's command line, so it may start with ``-``).
    path : str or os.PathLike
        Output WAV; parent folders are created.
    sr : int, default 22050
        Sample rate of the file; espeak-ng renders at :data:`ESPEAK_SR` and
        other rates are resampled (:func:`emovae_utils.dsp.resample`).
    voice : str, default "en-us"
        An espeak-ng voice (``espeak-ng --voices``), optionally with a variant:
        ``"en-us+f3"`` is a higher, female-like voice, ``"en-gb"`` another accent.
    speed : int, default 150
        Words per minute.
    pitch : int, default 50
        Pitch, 0-99.

    Returns
    -------
    pathlib.Path
        ``path``; the samples are as espeak-ng made them (no normalisation).

    Raises
    ------
    FileNotFoundError
        If espeak-ng is not installed; the message says how to install it.
    ValueError
        For an empty ``text``.
    RuntimeError
        If espeak-ng fails (an unknown ``voice``), with its message.

    Examples
    --------
    >>> import tempfile, pathlib, soundfile as sf
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "door.wav"
    >>> y, rate = sf.read(synthesize_speech("Kids are talking by the door.", out, sr=16000))  # doctest: +SKIP
    >>> rate, 1.0 < len(y) / rate < 4.0  # doctest: +SKIP
    (16000, True)
    """
    if not text or not text.strip():
        raise ValueError("text is empty: give the sentence to speak")
    program = shutil.which("espeak-ng")
    if program is None:
        raise FileNotFoundError(_INSTALL)
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        raw = Path(tmp) / "speech.wav"
        proc = subprocess.run([program, "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "-w", str(raw),
                               "--", text], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
            raise RuntimeError(f"espeak-ng failed (exit {proc.returncode}) for voice {voice!r}: "
                               f"{(proc.stderr or proc.stdout).strip() or 'no audio written'}")
        y, rate = sf.read(raw, dtype="float32")
    return save_wav(path, resample(y, rate, sr), sr=sr, normalise=False)
