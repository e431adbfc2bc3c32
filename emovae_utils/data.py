"""RAVDESS: where the data is, what is in it, and its cached features.

- :func:`resolve_data_dir`  explicit argument > ``EMOVAE_DATA_DIR`` > ``<project>/data/ravdess``
- :func:`ravdess_index`     one row per clip, parsed from the file names
- :func:`audio_index`       one row per audio file of any folder (your own recordings), labels where names parse
- :func:`load_features`     (N, 80, 128) log-mels in index order, built in parallel once and cached
- :func:`load_sequences`    (N, 80, T_max) whole voiced log-mels, right-padded, with each clip's length
- :func:`download_ravdess`  fetch and verify the Zenodo zip (see :mod:`emovae_utils.download`)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import multiprocessing
import os
import re
import shlex
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from .dsp import AudioError, AudioWarning, PreprocessConfig, _preprocess_path, preprocess_signal, why_undecodable
from .download import download_ravdess
from .io import atomic_write
from .paths import PROJECT_ROOT, cache_root
from .resources import available_cores

__all__ = [
    "EMOTIONS",
    "INTENSITIES",
    "ACTOR_FOLDS",
    "PROJECT_ROOT",
    "CLIPS_PER_ACTOR",
    "resolve_data_dir",
    "ravdess_index",
    "audio_index",
    "ravdess_labels",
    "emotion_names",
    "missing_clips",
    "load_features",
    "load_sequences",
    "download_ravdess",
    "clip_label",
]

#: Emotion names in RAVDESS order: ``EMOTIONS[emotion_id - 1]``.
EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
#: Intensity code (file-name field 4) -> name.
INTENSITIES: dict[int, str] = {1: "normal", 2: "strong"}
#: Speaker-independent folds (actor numbers 1-24); fold k holds out ``ACTOR_FOLDS[k]``. The same 5
#: folds as the published 8-class RAVDESS baselines quoted in the study reference (wav2vec2 ~0.82
#: UAR, log-mel CNNs ~0.57-0.62).
ACTOR_FOLDS: tuple[tuple[int, ...], ...] = (
    (2, 5, 14, 15, 16),
    (3, 6, 7, 13, 18),
    (10, 11, 12, 19, 20),
    (8, 17, 21, 23, 24),
    (1, 4, 9, 22),
)
CLIPS_PER_ACTOR = 60
_NAME = re.compile(r"^03-01-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d{2})$")  # a file stem
_LABELS = ("actor", "gender", "emotion", "emotion_id", "intensity", "statement", "repetition")
_FIRST = 10  # how many names a warning or error lists before "and N more"
_CACHE_VERSION = 2  # 2: RAVDESS keys hold modification times; caches record notes (degraded but usable clips)
_LONG_CLIP_S = 60.0  # load_sequences warns when its longest clip is longer (seconds), or when padding
_PAD_WARN_BYTES = 1 << 30  # every clip to the longest takes more memory than this (bytes)


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
            "the Actor_XX folders (.wav or .flac), or download it (208.5 MB) there with the shell command "
            f"`emovae download {shlex.quote(str(path))}` (in Python: data.download_ravdess({str(path)!r}))."
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


def _first(items: list[str], k: int = _FIRST) -> str:
    """``"a, b, c"`` or ``"a, b, c and 7 more"``."""
    return ", ".join(items[:k]) + (f" and {len(items) - k} more" if len(items) > k else "")


def _listing(items: list[str], k: int = _FIRST) -> str:
    """The first ``k`` items, one a line, then ``"... and N more"``."""
    return "\n".join(items[:k]) + (f"\n... and {len(items) - k} more" if len(items) > k else "")


def ravdess_labels(name: str) -> dict | None:
    """RAVDESS labels parsed from a file name, or ``None`` if it is not a speech clip's name.

    Parameters
    ----------
    name : str
        File stem, ``03-01-EE-II-SS-RR-AA`` (audio-only speech; emotion,
        intensity, statement, repetition, actor 01-24).

    Returns
    -------
    dict or None
        Keys ``actor``, ``gender`` ("male" for odd actors), ``emotion``,
        ``emotion_id``, ``intensity``, ``statement``, ``repetition``.

    Examples
    --------
    >>> ravdess_labels("03-01-05-02-01-02-02")["emotion"]
    'angry'
    >>> ravdess_labels("my_take_3") is None
    True
    """
    m = _NAME.match(name)
    if not m or not 1 <= int(m.group(5)) <= 24 or (m.group(1) == "01" and m.group(2) == "02"):
        return None  # actor out of range, or a "strong" neutral (RAVDESS has none)
    e, i, s, r, a = (int(g) for g in m.groups())
    return dict(actor=a, gender="male" if a % 2 else "female", emotion=EMOTIONS[e - 1], emotion_id=e,
                intensity=INTENSITIES[i], statement=s, repetition=r)


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
        labels = ravdess_labels(path.stem)
        if labels is None:
            skipped.append(str(path.relative_to(root)))
            continue
        if path.stem in seen:  # the same clip as .wav and .flac: keep the first
            skipped.append(f"{path.relative_to(root)} (duplicate of an indexed clip)")
            continue
        seen.add(path.stem)
        rows.append(dict(path=str(path.resolve()), name=path.stem, **labels))
    if warn and skipped:
        warnings.warn(
            f"Skipped {len(skipped)} file(s) that are not RAVDESS speech clips: {_first(skipped)}. "
            "data.audio_index(folder) lists any audio files.", stacklevel=2
        )
    if not rows:
        raise FileNotFoundError(
            f"No RAVDESS clips (03-01-EE-II-SS-RR-AA.wav/.flac) found under {root}. For a folder of your own "
            "recordings use index = data.audio_index(folder), then data.load_features(folder, index=index)."
        )
    index = pd.DataFrame(rows).sort_values(["actor", "name"], kind="stable").reset_index(drop=True)
    if warn:
        missing = missing_clips(index)
        if len(missing):
            per_actor = missing.groupby("actor")["name"].apply(list)
            lines = [f"Actor {a:02d}: {CLIPS_PER_ACTOR - len(n)} of {CLIPS_PER_ACTOR} present, {len(n)} missing"
                     + (f" ({', '.join(n)})" if len(n) <= 5 else "") for a, n in per_actor.items()]
            warnings.warn("Missing clips: " + "; ".join(lines) + ". data.missing_clips(index) lists them all.",
                          stacklevel=2)
    return index


def emotion_names(index: pd.DataFrame) -> dict[int, str]:
    """Class index (``emotion_id - 1``, what the models' emotion heads predict) -> emotion name, in id order.

    Examples
    --------
    >>> emotion_names(pd.DataFrame({"emotion_id": [4, 1, 4], "emotion": ["sad", "neutral", "sad"]}))
    {0: 'neutral', 3: 'sad'}
    """
    pairs = index[["emotion_id", "emotion"]].drop_duplicates().sort_values("emotion_id")
    return {int(i) - 1: name for i, name in pairs.itertuples(index=False, name=None)}


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


# Extensions of formats soundfile reads: such a file it cannot open is damaged, and audio_index keeps it in the
# index so that load_features reports it. Other audio extensions are reported by audio_index and left out.
_READABLE_SUFFIXES = frozenset(".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .caf .w64 .rf64 "
                               ".sd2 .voc".split())
_AUDIO_SUFFIXES = _READABLE_SUFFIXES | frozenset(".m4a .aac .wma .mp4 .webm .amr .3gp .mka .ac3 .alac .ape .wv "
                                                 ".mpc".split())


def audio_index(folder: str | os.PathLike, *, warn: bool = True) -> pd.DataFrame:
    """Every audio file under ``folder``, with RAVDESS labels where the name parses.

    For your own recordings: any names, rates, channel counts and formats
    (WAV, FLAC, OGG, MP3, AIFF, ...; whatever libsndfile reads). Pass the
    result to :func:`load_features` as ``index=`` to get features and a cache.
    A file of such a format that cannot be opened (0 bytes, a text file named
    ``.wav``, a damaged header) is kept, with ``sr`` missing, so that
    :func:`load_features` reports it with the others it cannot use.

    Parameters
    ----------
    folder : str or os.PathLike
        Searched recursively; hidden files and folders (names starting with
        ``.``, e.g. macOS ``._x.wav``) are ignored.
    warn : bool
        Warn once, with the count and the first names, about files in a format
        soundfile cannot read (e.g. ``.m4a``; left out) and files that cannot be
        opened (kept, with the reason).

    Returns
    -------
    pandas.DataFrame
        One row per file, sorted by path, with columns ``path`` (absolute),
        ``name`` (file stem), the :func:`ravdess_index` labels ``actor``,
        ``gender``, ``emotion``, ``emotion_id``, ``intensity``, ``statement``,
        ``repetition`` (nullable dtypes ``Int64`` and ``string``; missing,
        ``<NA>``, where the name is not ``03-01-EE-II-SS-RR-AA``), and ``sr``
        (native rate, Hz), ``channels`` (both ``Int64``), ``duration``
        (seconds); these three are missing for files that cannot be opened.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist or holds no audio file.

    Examples
    --------
    Any folder of recordings (here one RAVDESS actor's; ``ravdess_dir`` is the data folder):

    >>> folder = ravdess_dir / "Actor_01"
    >>> index = audio_index(folder)
    >>> X, index = load_features(folder, index=index, progress=False)
    >>> X.shape, index["emotion"].nunique()
    ((60, 80, 128), 8)
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"audio_index: {root} is not a folder. Pass the folder holding your recordings.")
    rows, unreadable, damaged, looked_at = [], [], [], 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        looked_at += 1
        try:
            info = sf.info(os.fspath(path))
            audio = dict(sr=int(info.samplerate), channels=int(info.channels), duration=float(info.duration))
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            suffix = path.suffix.lower()
            if suffix in _AUDIO_SUFFIXES:
                why = f"{rel} ({why_undecodable(path, err)})"
                (damaged if suffix in _READABLE_SUFFIXES else unreadable).append(why)
            if suffix not in _READABLE_SUFFIXES:
                continue
            audio = dict(sr=None, channels=None, duration=np.nan)  # kept: load_features reports it
        labels = ravdess_labels(path.stem) or {}
        rows.append(dict(path=str(path.resolve()), name=path.stem, **{k: labels.get(k) for k in _LABELS}, **audio))
    if warn and (unreadable or damaged):
        warnings.warn(" ".join(
            ([f"audio_index left out {len(unreadable)} audio file(s) that soundfile cannot read: {_first(unreadable)}. "
              "Convert them to WAV or FLAC (e.g. ffmpeg -i in.m4a out.wav)."] if unreadable else [])
            + ([f"audio_index kept {len(damaged)} file(s) that cannot be opened as audio: {_first(damaged)}. "
                "load_features lists them in one error (on_error='skip' leaves them out); replace or remove them."]
               if damaged else [])), stacklevel=2
        )
    if not rows:
        raise FileNotFoundError(
            f"No audio file that soundfile can read under {root} ({looked_at} file(s) looked at"
            + (f", {len(unreadable)} with an audio extension but unreadable" if unreadable else "")
            + "). soundfile reads WAV, FLAC, OGG, MP3, AIFF and more; convert other formats to WAV or FLAC."
        )
    columns = ["path", "name", *_LABELS, "sr", "channels", "duration"]
    index = pd.DataFrame(rows, columns=columns)
    for col in ("actor", "emotion_id", "statement", "repetition", "sr", "channels"):
        index[col] = index[col].astype("Int64")
    for col in ("gender", "emotion", "intensity"):
        index[col] = index[col].astype("string")
    return index


def _cache_key(files: list[tuple], config: PreprocessConfig, by: str = "name", kind: str = "windows") -> str:
    blob = {"v": _CACHE_VERSION, "config": config.to_json(), "files": files}
    if by != "name":  # RAVDESS files are keyed by name (the folder can move), others by path
        blob["by"] = by
    if kind != "windows":  # likewise: fixed-window keys are unchanged, whole sequences get keys of their own
        blob["kind"] = kind
    return hashlib.sha256(json.dumps(blob).encode()).hexdigest()


def _checksum(X: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(X).view(np.uint8))


_INFO = ("n_samples", "n_voiced_samples", "voiced_frames", "speech_found")


def _read_cache(path: Path, key: str, n: int) -> dict[str, np.ndarray] | None:
    """The cache's arrays if it is complete and was built for this key and these ``n`` files, else None."""
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        keep, X = data["keep"], data["X"]
        n_kept = int(keep.sum())
        errors = data.get("errors", np.array([], dtype=str))  # caches from before skips were recorded
        data.setdefault("notes", np.array([], dtype=str))
        ok = (
            str(data["key"]) == key
            and keep.dtype == bool and keep.shape == (n,)
            and X.shape[0] == n_kept and all(len(data[c]) == n_kept for c in _INFO)
            and len(errors) == n - n_kept
            and int(data["checksum"]) == _checksum(X)
        )
        data["errors"] = errors
    except Exception:  # truncated, corrupted or foreign file: rebuild
        ok = False
    if not ok:
        warnings.warn(f"Feature cache {path} is stale or corrupted; rebuilding it.", stacklevel=4)
        return None
    return data


def _write_cache(path: Path, key: str, data: dict[str, np.ndarray]) -> None:
    """Save the cache atomically; one warning, and nothing else, if it cannot be written."""
    try:
        atomic_write(path, lambda tmp: np.savez(
            tmp, key=np.array(key), checksum=np.array(_checksum(data["X"]), dtype=np.int64), **data))
    except OSError as err:  # read-only or full disk, a file where the folder should be, ...
        warnings.warn(
            f"Could not write the feature cache {path} ({err.strerror or err}). The features are returned, "
            "but the next call computes them again: pass cache_dir=... or set EMOVAE_CACHE_DIR to a writable "
            "folder with free space.", stacklevel=4
        )


def _index_files(index: pd.DataFrame, data_dir: str | os.PathLike | None) -> tuple[pd.DataFrame, list]:
    """Check a caller's index; absolute paths, and the (path, size, mtime) list that keys its cache."""
    if not isinstance(index, pd.DataFrame) or "path" not in index.columns:
        raise ValueError(
            f"index must be a pandas.DataFrame with a 'path' column (e.g. data.audio_index(folder)), "
            f"not {type(index).__name__}" + (f" with columns {list(index.columns)}" if hasattr(index, "columns") else "")
        )
    if len(index) == 0:
        raise ValueError("index has no rows: nothing to preprocess. Check the folder given to data.audio_index.")
    root = Path(data_dir).expanduser().resolve() if data_dir is not None else None
    paths = []
    for p in index["path"]:
        p = Path(os.fspath(p)).expanduser()
        paths.append((p if p.is_absolute() or root is None else root / p).resolve())
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"index lists {len(missing)} file(s) that do not exist: {_first(missing)}. "
            "Rebuild the index with data.audio_index(folder)."
        )
    files = []
    for p in paths:
        st = p.stat()
        under = root is not None and p.is_relative_to(root)
        files.append((p.relative_to(root).as_posix() if under else str(p), st.st_size, st.st_mtime_ns))
    index = index.reset_index(drop=True).copy()
    index["path"] = [str(p) for p in paths]
    return index, files


