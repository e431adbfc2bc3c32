"""Baseline representations of the same clips: pooled log-mel, PCA, eGeMAPS.

:func:`pooled_log_mel` needs no fitting. PCA is fitted per fold as a pipeline
step (:func:`pca_transform`, given to a probe as ``transform=``), or on all
clips for plots (:func:`pca_features`). eGeMAPS functionals come from
openSMILE (:func:`egemaps_functionals`), cached per file list
(:func:`egemaps_cached`), measured on one of three versions of each clip's
audio (``audio=``, labels in :data:`EGEMAPS_AUDIO`): the raw file, the
preprocessed audio the VAE's log-mel is computed from (after VAD and peak
normalisation, :func:`emovae_utils.dsp.preprocess_audio`), or only the 2.05 s
window of it that the VAE's 128 frames cover.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from ..dsp import AudioError, PreprocessConfig, load_mono, preprocess_audio, resample
from ..extras import require
from ..io import atomic_write, sha1_bytes
from ..paths import cache_root

__all__ = [
    "pooled_log_mel",
    "flatten_log_mel",
    "pca_transform",
    "pca_features",
    "EGEMAPS_AUDIO",
    "egemaps_functionals",
    "egemaps_cached",
]


def _check_logmel(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 3:
        raise ValueError(f"expected log-mels of shape (N, n_mels, T), got {X.shape}")
    return X


def pooled_log_mel(X: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over time of each mel band.

    Parameters
    ----------
    X : np.ndarray, shape (N, n_mels, T)
        dB log-mel spectrograms (e.g. (N, 80, 128)).

    Returns
    -------
    np.ndarray, shape (N, 2 * n_mels)
        ``[means (n_mels), stds (n_mels)]`` per clip: (N, 160) for 80 bands.
        Needs no fitting, so it is leakage-free as is.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.stack([np.full((80, 128), -40.0), np.tile([-50.0, -30.0], (80, 64))])
    >>> F = pooled_log_mel(X)
    >>> F.shape, F[:, 0].tolist(), F[:, 80].tolist()
    ((2, 160), [-40.0, -40.0], [0.0, 10.0])
    """
    X = _check_logmel(X)
    return np.concatenate([X.mean(axis=2), X.std(axis=2)], axis=1)


def flatten_log_mel(X: np.ndarray) -> np.ndarray:
    """Log-mels (N, n_mels, T) as float64 rows (N, n_mels * T), unscaled."""
    X = _check_logmel(X)
    return X.reshape(X.shape[0], -1)


def pca_transform(n_components: int = 8, random_state: int = 0) -> Pipeline:
    """Leakage-free PCA baseline: flatten the log-mels, then PCA, as one pipeline step.

    Given to a probe as ``transform=``, it is cloned and fitted in each fold on
    the training actors' clips only, then projects the held-out clips.

    Parameters
    ----------
    n_components : int, default 8
        Matches the VAE's latent size.
    random_state : int, default 0
        Seed for the (randomised) SVD solver sklearn may pick.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted steps ``flatten`` (:func:`flatten_log_mel`) and ``pca``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(30, 80, 4))
    >>> pca_transform(8).fit(X[:20]).transform(X[20:]).shape
    (10, 8)

    As a probe's features, fitted on each fold's training actors only (``ravdess_dir``: the RAVDESS folder):

    >>> from emovae_utils import data, metrics
    >>> X, index = data.load_features(ravdess_dir, progress=False)
    >>> probes = metrics.probe_representation(X, index, transform=pca_transform(8), speaker_id=False)
    >>> 0.125 < probes["emotion"].uar_mean < 1  # above chance (8 emotions)
    True
    """
    return Pipeline([
        ("flatten", FunctionTransformer(flatten_log_mel)),
        ("pca", PCA(n_components=n_components, random_state=random_state)),
    ])


def pca_features(X: np.ndarray, n_components: int = 8, random_state: int = 0) -> np.ndarray:
    """PCA of flattened log-mels, fitted on all the given clips.

    Transductive: the principal axes see every clip, including those a probe
    later tests on (no labels are used, but held-out speakers shape the axes).
    Fine for plots; for probe numbers give :func:`pca_transform` as the
    ``transform`` of a probe, which fits PCA on each fold's training actors.

    Parameters
    ----------
    X : np.ndarray, shape (N, n_mels, T)
        dB log-mels, flattened to (N, n_mels * T) without scaling.
    n_components, random_state
        See :func:`pca_transform`.

    Returns
    -------
    np.ndarray, shape (N, n_components)
    """
    return pca_transform(n_components, random_state).fit_transform(X)


