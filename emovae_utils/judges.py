"""Judges of generated audio: is the speaker kept, is the emotion heard, how close is the waveform.

Every judge reads waveforms (any rate, resampled to :data:`JUDGE_SR`, 16 kHz):
originals, resyntheses, reconstructions, conversions.

* Speaker: :func:`speaker_embeddings` (resemblyzer's speaker encoder, whose
  weights ship in its wheel: nothing is downloaded) and :func:`speaker_cosine`.
  :func:`speaker_scale` measures the same cosine between real clips (same
  actor, other clip; other actors), the scale a reconstruction's cosine is read
  against.
* Emotion: :func:`fit_emotion_judge`, eGeMAPS functionals
  (:func:`emovae_utils.metrics.baselines.egemaps_cached`) + standardise +
  logistic regression, fitted on real clips of training actors only (it refuses
  test actors' rows); :meth:`EmotionJudge.predict` on any waveforms. The CNN
  judge lives elsewhere: its per-clip predictions are accepted as they are.
* Fidelity against a reference: :func:`pesq_wb` (PESQ, wide band) and :func:`stoi`.

:func:`judge_rows` scores one set of waveforms by every judge it has inputs
for, as long rows (``judge``, ``value``, ``n_clips`` and the caller's keys,
e.g. ``model``, ``stage``, ``seed``); :func:`judge_table` turns the rows of
several runs into the table :data:`TABLE_COLUMNS` (a t-interval over runs,
:func:`emovae_utils.metrics.intervals.mean_interval`).

Examples
--------
>>> rows = judge_rows([np.ones(4)] * 2, cnn_predictions=["sad", "sad"], emotions=["sad", "angry"], model="vae",
...                  stage="original")
>>> rows[["model", "stage", "judge", "value", "n_clips"]].values.tolist()
[['vae', 'original', 'cnn', 0.5, 2]]
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .dsp import AudioError, PreprocessConfig, load_mono, peak_normalise, preprocess_audio, resample
from .extras import require
from .metrics.baselines import EGEMAPS_AUDIO, egemaps_cached, egemaps_functionals
from .metrics.intervals import mean_interval
from .resources import one_blas_thread

__all__ = [
    "JUDGE_SR",
    "JUDGES",
    "STAGES",
    "TABLE_COLUMNS",
    "real_waveforms",
    "speaker_encoder",
    "speaker_embeddings",
    "speaker_cosine",
    "speaker_scale",
    "EmotionJudge",
    "fit_emotion_judge",
    "pesq_wb",
    "stoi",
    "judge_rows",
    "judge_table",
]

#: The rate every judge works at (Hz): resemblyzer's encoder, PESQ wide band, the eGeMAPS baseline.
JUDGE_SR = 16000
#: Judge names, in table order.
JUDGES: tuple[str, ...] = ("cnn", "egemaps", "speaker_cos", "pesq", "stoi")
#: What a judged waveform is: the real clip, its log-mel inverted, a model's reconstruction, a conversion;
#: and the two speaker-scale references of :func:`speaker_scale` (pairs of real clips).
STAGES: tuple[str, ...] = ("original", "resynthesis", "reconstruction", "conversion",
                           "same_actor_other_clip", "other_actor")
#: Columns of the judges' table (:func:`judge_table`).
TABLE_COLUMNS: tuple[str, ...] = ("model", "stage", "judge", "value", "ci_low", "ci_high", "n_runs")

Source = np.ndarray | str | os.PathLike


def _waveform(source: Source, sr: int) -> np.ndarray:
    """One mono float32 waveform at :data:`JUDGE_SR`, from an array at ``sr`` or an audio file (its own rate)."""
    if isinstance(source, (str, os.PathLike)):
        y, sr = load_mono(source)
    else:
        y = np.asarray(source, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"a waveform must be mono and non-empty, shape (n,); got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("a waveform holds NaN or inf samples: it came from a failed computation")
    return resample(y, int(sr), JUDGE_SR)


def _waveforms(sources: Sequence[Source] | np.ndarray, sr: int) -> list[np.ndarray]:
    """:func:`_waveform` of each source; a 2-D array is one waveform per row."""
    return [_waveform(s, sr) for s in sources]


def real_waveforms(index: pd.DataFrame, audio: str = "window",
                   config: PreprocessConfig | None = None) -> list[np.ndarray]:
    """The real clips of ``index`` as 16 kHz waveforms, in one of the three versions eGeMAPS knows.

    Parameters
    ----------
    index : pandas.DataFrame
        Rows of clips with a ``path`` column (:func:`emovae_utils.data.ravdess_index`).
    audio : {"raw", "preprocessed", "window"}, default "window"
        As :data:`emovae_utils.metrics.baselines.EGEMAPS_AUDIO`: the file
        resampled; after VAD and peak normalisation; or only the 2.048 s of it
        the VAE's 128 frames cover (what a reconstruction stands for).
    config : PreprocessConfig, optional
        Recipe of ``"preprocessed"`` and ``"window"`` (default: the study's).

    Returns
    -------
    list of np.ndarray, float32, shape (n,)
        At :data:`JUDGE_SR` (``config.sr`` must equal it for the preprocessed versions).

    Raises
    ------
    emovae_utils.dsp.AudioError
        Naming the file, for audio the recipe cannot use (silent, damaged).

    Examples
    --------
    >>> from emovae_utils.data import ravdess_index
    >>> [w.shape for w in real_waveforms(ravdess_index(ravdess_dir).head(2))]
    [(32768,), (32768,)]
    """
    if audio not in EGEMAPS_AUDIO:
        raise ValueError(f"audio={audio!r}: must be one of {', '.join(map(repr, EGEMAPS_AUDIO))}")
    config = config or PreprocessConfig()
    if audio != "raw" and config.sr != JUDGE_SR:
        raise ValueError(f"config.sr={config.sr}: the judges work at {JUDGE_SR} Hz")
    out = []
    for path in index["path"]:
        y, sr = load_mono(path)
        if audio == "raw":
            out.append(resample(y, sr, JUDGE_SR))
            continue
        try:
            out.append(preprocess_audio(y, sr, config, window=audio == "window")[0])
        except AudioError as err:
            raise AudioError(f"{path}: {err}") from err
    return out


# --- speaker -------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch and numpy's BLAS on one thread for the block, the previous torch setting restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with one_blas_thread():
            yield
    finally:
        torch.set_num_threads(before)


_NO_RESEMBLYZER = ("the speaker judge needs resemblyzer, which is not installed: pip install --no-deps "
                   "resemblyzer==0.1.4 (without its declared dependencies: its webrtcvad would replace "
                   "webrtcvad-wheels' module with one that no longer imports)")


@functools.lru_cache(maxsize=1)
def speaker_encoder() -> Any:
    """resemblyzer's ``VoiceEncoder`` on the CPU, loaded once per process (cached).

    Its weights (``pretrained.pt``, 17 MB) ship inside the resemblyzer wheel:
    loading reads that file and opens no network connection.

    Returns
    -------
    resemblyzer.VoiceEncoder
        In eval mode; 256-dimensional, unit-norm embeddings of 16 kHz speech.

    Examples
    --------
    >>> speaker_encoder() is speaker_encoder()
    True
    """
    with warnings.catch_warnings():  # resemblyzer imports scipy.ndimage.morphology (deprecated namespace)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import resemblyzer
        except ImportError as exc:
            if exc.name and exc.name.split(".")[0] != "resemblyzer":
                raise  # installed but broken: its own error says more
            raise ImportError(_NO_RESEMBLYZER, name=exc.name) from exc
    with _one_thread():
        return resemblyzer.VoiceEncoder(device="cpu", verbose=False)


def speaker_embeddings(waves: Sequence[Source] | np.ndarray, sr: int = JUDGE_SR, *,
                       trim: bool = True) -> np.ndarray:
    """resemblyzer speaker embedding of each waveform.

    Each waveform is resampled to 16 kHz, brought to resemblyzer's level
    (-30 dBFS, only ever raised) and, with ``trim``, its long silences are cut
    with resemblyzer's VAD (as ``resemblyzer.preprocess_wav``; where that would
    leave under 0.25 s, the whole waveform is kept). Runs on one CPU thread.

    Parameters
    ----------
    waves : sequence of np.ndarray (n,) or paths, or np.ndarray (N, n)
        Mono waveforms at ``sr`` (any lengths), or audio files (their own rate).
    sr : int, default 16000
        Rate of the waveforms given as arrays.
    trim : bool, default True
        Cut long silences first.

    Returns
    -------
    np.ndarray, float32, shape (N, 256)
        Unit-norm rows: their dot product is the cosine (:func:`speaker_cosine`).

    Examples
    --------
    >>> t = np.arange(32000) / 16000
    >>> E = speaker_embeddings([np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))])
    >>> E.shape, bool(np.isclose(np.linalg.norm(E[0]), 1, atol=1e-4))
    ((1, 256), True)
    """
    encoder = speaker_encoder()  # first: it imports resemblyzer, or says which extra installs it
    import resemblyzer.audio as rz_audio

    rows = []
    with _one_thread():
        for y in _waveforms(waves, sr):
            wav = rz_audio.normalize_volume(y, -30, increase_only=True)
            if trim:
                trimmed = rz_audio.trim_long_silences(wav)
                wav = trimmed if len(trimmed) >= JUDGE_SR // 4 else wav
            rows.append(encoder.embed_utterance(wav.astype(np.float32)))
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), 256)


def speaker_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Cosine similarity of speaker embeddings, row by row.

    Parameters
    ----------
    a, b : np.ndarray, shape (N, D) or (D,)
        Embeddings (:func:`speaker_embeddings`); need not be unit-norm. One of
        them may be a single vector, compared with every row of the other.

    Returns
    -------
    np.ndarray, shape (N,), or float
        A float when both are single vectors.

    Examples
    --------
    >>> speaker_cosine(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([2.0, 0.0])).round(3).tolist()
    [1.0, 0.707]
    >>> speaker_cosine(np.array([1.0, 0.0]), np.array([0.0, 3.0]))
    0.0
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape[-1] != b.shape[-1] or a.ndim > 2 or b.ndim > 2:
        raise ValueError(f"embeddings must be (N, D) or (D,) with the same D; got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    cos = np.sum(a * b, axis=-1) / np.where(norms > 0, norms, np.nan)
    return float(cos) if np.ndim(cos) == 0 else cos


def speaker_scale(index: pd.DataFrame, *, embeddings: np.ndarray | None = None, audio: str = "window",
                  config: PreprocessConfig | None = None) -> pd.DataFrame:
    """Speaker cosine between real clips: every pair, same actor (other clip) or other actors.

    The scale a generated clip's cosine to its original is read against: a
    reconstruction near ``same_actor_other_clip`` keeps the speaker as well as
    another recording of that actor does; one near ``other_actor`` has lost it.

    Parameters
    ----------
    index : pandas.DataFrame
        Real clips, columns ``actor``, ``name`` and (unless ``embeddings``) ``path``.
    embeddings : np.ndarray, shape (len(index), 256), optional
        Their :func:`speaker_embeddings`, if already computed.
    audio : {"raw", "preprocessed", "window"}, default "window"
        Which audio of each clip is embedded (:func:`real_waveforms`).
    config : PreprocessConfig, optional

    Returns
    -------
    pandas.DataFrame
        One row per unordered pair of clips, columns ``stage``
        (``"same_actor_other_clip"`` or ``"other_actor"``), ``judge``
        (``"speaker_cos"``), ``value``, ``actor_a``, ``actor_b``, ``name_a``,
        ``name_b``. Summarise with ``.groupby("stage")["value"].describe()``.

    Notes
    -----
    Measured (actors 1-8, 12 clips each drawn over all emotions, ``audio="raw"``):
    same actor 0.68 on average (5th percentile 0.52), other actors 0.52 (95th
    percentile 0.69); ``"window"``: 0.69 and 0.55. Emotion moves the voice:
    neutral and calm clips only give 0.80 and 0.54. A fast Griffin-Lim
    resynthesis of a window against the window: 0.96 (16 clips).

    Examples
    --------
    >>> from emovae_utils.data import ravdess_index
    >>> index = ravdess_index(ravdess_dir)
    >>> clips = index[index.actor.isin([1, 2]) & (index.statement == 1)].groupby("actor").head(2)
    >>> scale = speaker_scale(clips)
    >>> scale["stage"].value_counts().sort_index().to_dict()
    {'other_actor': 4, 'same_actor_other_clip': 2}
    """
    E = speaker_embeddings(real_waveforms(index, audio, config)) if embeddings is None else np.asarray(embeddings)
    if E.shape[0] != len(index):
        raise ValueError(f"embeddings has {E.shape[0]} rows for {len(index)} clips")
    i, j = np.triu_indices(len(index), k=1)
    actors, names = index["actor"].to_numpy(), index["name"].astype(str).to_numpy()
    same = actors[i] == actors[j]
    return pd.DataFrame({
        "stage": np.where(same, "same_actor_other_clip", "other_actor"),
        "judge": "speaker_cos",
        "value": speaker_cosine(E[i], E[j]) if len(i) else np.empty(0),
        "actor_a": actors[i], "actor_b": actors[j], "name_a": names[i], "name_b": names[j],
    })


# --- emotion -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmotionJudge:
    """A fitted eGeMAPS emotion judge (:func:`fit_emotion_judge`) and what it was fitted on.

    Attributes
    ----------
    pipeline : sklearn.pipeline.Pipeline
        ``StandardScaler`` -> ``LogisticRegression`` over the 88 eGeMAPS v02 functionals.
    train_names : tuple of str
        The clips it was fitted on (``index.name``).
    train_actors : tuple of int
        Their actors.
    test_actors : tuple of int
        The actors it was told to keep out (none of ``train_actors``).
    audio : str
        Which audio of the real clips it learned from (:data:`~emovae_utils.metrics.baselines.EGEMAPS_AUDIO`).
    peak : {"max", "absmax"}
        The peak normalisation of those clips (``PreprocessConfig.peak``), applied to judged waveforms too.
    """

    pipeline: Pipeline
    train_names: tuple[str, ...]
    train_actors: tuple[int, ...]
    test_actors: tuple[int, ...]
    audio: str
    peak: str = "max"

    def predict(self, waves: Sequence[Source] | np.ndarray, sr: int = JUDGE_SR) -> np.ndarray:
        """Emotion of each waveform (arrays at ``sr`` or audio files), measured on all of it (no VAD, no crop).

        Unless the judge learned from the raw files (``audio="raw"``), each
        waveform is first peak-normalised as the real clips were
        (:func:`emovae_utils.dsp.peak_normalise`), so a rendering's level does
        not sway the loudness functionals.

        Returns
        -------
        np.ndarray, shape (N,)
            In the labels the judge was fitted with (e.g. emotion names).
        """
        waves = _waveforms(waves, sr)
        if self.audio != "raw":
            waves = [peak_normalise(y, self.peak) for y in waves]
        feats = egemaps_functionals(waves, JUDGE_SR, audio="raw", progress=False)
        return self.pipeline.predict(feats.to_numpy())


def fit_emotion_judge(index: pd.DataFrame, test_actors: Sequence[int], *, label: str = "emotion",
                      audio: str = "window", config: PreprocessConfig | None = None,
                      cache_dir: str | os.PathLike | None = None, random_state: int = 0,
                      functionals: pd.DataFrame | None = None) -> EmotionJudge:
    """Fit the classical emotion judge on real clips of training actors: eGeMAPS + standardise + logistic regression.

    Parameters
    ----------
    index : pandas.DataFrame
        The training clips (columns ``path``, ``name``, ``actor`` and ``label``),
        e.g. ``ravdess_index()`` without the test actors' rows.
    test_actors : sequence of int
        Actors whose clips the judge must never see (those it will judge, or
        a model's held-out actors). Required; may be empty for a judge meant
        only for speech from elsewhere.
    label : str, default "emotion"
        Column to predict.
    audio : {"raw", "preprocessed", "window"}, default "window"
        Which audio of each clip the functionals are measured on
        (:func:`~emovae_utils.metrics.baselines.egemaps_cached`, cached per
        file list); ``"window"``: the 2.05 s a reconstruction stands for.
    config : PreprocessConfig, optional
    cache_dir : path-like, optional
        Where the functionals are cached (default: the feature cache).
    random_state : int, default 0
    functionals : pandas.DataFrame, optional
        The eGeMAPS functionals of ``audio``, indexed by clip name, for these
        clips or more (e.g. every clip, computed once for several folds);
        default: computed (and cached) for ``index``'s clips.

    Returns
    -------
    EmotionJudge

    Raises
    ------
    ValueError
        If ``index`` holds a row of a test actor (naming them), or fewer than two classes.

    Examples
    --------
    >>> from emovae_utils.data import ravdess_index
    >>> index = ravdess_index(ravdess_dir)
    >>> fit_emotion_judge(index, test_actors=[2, 5])
    Traceback (most recent call last):
    ValueError: fit_emotion_judge refuses rows of test actors [2, 5] (120 of 1440 rows): pass index[~index.actor.isin(test_actors)]
    >>> train = index[index.actor.isin([1, 3]) & (index.statement == 1) & (index.repetition == 1)]
    >>> judge = fit_emotion_judge(train, test_actors=[2, 5])
    >>> judge.train_actors, len(judge.train_names)
    ((1, 3), 30)
    """
    test_actors = tuple(sorted(int(a) for a in test_actors))
    leak = index["actor"].isin(test_actors)
    if leak.any():
        raise ValueError(f"fit_emotion_judge refuses rows of test actors {sorted(set(index.loc[leak, 'actor']))} "
                         f"({int(leak.sum())} of {len(index)} rows): pass index[~index.actor.isin(test_actors)]")
    labels = index[label].to_numpy()
    if len(np.unique(labels)) < 2:
        raise ValueError(f"fit_emotion_judge needs at least two classes of {label!r}; got {np.unique(labels)}")
    if functionals is None:
        functionals = egemaps_cached(index["path"], cache_dir, names=index["name"], audio=audio, config=config,
                                     sampling_rate=JUDGE_SR, progress=False)
    feats = functionals.loc[index["name"]]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced",
                                                                  random_state=random_state))
    with one_blas_thread():
        pipeline.fit(feats.to_numpy(), labels)
    return EmotionJudge(pipeline, tuple(index["name"].astype(str)), tuple(sorted(set(index["actor"].astype(int)))),
                        test_actors, audio, (config or PreprocessConfig()).peak)


# --- fidelity against a reference ----------------------------------------------------------------------------

def _pair(reference: Source, degraded: Source, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Both at 16 kHz, cut to their common length."""
    ref, deg = _waveform(reference, sr), _waveform(degraded, sr)
    n = min(len(ref), len(deg))
    return ref[:n].astype(np.float64), deg[:n].astype(np.float64)


def pesq_wb(reference: Source, degraded: Source, sr: int = JUDGE_SR) -> float:
    """Wide-band PESQ (ITU-T P.862.2) of ``degraded`` against ``reference``.

    Parameters
    ----------
    reference, degraded : np.ndarray (n,) or path
        Mono waveforms at ``sr`` (or files), resampled to 16 kHz and compared
        over their common length (the longer one is cut at the end).
    sr : int, default 16000

    Returns
    -------
    float
        MOS-LQO, from about 1.0 (bad) to 4.64 (identical); NaN where PESQ finds
        no speech in the reference.

    Examples
    --------
    >>> t = np.arange(32000) / 16000
    >>> voice = np.sign(np.sin(2 * np.pi * 150 * t)) * (1 + np.sin(2 * np.pi * 3 * t)) / 4
    >>> round(pesq_wb(voice, voice), 2)
    4.64
    """
    pesq = require("pesq", "study", "the PESQ judge")
    ref, deg = _pair(reference, degraded, sr)
    try:
        return float(pesq.pesq(JUDGE_SR, ref, deg, "wb"))
    except pesq.NoUtterancesError:
        return float("nan")


def stoi(reference: Source, degraded: Source, sr: int = JUDGE_SR, extended: bool = False) -> float:
    """Short-time objective intelligibility of ``degraded`` against ``reference`` (pystoi).

    Parameters
    ----------
    reference, degraded : np.ndarray (n,) or path
        As :func:`pesq_wb`.
    sr : int, default 16000
    extended : bool, default False
        Extended STOI (Jensen and Taal 2016) instead of STOI.

    Returns
    -------
    float
        At most 1 (identical).

    Examples
    --------
    >>> t = np.arange(32000) / 16000
    >>> voice = np.sign(np.sin(2 * np.pi * 150 * t)) * (1 + np.sin(2 * np.pi * 3 * t)) / 4
    >>> round(stoi(voice, voice), 3)
    1.0
    """
    pystoi = require("pystoi", "study", "the STOI judge")
    ref, deg = _pair(reference, degraded, sr)
    return float(pystoi.stoi(ref, deg, JUDGE_SR, extended=extended))


# --- all judges, as rows -------------------------------------------------------------------------------------

_NEEDS: dict[str, tuple[str, ...]] = {
    "cnn": ("cnn_predictions", "emotions"), "egemaps": ("emotion_judge", "emotions"),
    "speaker_cos": ("references",), "pesq": ("references",), "stoi": ("references",),
}


def _judges_to_run(judges: Sequence[str] | None, given: dict[str, bool]) -> list[str]:
    """Those asked for (default: every judge whose inputs are given), in :data:`JUDGES` order; a ValueError
    names an unknown judge or one asked for without its inputs."""
    missing = {j: [n for n in _NEEDS[j] if not given[n]] for j in JUDGES}
    if judges is None:
        return [j for j in JUDGES if not missing[j]]
    unknown = [j for j in judges if j not in _NEEDS]
    if unknown:
        raise ValueError(f"unknown judges {unknown}: choose from {JUDGES}")
    lacking = [f"{j} needs {', '.join(missing[j])}" for j in judges if missing[j]]
    if lacking:
        raise ValueError("judges without their inputs: " + "; ".join(lacking))
    return [j for j in JUDGES if j in judges]


def judge_rows(waves: Sequence[Source] | np.ndarray, sr: int = JUDGE_SR, *,
               references: Sequence[Source] | np.ndarray | None = None,
               emotions: Sequence[Any] | np.ndarray | None = None, emotion_judge: EmotionJudge | None = None,
               cnn_predictions: Sequence[Any] | np.ndarray | None = None, judges: Sequence[str] | None = None,
               **keys: Any) -> pd.DataFrame:
    """Score one set of waveforms by every judge that has its inputs; one long row per judge.

    Parameters
    ----------
    waves : sequence of np.ndarray (n,) or paths
        The judged clips (at ``sr``).
    sr : int, default 16000
    references : sequence, optional
        One reference per clip (the original; for a conversion, its source
        clip), at ``sr``: enables ``speaker_cos`` (mean cosine of the two
        clips' :func:`speaker_embeddings`), ``pesq`` and ``stoi`` (means over
        clips, NaNs skipped).
    emotions : sequence, optional
        The emotion each clip should be heard as (its own, or a conversion's target).
    emotion_judge : EmotionJudge, optional
        Enables ``egemaps``: UAR (balanced accuracy) of its predictions against ``emotions``.
    cnn_predictions : sequence, optional
        The CNN judge's prediction per clip (computed elsewhere), in the labels
        of ``emotions``: enables ``cnn``, its UAR.
    judges : sequence of str, optional
        Which of :data:`JUDGES` to run (default: every one with its inputs);
        one named without its inputs is a ValueError.
    **keys
        Scalars repeated on every row, first (e.g. ``model="vae"``, ``stage="reconstruction"``, ``seed=0``).

    Returns
    -------
    pandas.DataFrame
        Columns ``*keys``, ``judge``, ``value``, ``n_clips`` (clips with a value).

    Examples
    --------
    >>> t = np.arange(32000) / 16000
    >>> voice = np.sign(np.sin(2 * np.pi * 150 * t)) * (1 + np.sin(2 * np.pi * 3 * t)) / 4
    >>> rows = judge_rows([voice], references=[voice], judges=["pesq", "stoi"], stage="original")
    >>> rows.round(2).values.tolist()
    [['original', 'pesq', 4.64, 1], ['original', 'stoi', 1.0, 1]]
    """
    given = {"references": references is not None, "emotions": emotions is not None,
             "emotion_judge": emotion_judge is not None, "cnn_predictions": cnn_predictions is not None}
    run = _judges_to_run(judges, given)
    waves = _waveforms(waves, sr)
    n = len(waves)
    for name, seq in (("references", references), ("emotions", emotions), ("cnn_predictions", cnn_predictions)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} clips")
    rows = []
    if "cnn" in run:
        rows.append({**keys, "judge": "cnn", "value": _uar(emotions, cnn_predictions), "n_clips": n})
    if "egemaps" in run:
        rows.append({**keys, "judge": "egemaps", "value": _uar(emotions, emotion_judge.predict(waves)), "n_clips": n})
    refs = _waveforms(references, sr) if references is not None else []
    for judge in [j for j in run if j in _AGAINST_REFERENCE]:
        v = _against_reference(judge, waves, refs)
        ok = np.isfinite(v)
        rows.append({**keys, "judge": judge, "value": float(v[ok].mean()) if ok.any() else float("nan"),
                     "n_clips": int(ok.sum())})
    return pd.DataFrame(rows, columns=[*keys, "judge", "value", "n_clips"])


_AGAINST_REFERENCE = ("speaker_cos", "pesq", "stoi")


def _against_reference(judge: str, waves: list[np.ndarray], refs: list[np.ndarray]) -> np.ndarray:
    """Per clip: ``judge`` of each 16 kHz waveform against its reference, shape (N,)."""
    if judge == "speaker_cos":
        return np.atleast_1d(speaker_cosine(speaker_embeddings(waves), speaker_embeddings(refs)))
    measure = pesq_wb if judge == "pesq" else stoi
    return np.array([measure(r, w) for r, w in zip(refs, waves)], dtype=float)


def _uar(true: Sequence[Any] | np.ndarray, pred: Sequence[Any] | np.ndarray) -> float:
    """UAR (balanced accuracy) over the classes of ``true``; labels compared as text (so 4 and "4" agree)."""
    with warnings.catch_warnings():  # predictions outside the true classes (a conversion's few targets)
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")  # one target: UAR is its recall
        return float(balanced_accuracy_score(np.asarray(true).astype(str), np.asarray(pred).astype(str)))


def judge_table(rows: pd.DataFrame, by: Sequence[str] = ("model", "stage", "judge"), ci: float = 0.95) -> pd.DataFrame:
    """The judges' table: each judge's value over runs, with a t-interval (:func:`~emovae_utils.metrics.mean_interval`).

    Parameters
    ----------
    rows : pandas.DataFrame
        Rows of :func:`judge_rows`, one per run (e.g. seed) and judge, with
        the ``by`` columns. The real clips' scale enters the same table as
        ``judge_table(speaker_scale(clips).assign(model="real"))``; its
        ``n_runs`` then counts pairs of clips, which are not independent runs
        (read that interval as descriptive).
    by : sequence of str, default ("model", "stage", "judge")
    ci : float, default 0.95

    Returns
    -------
    pandas.DataFrame
        Columns ``*by``, ``value`` (mean over runs), ``ci_low``, ``ci_high``
        (NaN for one run), ``n_runs``: :data:`TABLE_COLUMNS` with the default ``by``.

    Examples
    --------
    >>> runs = pd.DataFrame({"model": "vae", "stage": "reconstruction", "judge": "stoi", "value": [0.6, 0.7, 0.8]})
    >>> judge_table(runs).round(3).values.tolist()
    [['vae', 'reconstruction', 'stoi', 0.7, 0.452, 0.948, 3]]
    """
    by = list(by)
    out = []
    for key, group in rows.groupby(by, sort=False):
        values = group["value"].to_numpy(dtype=float)
        if np.isnan(values).all():
            out.append([*key, np.nan, np.nan, np.nan, 0])
            continue
        interval = mean_interval(values, ci=ci, design="nested")
        out.append([*key, interval.estimate, interval.low, interval.high, interval.n])
    return pd.DataFrame(out, columns=[*by, "value", "ci_low", "ci_high", "n_runs"])