def _work(args: tuple[str, PreprocessConfig, bool]):
    """Features, ClipInfo and None of one file, or None, None and why it cannot be used."""
    path, config, whole = args
    try:
        features, info = _preprocess_path(path, config, whole)
        return features, info, None
    except AudioError as err:
        return None, None, str(err)


def _warm_up(config: PreprocessConfig) -> None:
    # First calls import scipy.signal, soxr and numba-backed helpers (1-2 s);
    # paying that once here means forked workers inherit it.
    t = np.arange(48000) / 48000
    preprocess_signal((0.5 * np.sin(2 * np.pi * 220 * t) * (t > 0.3)).astype(np.float32), 48000, config)


def _compute(paths: list[str], config: PreprocessConfig, workers: int, progress: bool, whole: bool = False):
    _warm_up(config)
    jobs = [(p, config, whole) for p in paths]
    bar = dict(total=len(jobs), desc="Preprocessing clips", unit="clip", disable=not progress)
    if workers <= 1:
        return [_work(j) for j in tqdm(jobs, **bar)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(_work, jobs, chunksize=8), **bar))


def _pad_right(S: list[np.ndarray], pad_db: float | None = None) -> np.ndarray:
    """Stack (n_mels, T_i) spectrograms into (N, n_mels, max T_i), float32, right-padded.

    The padding is each clip's own minimum (``pad_db=None``) or the constant ``pad_db``.
    """
    out = np.empty((len(S), S[0].shape[0], max(s.shape[1] for s in S)), dtype=np.float32)
    for k, s in enumerate(S):
        out[k, :, : s.shape[1]] = s
        out[k, :, s.shape[1]:] = s.min() if pad_db is None else pad_db
    return out


