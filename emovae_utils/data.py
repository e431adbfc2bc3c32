"""RAVDESS: where the data is, what is in it, and its cached features.

- :func:`resolve_data_dir`  explicit argument > ``EMOVAE_DATA_DIR`` > ``<project>/data/ravdess``
- :func:`ravdess_index`     one row per clip, parsed from the file names
- :func:`load_features`     (N, 80, 128) log-mels in index order, built in parallel once and cached
- :func:`download_ravdess`  fetch and verify the Zenodo zip (see :mod:`emovae_utils.download`)
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .dsp import AudioError, PreprocessConfig, _preprocess_path, preprocess_signal
from .download import download_ravdess
from .paths import PROJECT_ROOT, cache_root

__all__ = [
    "EMOTIONS",
    "PROJECT_ROOT",
    "CLIPS_PER_ACTOR",
    "resolve_data_dir",
    "ravdess_index",
    "missing_clips",
    "load_features",
    "download_ravdess",
]

EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
INTENSITIES = {1: "normal", 2: "strong"}
CLIPS_PER_ACTOR = 60
_NAME = re.compile(r"^03-01-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d{2})\.(wav|flac)$", re.IGNORECASE)
_CACHE_VERSION = 1


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Find the RAVDESS folder.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Used when given; otherwise ``$EMOVAE_DATA_DIR``; otherwise
        ``<project root>/data/ravdess`` (where :func:`download_ravdess` puts it).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        With what to do, if the folder does not exist.
    """
    chosen = data_dir or os.environ.get("EMOVAE_DATA_DIR") or PROJECT_ROOT / "data" / "ravdess"
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"RAVDESS not found at {path}. Pass data_dir=..., set EMOVAE_DATA_DIR to a folder holding "
            "the Actor_XX folders (.wav or .flac), or download it with "
            "`python -c 'from emovae_utils.data import download_ravdess; download_ravdess()'`."
        )
    return path


def _expected_names(actor: int) -> set[str]:
    return {
        f"03-01-{e:02d}-{i:02d}-{s:02d}-{r:02d}-{actor:02d}"
        for e in range(1, 9)
        for i in (1, 2)
        for s in (1, 2)
        for r in (1, 2)
        if not (e == 1 and i == 2)
    }


def ravdess_index(data_dir: str | os.PathLike | None = None, warn: bool = True) -> pd.DataFrame:
    """Index the RAVDESS speech clips under ``data_dir``.

    Accepts ``.wav`` and ``.flac``, in ``Actor_XX/`` folders or in one flat
    folder. Names follow ``03-01-EE-II-SS-RR-AA`` (audio-only speech; emotion,
    intensity, statement, repetition, actor).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        See :func:`resolve_data_dir`.
    warn : bool
        Warn once listing files skipped for not following the name pattern,
        and once listing actors with missing clips (60 expected per actor).

    Returns
    -------
    pandas.DataFrame
        One row per clip, sorted by actor then name, with columns ``path``
        (absolute), ``name``, ``actor`` (1-24), ``gender`` ("male" for odd
        actors), ``emotion`` (name), ``emotion_id`` (1-8), ``intensity``
        ("normal"/"strong"), ``statement`` (1-2), ``repetition`` (1-2).

    Raises
    ------
    FileNotFoundError
        If no clip is found.
    """
    root = resolve_data_dir(data_dir)
    rows, skipped, seen = [], [], set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() not in (".wav", ".flac"):
            continue
        m = _NAME.match(path.name)
        if not m or not 1 <= int(m.group(5)) <= 24 or (m.group(1) == "01" and m.group(2) == "02"):
            skipped.append(str(path.relative_to(root)))
            continue
        if path.stem in seen:  # the same clip as .wav and .flac: keep the first
            skipped.append(f"{path.relative_to(root)} (duplicate of an indexed clip)")
            continue
        seen.add(path.stem)
        e, i, s, r, a = (int(g) for g in m.groups()[:5])
        rows.append(
            dict(path=str(path.resolve()), name=path.stem, actor=a, gender="male" if a % 2 else "female",
                 emotion=EMOTIONS[e - 1], emotion_id=e, intensity=INTENSITIES[i], statement=s, repetition=r)
        )
    if warn and skipped:
        warnings.warn(
            f"Skipped {len(skipped)} file(s) that are not RAVDESS speech clips: " + ", ".join(skipped), stacklevel=2
        )
    if not rows:
        raise FileNotFoundError(f"No RAVDESS clips (03-01-EE-II-SS-RR-AA.wav/.flac) found under {root}.")
    index = pd.DataFrame(rows).sort_values(["actor", "name"], kind="stable").reset_index(drop=True)
    if warn:
        missing = missing_clips(index)
        if len(missing):
            per_actor = missing.groupby("actor")["name"].apply(list)
            lines = [f"Actor {a:02d}: {CLIPS_PER_ACTOR - len(n)} of {CLIPS_PER_ACTOR}"
                     + (f" (missing {', '.join(n)})" if len(n) <= 5 else "") for a, n in per_actor.items()]
            warnings.warn("Missing clips: " + "; ".join(lines), stacklevel=2)
    return index


def missing_clips(index: pd.DataFrame) -> pd.DataFrame:
    """Clips expected but absent, for every actor present in ``index``.

    Returns
    -------
    pandas.DataFrame
        Columns ``actor`` and ``name`` (file stem), one row per missing clip.
    """
    rows = [
        (a, name)
        for a, group in index.groupby("actor")
        for name in sorted(_expected_names(int(a)) - set(group["name"]))
    ]
    return pd.DataFrame(rows, columns=["actor", "name"])


