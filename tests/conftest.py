"""Shared fixtures. Data-dependent tests use ``ravdess_dir`` and skip, with the reason, without the data."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
SHARED_RAVDESS = ROOT.parent / "shared" / "ravdess"


def pytest_configure(config):
    # Before any notebook kernel starts: they inherit these.
    if not os.environ.get("EMOVAE_DATA_DIR") and SHARED_RAVDESS.is_dir():
        os.environ["EMOVAE_DATA_DIR"] = str(SHARED_RAVDESS)
    if not os.environ.get("EMOVAE_CACHE_DIR"):
        os.environ["EMOVAE_CACHE_DIR"] = config._emovae_cache = tempfile.mkdtemp(prefix="emovae-test-cache-")
    os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_unconfigure(config):
    # The session's own feature cache (never one the user pointed us at) goes with the session.
    cache = getattr(config, "_emovae_cache", None)
    if cache:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    """The full RAVDESS speech set, or a skip saying where it was looked for."""
    path = Path(os.environ.get("EMOVAE_DATA_DIR", SHARED_RAVDESS))
    if not path.is_dir():
        pytest.skip(f"RAVDESS not found at {path} (set EMOVAE_DATA_DIR to run data-dependent tests)")
    return path


@pytest.fixture(scope="session")
def ravdess_features(ravdess_dir):
    """(X, index) of the full data set, built once per session into the session cache."""
    from emovae_utils.data import load_features

    return load_features(ravdess_dir, progress=False)


def speechlike(seconds: float, sr: int, f0: float = 150.0) -> np.ndarray:
    """A harmonic burst that the WebRTC VAD classifies as speech."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 20))
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


def utterance(sr: int = 48000, seed: int = 0, bursts: tuple[float, ...] = (0.6, 0.5)) -> np.ndarray:
    """Speech-like bursts between low-level noise, like a RAVDESS clip."""
    rng = np.random.default_rng(seed)
    parts = [1e-4 * rng.standard_normal(int(0.5 * sr))]
    for i, d in enumerate(bursts):
        parts += [speechlike(d, sr, 120 + 30 * i + 10 * seed), 1e-4 * rng.standard_normal(int(0.5 * sr))]
    return np.concatenate(parts).astype(np.float32)


def write_clip(path: Path, y: np.ndarray, sr: int = 48000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(np.clip(y, -1, 1) * 32767).astype(np.int16)  # quantise here: libsndfile's float
    sf.write(path, pcm, sr, subtype="PCM_16")                     # conversion differs between wav and flac
    return path