def _load(data_dir, cache_dir, config, *, index, workers, progress, on_error, whole):
    """What :func:`load_features` (``whole=False``) and :func:`load_sequences` (``whole=True``) share:
    index, cache key, cached read or parallel build, skips and warnings. Returns ``(X, index)``."""
    kind = "sequences" if whole else "windows"
    if on_error not in ("raise", "skip"):
        raise ValueError(
            f"on_error={on_error!r} is not allowed: use 'raise' (one error listing every unusable file) "
            "or 'skip' (leave them out, with one warning)."
        )
    config = config or PreprocessConfig()
    if index is None:
        index = ravdess_index(data_dir)
        stats = [os.stat(p) for p in index["path"]]  # an edit in place changes the modification time
        key = _cache_key([(n, st.st_size, st.st_mtime_ns) for n, st in zip(index["name"], stats)], config, kind=kind)
    else:
        index, files = _index_files(index, data_dir)
        key = _cache_key(files, config, by="path", kind=kind)
    cache_file = cache_root(cache_dir) / f"{'sequences' if whole else 'features'}-{key[:20]}.npz"
    try:
        cached = cache_file.is_file()
    except OSError:
        cached = False
    data = _read_cache(cache_file, key, len(index)) if cached else None
    if data is None:
        results = _compute(list(index["path"]), config, workers or available_cores(), progress, whole)
        errors = [err for _, _, err in results if err]
        good = [(f, i) for f, i, err in results if err is None]
        if not good:
            raise AudioError(
                f"None of the {len(index)} file(s) could be preprocessed; the first reasons:\n{_listing(errors)}"
                "\nCheck that the folder holds speech recordings that play (WAV or FLAC)."
            )
        keep = np.array([err is None for _, _, err in results])
        if whole:
            _warn_long(_names(index[keep]), [f.shape[1] for f, _ in good], config)
        data = dict(
            X=_pad_right([f for f, _ in good]) if whole else np.stack([f for f, _ in good]).astype(np.float32),
            keep=keep,
            errors=np.array(errors, dtype=str),
            notes=np.array([f"{p}: {note}" for p, (_, i, _) in zip(index["path"], results) if i for note in i.notes],
                           dtype=str),
            n_samples=np.array([i.n_samples for _, i in good]),
            n_voiced_samples=np.array([i.n_voiced_samples for _, i in good]),
            voiced_frames=np.array([i.n_voiced_frames for _, i in good]),
            speech_found=np.array([i.speech_found for _, i in good]),
        )
        _write_cache(cache_file, key, data)
    elif whole:
        _warn_long(_names(index[data["keep"]]), data["voiced_frames"], config)
    return data["X"], _report(index, data, on_error)