def _cache_key(index: pd.DataFrame, config: PreprocessConfig) -> str:
    files = [(n, os.path.getsize(p)) for n, p in zip(index["name"], index["path"])]
    blob = json.dumps({"v": _CACHE_VERSION, "config": config.to_json(), "files": files})
    return hashlib.sha256(blob.encode()).hexdigest()


def _checksum(X: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(X).view(np.uint8))


def _read_cache(path: Path, key: str, n: int) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        ok = (
            str(data["key"]) == key
            and data["X"].shape[0] == n
            and int(data["checksum"]) == _checksum(data["X"])
        )
    except Exception:  # truncated, corrupted or foreign file: rebuild
        ok = False
    if not ok:
        warnings.warn(f"Feature cache {path} is stale or corrupted; rebuilding it.", stacklevel=3)
        return None
    return data


def _work(args: tuple[str, PreprocessConfig]):
    path, config = args
    try:
        features, info = _preprocess_path(path, config)
        return features, info, None
    except AudioError as err:
        return None, None, str(err)


def _warm_up(config: PreprocessConfig) -> None:
    # First calls import scipy.signal, soxr and numba-backed helpers (1-2 s);
    # paying that once here means forked workers inherit it.
    t = np.arange(48000) / 48000
    preprocess_signal((0.5 * np.sin(2 * np.pi * 220 * t) * (t > 0.3)).astype(np.float32), 48000, config)


def _compute(paths: list[str], config: PreprocessConfig, workers: int, progress: bool):
    _warm_up(config)
    jobs = [(p, config) for p in paths]
    bar = dict(total=len(jobs), desc="Preprocessing clips", unit="clip", disable=not progress)
    if workers <= 1:
        return [_work(j) for j in tqdm(jobs, **bar)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(_work, jobs, chunksize=8), **bar))


def load_features(
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    config: PreprocessConfig | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    on_error: str = "raise",
) -> tuple[np.ndarray, pd.DataFrame]:
    """Log-mel features of every clip, in :func:`ravdess_index` order.

    The first call preprocesses all clips on all cores with a progress bar
    and writes one cache file keyed by the configuration and the file list
    (names and sizes); later calls load it. A changed configuration or file
    set, or a truncated or corrupted cache, triggers a rebuild.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        See :func:`resolve_data_dir`.
    cache_dir : str or os.PathLike, optional
        Defaults to ``$EMOVAE_CACHE_DIR`` or ``~/.cache/emovae``.
    config : PreprocessConfig, optional
        Defaults to the study's values.
    workers : int, optional
        Processes; defaults to the number of cores.
    progress : bool
        Show a progress bar.
    on_error : {"raise", "skip"}
        What to do with unreadable, empty or silent files: raise one error
        listing them all, or drop them from the index with a warning.

    Returns
    -------
    X : np.ndarray, float32, shape (N, 80, 128)
    index : pandas.DataFrame
        :func:`ravdess_index` plus ``n_samples`` and ``n_voiced_samples``
        (16 kHz samples before and after the VAD), ``voiced_frames`` (mel
        frames before fixing to 128) and ``speech_found`` (False where the VAD
        found nothing and the clip was kept whole).

    Warns
    -----
    UserWarning
        Once, listing clips in which the VAD found no speech.
    """
    config = config or PreprocessConfig()
    index = ravdess_index(data_dir)
    key = _cache_key(index, config)
    cache_folder = cache_root(cache_dir)
    cache_file = cache_folder / f"features-{key[:20]}.npz"
    data = _read_cache(cache_file, key, len(index)) if cache_file.exists() else None
    if data is None:
        results = _compute(list(index["path"]), config, workers or os.cpu_count() or 1, progress)
        errors = [err for _, _, err in results if err]
        if errors and on_error != "skip":
            raise AudioError(
                f"{len(errors)} file(s) could not be preprocessed (remove or replace them, or pass "
                "on_error='skip'):\n" + "\n".join(errors)
            )
        if errors:
            warnings.warn(f"Skipped {len(errors)} unusable file(s):\n" + "\n".join(errors), stacklevel=2)
        keep = np.array([err is None for _, _, err in results])
        good = [(f, i) for f, i, err in results if err is None]
        X = np.stack([f for f, _ in good]).astype(np.float32)
        data = dict(
            X=X,
            keep=keep,
            n_samples=np.array([i.n_samples for _, i in good]),
            n_voiced_samples=np.array([i.n_voiced_samples for _, i in good]),
            voiced_frames=np.array([i.n_voiced_frames for _, i in good]),
            speech_found=np.array([i.speech_found for _, i in good]),
        )
        cache_folder.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, key=np.array(key), checksum=np.array(_checksum(X), dtype=np.int64), **data)
        os.replace(tmp, cache_file)
    dropped = index.loc[~data["keep"], "name"].tolist()
    if dropped and on_error != "skip":
        raise AudioError(f"The cached build skipped unusable file(s) {dropped}; fix them or pass on_error='skip'.")
    index = index[data["keep"]].reset_index(drop=True)
    for col in ("n_samples", "n_voiced_samples", "voiced_frames", "speech_found"):
        index[col] = data[col]
    silent = index.loc[~index["speech_found"], "name"].tolist()
    if silent:
        warnings.warn(
            f"VAD found no speech in {len(silent)} clip(s), kept whole: {', '.join(silent)}", stacklevel=2
        )
    return data["X"], index