#: The audio eGeMAPS is measured on (``audio=`` of :func:`egemaps_functionals`
#: and :func:`egemaps_cached`), with a label for tables and figures.
#:
#: ``"raw"``
#:     The file, downmixed and resampled to 16 kHz (:func:`emovae_utils.dsp.load_mono`,
#:     :func:`~emovae_utils.dsp.resample`); silence before and after the speech included.
#: ``"preprocessed"``
#:     :func:`emovae_utils.dsp.preprocess_audio`: the 16 kHz audio after the
#:     WebRTC VAD dropped the silence and peak normalisation, whole; what the
#:     VAE's log-mel is computed from, before it is cut to 128 frames.
#: ``"window"``
#:     ``preprocess_audio(..., window=True)``: only the 2.048 s (128 frames x
#:     256 samples) that :func:`emovae_utils.dsp.fix_frames` keeps (the centre
#:     of longer clips; shorter clips zero-padded at the end), so eGeMAPS sees
#:     exactly the stretch of audio the VAE sees.
EGEMAPS_AUDIO: dict[str, str] = {
    "raw": "eGeMAPS, raw 48 kHz file resampled to 16 kHz",
    "preprocessed": "eGeMAPS, preprocessed 16 kHz audio (after VAD and peak normalisation), full length",
    "window": "eGeMAPS, preprocessed audio, the 2.05 s window the VAE sees",
}

EgemapsAudio = Literal["raw", "preprocessed", "window"]


def _check_audio(audio: str, sampling_rate: int, config: PreprocessConfig | None) -> PreprocessConfig | None:
    """The config the ``audio`` variant runs with (None for ``"raw"``), or a ValueError saying what to pass."""
    if audio not in EGEMAPS_AUDIO:
        raise ValueError(f"audio={audio!r}: must be one of {', '.join(map(repr, EGEMAPS_AUDIO))}")
    if audio == "raw":
        return None
    config = config or PreprocessConfig()
    if not isinstance(config, PreprocessConfig):
        raise TypeError(f"config must be a PreprocessConfig or None, not {type(config).__name__}")
    if sampling_rate != config.sr:
        raise ValueError(
            f"sampling_rate={sampling_rate} but audio={audio!r} is the preprocessed audio at config.sr={config.sr}: "
            f"pass sampling_rate={config.sr} (signals given as arrays must be at that rate too)"
        )
    return config


@functools.lru_cache(maxsize=1)
def _smile() -> Any:
    opensmile = require("opensmile", "study", "the eGeMAPS baseline")

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def _load_16k(path: str | os.PathLike[str], sampling_rate: int) -> np.ndarray:
    y, sr = load_mono(path)
    return resample(y, sr, sampling_rate)


def _egemaps_one(
    source: np.ndarray | str | os.PathLike[str],
    sampling_rate: int,
    audio: str = "raw",
    config: PreprocessConfig | None = None,
) -> pd.Series:
    is_path = isinstance(source, (str, os.PathLike))
    if audio == "raw":
        signal = _load_16k(source, sampling_rate) if is_path else np.asarray(source, dtype=np.float32)
    else:
        y, sr = load_mono(source) if is_path else (np.asarray(source, dtype=np.float32), sampling_rate)
        try:
            signal = preprocess_audio(y, sr, config, window=audio == "window")[0]
        except AudioError as err:
            raise AudioError(f"{source}: {err}" if is_path else str(err)) from err
    if signal.ndim != 1:
        raise ValueError(f"signals must be 1-D (mono), got shape {signal.shape}")
    frame = _smile().process_signal(signal.astype(np.float32, copy=False), sampling_rate)
    return frame.iloc[0]