def _names(index: pd.DataFrame) -> list[str]:
    """The clips' names for messages (file paths where the index has no ``name`` column)."""
    return index["name" if "name" in index.columns else "path"].astype(str).tolist()


def _report(index: pd.DataFrame, data: dict[str, np.ndarray], on_error: str) -> pd.DataFrame:
    """Raise or warn (once each) about the unusable, degraded and silent clips; the index of the kept ones."""
    errors = [str(e) for e in data["errors"]]
    if errors and on_error == "raise":
        raise AudioError(
            f"{len(errors)} of {len(index)} file(s) could not be preprocessed. Fix or remove them, or pass "
            f"on_error='skip' to leave them out:\n{_listing(errors)}"
        )
    if errors:
        warnings.warn(
            f"Skipped {len(errors)} of {len(index)} file(s) that could not be preprocessed (on_error='skip'):\n"
            f"{_listing(errors)}\nThe cache remembers these; fixed files (a new modification time) are retried.",
            stacklevel=4
        )
    notes = [str(n) for n in data["notes"]]
    if notes:
        warnings.warn(AudioWarning(f"{len(notes)} clip(s) give usable but degraded features:\n{_listing(notes)}"),
                      stacklevel=4)
    index = index[data["keep"]].reset_index(drop=True)
    for col in _INFO:
        index[col] = data[col]
    silent = _names(index[~index["speech_found"]])
    if silent:
        warnings.warn(f"VAD found no speech in {len(silent)} clip(s), kept whole: {_first(silent)}", stacklevel=4)
    return index


def _warn_long(names: list[str], frames, config: PreprocessConfig) -> None:
    """Warn when load_sequences' padded array is large or a clip very long, with the length and what to do."""
    frames = np.asarray(frames, dtype=np.int64)
    k, n_bytes = int(np.argmax(frames)), len(frames) * config.n_mels * int(frames.max()) * 4
    seconds = int(frames[k]) * config.hop_length / config.sr
    if seconds > _LONG_CLIP_S or n_bytes > _PAD_WARN_BYTES:
        warnings.warn(
            f"load_sequences pads all {len(frames)} clips to the longest, {names[k]} ({int(frames[k])} frames, "
            f"{seconds:.0f} s of voiced audio): the array takes {n_bytes / 2**30:.2f} GiB (the clips' own frames "
            f"{4 * config.n_mels * int(frames.sum()) / 2**30:.2f} GiB). Cut long recordings into utterances of a few "
            "seconds, leave them out (index=...), or use load_features (fixed windows of "
            f"{config.n_frames} frames).", stacklevel=4
        )


def load_features(
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    config: PreprocessConfig | None = None,
    *,
    index: pd.DataFrame | None = None,
    workers: int | None = None,
    progress: bool = True,
    on_error: str = "raise",
) -> tuple[np.ndarray, pd.DataFrame]:
    """Log-mel features of every clip, in :func:`ravdess_index` order (or of the rows of ``index``).

    The first call preprocesses all clips on all cores with a progress bar
    and writes one cache file keyed by the configuration and the file list
    (names for RAVDESS, paths for a given ``index``; sizes and modification
    times), recording which files could not be used; later calls load it. A
    changed configuration, file set or file (edited in place), or a truncated
    or corrupted cache, triggers a rebuild. A cache that cannot be written (read-only or full
    disk) is skipped with one warning; the features are still returned.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        See :func:`resolve_data_dir`. With ``index``: the folder its relative
        paths are resolved against (and the cache keyed by, so the folder can move).
    cache_dir : str or os.PathLike, optional
        Defaults to ``$EMOVAE_CACHE_DIR`` or ``~/.cache/emovae``.
    config : PreprocessConfig, optional
        Defaults to the study's values.
    index : pandas.DataFrame, optional
        Rows to preprocess, with a ``path`` column, e.g. :func:`audio_index`
        of a folder of your own recordings; any other columns are kept. By
        default :func:`ravdess_index` of ``data_dir``.
    workers : int, optional
        Processes; defaults to the number of cores.
    progress : bool
        Show a progress bar.
    on_error : {"raise", "skip"}
        What to do with unusable files (0 bytes, not audio, truncated, empty,
        silent, NaN/inf, shorter than one analysis window, channels that
        cancel in the mono downmix): raise one error listing them with their
        causes, or drop them from the index with one warning giving their count
        and the first causes. A cached build remembers its skips and reports
        the same ones.

    Returns
    -------
    X : np.ndarray, float32, shape (N, n_mels, n_frames)
        (N, 80, 128) with the study's settings.
    index : pandas.DataFrame
        The index (without skipped rows, renumbered 0..N-1) plus ``n_samples``
        and ``n_voiced_samples`` (samples at ``config.sr`` before and after
        the VAD), ``voiced_frames`` (mel frames before fixing to
        ``n_frames``) and ``speech_found`` (False where the VAD found nothing
        and the clip was kept whole).

    Raises
    ------
    AudioError
        Listing the unusable files (``on_error="raise"``); or, whatever
        ``on_error``, if no file at all could be used.
    FileNotFoundError
        If the folder holds no RAVDESS clip, or ``index`` lists missing files.

    Warns
    -----
    UserWarning
        Once for skipped files, once for clips in which the VAD found no
        speech, once if the cache cannot be written.
    AudioWarning
        Once for clips whose features are usable but degraded, with the cause
        (``ClipInfo.notes``: a rate too low for the mel range).

    Examples
    --------
    >>> X, index = load_features(ravdess_dir, progress=False)  # or load_features(): $EMOVAE_DATA_DIR
    >>> X.shape, X.dtype
    ((1440, 80, 128), dtype('float32'))

    Your own recordings: ``load_features("my_recordings", index=audio_index("my_recordings"))``
    (see :func:`audio_index`).
    """
    return _load(data_dir, cache_dir, config, index=index, workers=workers, progress=progress,
                 on_error=on_error, whole=False)