def egemaps_functionals(
    sources: Sequence[np.ndarray | str | os.PathLike[str]],
    sampling_rate: int = 16000,
    *,
    audio: EgemapsAudio = "raw",
    config: PreprocessConfig | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    index: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """eGeMAPS v02 functionals (88 features) per clip, with openSMILE.

    Parameters
    ----------
    sources : sequence of np.ndarray or paths
        Mono signals at ``sampling_rate``, or audio file paths, which are
        loaded mono (:func:`emovae_utils.dsp.load_mono`) at their own rate.
    sampling_rate : int, default 16000
        Rate of the signals given as arrays and of the audio openSMILE
        analyses. With ``audio="raw"`` files are resampled to it
        (:func:`~emovae_utils.dsp.resample`, soxr_hq, as ``librosa.load``);
        otherwise it must equal ``config.sr``.
    audio : {"raw", "preprocessed", "window"}, default "raw"
        Which audio of each source is measured (see :data:`EGEMAPS_AUDIO`):
        ``"raw"`` the source as it is (resampled); ``"preprocessed"`` the
        output of :func:`emovae_utils.dsp.preprocess_audio` (VAD silence
        removal and peak normalisation, whole); ``"window"`` the
        ``n_frames * hop_length`` samples of it that the VAE's log-mel
        covers (``preprocess_audio(..., window=True)``, 2.048 s). A clip in
        which the VAD finds no speech is kept whole, as in the VAE's features.
    config : PreprocessConfig, optional
        Recipe of ``"preprocessed"`` and ``"window"`` (default: the study's);
        unused with ``"raw"``.
    n_jobs : int, default 1
        Worker processes (joblib); ~0.05 s per 3-s clip on one core, so 1
        is usually enough.
    progress : bool, default True
        Show a tqdm progress bar.
    index : sequence, optional
        Row labels (default 0..N-1).

    Returns
    -------
    pandas.DataFrame, shape (N, 88)
        Columns are openSMILE's feature names.

    Raises
    ------
    ValueError
        For an unknown ``audio``, or ``sampling_rate != config.sr`` with a
        preprocessed variant.
    emovae_utils.dsp.AudioError
        Naming the file, for audio the recipe cannot use (silent, damaged).

    Examples
    --------
    >>> t = np.arange(3 * 16000) / 16000
    >>> voice = (0.3 * np.sign(np.sin(2 * np.pi * 150 * t)) * (t > 0.5)).astype(np.float32)
    >>> feats = egemaps_functionals([voice], audio="window", progress=False)  # 2.048 s of it
    >>> feats.shape
    (1, 88)
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    config = _check_audio(audio, sampling_rate, config)
    sources = list(sources)
    if n_jobs == 1:
        rows_iter: Iterable[pd.Series] = (_egemaps_one(s, sampling_rate, audio, config) for s in sources)
    else:
        rows_iter = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_egemaps_one)(s, sampling_rate, audio, config) for s in sources
        )
    rows = list(tqdm(rows_iter, total=len(sources), desc=f"eGeMAPS ({audio})", disable=not progress))
    out = pd.DataFrame([r.to_numpy() for r in rows], columns=rows[0].index if rows else None, dtype=float)
    out.index = pd.RangeIndex(len(rows)) if index is None else pd.Index(index)
    return out



def egemaps_cached(
    paths: Sequence[str | os.PathLike[str]],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    names: Sequence[str] | None = None,
    audio: EgemapsAudio = "raw",
    config: PreprocessConfig | None = None,
    sampling_rate: int = 16000,
    n_jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`egemaps_functionals` of audio files, computed once and cached as CSV.

    The cache file ``egemaps-<key>.csv`` sits next to the feature cache; its
    key covers the file names and sizes, the sampling rate, the openSMILE
    version, ``audio`` and, for the preprocessed variants, every field of
    ``config`` (:meth:`~emovae_utils.dsp.PreprocessConfig.to_json`), so any
    change recomputes and the three variants never share a file.

    Parameters
    ----------
    paths : sequence of path-like
        Audio files (loaded mono at their own rate).
    cache_dir : path-like, optional
        Defaults to ``$EMOVAE_CACHE_DIR`` or ``~/.cache/emovae`` (as
        :func:`emovae_utils.data.load_features`).
    names : sequence of str, optional
        Row labels (default: the file stems).
    audio : {"raw", "preprocessed", "window"}, default "raw"
        The file resampled, the preprocessed audio the VAE's log-mel is made
        from, or its 2.05 s window the VAE sees; see :data:`EGEMAPS_AUDIO`
        (which also holds a label for each) and :func:`egemaps_functionals`.
    config : PreprocessConfig, optional
        Recipe of the preprocessed variants (default: the study's, as
        :func:`emovae_utils.data.load_features`); unused with ``"raw"``.
    sampling_rate, n_jobs, progress
        See :func:`egemaps_functionals`.

    Returns
    -------
    pandas.DataFrame, shape (N, 88)
        Indexed by ``names``, in the order of ``paths``.

    Examples
    --------
    The eGeMAPS row of notebook 05 is this on the 720 statement-01 clips; here two of them
    (``ravdess_dir``: the RAVDESS folder):

    >>> from emovae_utils.data import ravdess_index
    >>> study = ravdess_index(ravdess_dir).head(2)
    >>> egemaps = egemaps_cached(study.path, names=study.name, progress=False)
    >>> egemaps.shape
    (2, 88)

    The same functionals on the 2.05 s the VAE sees (``audio="window"``), labelled for a table:

    >>> EGEMAPS_AUDIO["window"]
    'eGeMAPS, preprocessed audio, the 2.05 s window the VAE sees'
    """
    opensmile = require("opensmile", "study", "the eGeMAPS baseline")

    config = _check_audio(audio, sampling_rate, config)
    paths = [Path(p) for p in paths]
    names = [p.stem for p in paths] if names is None else [str(n) for n in names]
    if len(names) != len(paths):
        raise ValueError("names must have one entry per path")
    key = {"files": [(n, p.stat().st_size) for n, p in zip(names, paths)],
           "sr": sampling_rate, "opensmile": opensmile.__version__, "set": "eGeMAPSv02", "audio": audio}
    if config is not None:
        key["preprocess"] = config.to_json()
    blob = json.dumps(key)
    cache_file = cache_root(cache_dir) / f"egemaps-{sha1_bytes(blob.encode())[:20]}.csv"
    if cache_file.exists():
        try:
            table = pd.read_csv(cache_file, index_col=0)
            if list(table.index.astype(str)) == names and table.shape[1] == 88:
                return table
        except Exception:  # noqa: BLE001 - damaged cache: recompute
            pass
    table = egemaps_functionals(paths, sampling_rate, audio=audio, config=config, n_jobs=n_jobs,
                                progress=progress, index=names)
    table.index.name = "name"
    atomic_write(cache_file, table.to_csv)
    return table