def load_sequences(*args: Any, pad_db: float | None = None, **kwargs: Any) -> tuple[np.ndarray, pd.DataFrame]:
    """Whole voiced log-mels of every clip, right-padded to the longest, with each clip's length.

    The recipe of :func:`load_features` (resample, VAD, peak-normalise,
    :func:`~emovae_utils.dsp.log_mel`) without its last step,
    :func:`~emovae_utils.dsp.fix_frames`: clip ``k`` is ``X[k, :, :n_frames[k]]``,
    all its voiced frames, and ``fix_frames(X[k, :, :n_frames[k]], config.n_frames)``
    is exactly ``load_features(...)[0][k]``. Built in parallel once and cached
    like :func:`load_features`, in a file of its own (``sequences-<key>.npz``,
    keyed by the configuration, the file list and the kind of features).

    Parameters
    ----------
    *args, **kwargs
        ``data_dir, cache_dir, config`` and the keywords ``index, workers,
        progress, on_error``: as :func:`load_features` (same names, defaults
        and order).
    pad_db : float, optional
        Value of the padded frames ``X[k, :, n_frames[k]:]``: ``None`` (default)
        repeats clip ``k``'s own minimum (its dB floor, so plots of the padded
        array show silence), a number is used as is. The padding carries no
        information: a model must mask it (see
        :class:`emovae_utils.models.sequence_vae.SequenceVAE`, which never sees it).

    Returns
    -------
    X : np.ndarray, float32, shape (N, n_mels, T_max)
        ``T_max = index.n_frames.max()`` (246 frames, about 3.9 s, on RAVDESS
        with the study's settings; the clips have 85 to 246 voiced frames,
        median 128).
    index : pandas.DataFrame
        As :func:`load_features`'s, plus ``n_frames`` (int64): each clip's true
        length, equal to ``voiced_frames``.

    Raises
    ------
    AudioError, FileNotFoundError
        As :func:`load_features`.

    Warns
    -----
    UserWarning, AudioWarning
        As :func:`load_features`; and once when the longest clip is over a
        minute or the padded array over 1 GiB, with its length and what to do.

    Examples
    --------
    >>> X, index = load_sequences(ravdess_dir, progress=False)
    >>> X.shape, int(index.n_frames.min()), int(index.n_frames.max())
    ((1440, 80, 246), 85, 246)
    >>> from emovae_utils.train import fit
    >>> from emovae_utils.models.sequence_vae import SequenceVAE
    >>> history = fit(SequenceVAE(), X[:64], cond=index.n_frames.to_numpy()[:64], epochs=1, progress=False)
    >>> len(history)
    1
    """
    if pad_db is not None and not np.isfinite(pad_db):
        raise ValueError(f"pad_db must be a finite number of dB or None (each clip's minimum), not {pad_db!r}")
    options = inspect.signature(load_features).bind(*args, **kwargs)  # its names, order and defaults
    options.apply_defaults()
    X, index = _load(*options.args, **options.kwargs, whole=True)
    n_frames = index["voiced_frames"].to_numpy().astype(np.int64)
    index["n_frames"] = n_frames
    if pad_db is not None:
        X = X.copy()
        for k, n in enumerate(n_frames):
            X[k, :, n:] = pad_db
    return X, index


def clip_label(row: object, i: int | None = None) -> str:
    """Drop-down label of one clip, e.g. ``"Actor 01 · happy · strong · rep 2"``.

    ``row`` is a mapping/Series with some of the columns ``actor``, ``emotion``,
    ``intensity``, ``repetition`` (and ``statement``, shown when not 1);
    missing columns and missing values (``None``, NaN, ``<NA>``: the labels of
    own recordings whose names do not parse) are left out; ``name``, then ``i``,
    is used when nothing is known.

    Examples
    --------
    >>> clip_label({"actor": 1, "emotion": "happy", "intensity": 2, "statement": 1, "repetition": 2})
    'Actor 01 · happy · strong · rep 2'
    >>> clip_label({"name": "take1", "emotion": None}), clip_label({}, 7)
    ('take1', 'clip 7')
    """
    raw = row.get if hasattr(row, "get") else (lambda k, d=None: d)

    def get(key: str, default: object = None) -> object:
        value = raw(key, default)
        return default if value is None or (np.ndim(value) == 0 and bool(pd.isna(value))) else value

    def as_int(value: object) -> object:
        try:
            return int(value)
        except (TypeError, ValueError):
            return value

    actor, emotion, intensity = get("actor"), get("emotion"), get("intensity")
    statement, rep = as_int(get("statement")), as_int(get("repetition"))
    parts: list[str] = []
    if actor is not None:
        actor = as_int(actor)
        parts.append(f"Actor {actor:02d}" if isinstance(actor, int) else f"Actor {actor}")
    if emotion is not None:
        parts.append(str(emotion))
    if intensity is not None:
        parts.append(str(INTENSITIES.get(as_int(intensity), intensity)))
    if statement is not None and statement != 1:
        parts.append(f"stmt {statement}")
    if rep is not None:
        parts.append(f"rep {rep}")
    if not parts:
        name = get("name", None)
        if name is not None:
            return str(name)
        return f"clip {i}" if i is not None else "clip"
    return " · ".join(parts)
