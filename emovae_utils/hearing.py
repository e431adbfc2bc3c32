"""Emotion you can hear (notebook 07): judge what the decoders' output keeps, and what a conversion changes.

The experiment behind ``notebooks/07_emotion_you_can_hear``:

1. **Train** the factorised sequence VAE (``factorised_vae``) per actor fold on
   both statements of the fold's training actors, over several seeds
   (:func:`factorised_trials`; the designs of the ablation in :data:`DESIGNS`),
   through the trial runner, scored in its worker by
   :func:`emovae_utils.beyond.evaluate_trial` (the emotion latent as a
   representation: emotion UAR, speaker ID).
2. **Judge** (:func:`judge_runs`): every trained model of :data:`MODELS` (the
   study's VAE, the supervised VAE and the sequence VAE of notebook 06, and the
   new model) reconstructs the held-out actors' clips (:attr:`HearingConfig.recon_clips`)
   and converts the conversion sources (:attr:`HearingConfig.conversion_clips`)
   to each of the 8 emotions by replacing only its emotion latent with that
   emotion's mean over the model's training clips. Everything is rendered to
   audio (fast Griffin-Lim) and scored by the judges of :mod:`emovae_utils.judges`:
   the emotion CNN of notebook 06 (the same fold and seed, tuned without test
   actors) on the log-mel of the rendered audio; eGeMAPS + logistic regression
   fitted on the training actors' real clips; resemblyzer speaker cosine, PESQ
   and STOI against the recording. The same judges score the recordings and their
   resynthesis (:func:`real_rows`) and the speaker cosine between real clips
   (:func:`speaker_scale_rows`), so floor and ceiling sit in the same table.
   Judging runs in spawned worker processes, one BLAS thread each; each run's rows
   are cached beside its model (``hearing-<key>.csv``), so an interrupted run resumes.
3. **Summarise** (:func:`hearing_table`, :func:`goal_rows`, :func:`ablation_table`).

A run is one trained model (fold x seed); the interval of a model's value is a
t-interval over seeds of the seed means over folds, widened by the folds' spread
(:func:`emovae_utils.metrics.intervals.mean_interval`, ``design="crossed"``).
The speaker scale, a property of the recordings, has the held-out actor as its unit.

Examples
--------
>>> sorted(DESIGNS)
['content_adversary', 'conversion_loss', 'default', 'no_instance_norm', 'wide_content']
>>> [t.trial_id.split("-")[0] for t in factorised_trials(HearingConfig(epochs=1), "default", seeds=[0], folds=[0])]
['hearing_default']
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .judges import JUDGE_SR, TABLE_COLUMNS as JUDGE_COLUMNS, judge_rows, real_waveforms, speaker_embeddings
from .metrics.intervals import mean_interval
from .metrics.verdicts import interval_verdict
from .trial import selection_mask

__all__ = ["Design", "DESIGNS", "MODELS", "HearingConfig", "factorised_trials", "JudgeJob", "judge_jobs",
           "judge_runs", "speaker_scale_rows", "hearing_table", "goal_rows", "ablation_table", "conversion_table",
           "conversion_grid", "reconstruction_loss", "TABLE_NAME", "GOALS_NAME", "ABLATION_NAME", "CONVERSION_NAME", "TABLE_COLUMNS",
           "GOAL_COLUMNS"]

TABLE_NAME = "emotion_you_can_hear.csv"
GOALS_NAME = "emotion_you_can_hear_goals.csv"
ABLATION_NAME = "emotion_you_can_hear_ablation.csv"
CONVERSION_NAME = "emotion_you_can_hear_conversion.csv"
#: The judges' table: :data:`emovae_utils.judges.TABLE_COLUMNS` plus the unit its interval is over.
TABLE_COLUMNS: tuple[str, ...] = (*JUDGE_COLUMNS, "unit")
GOAL_COLUMNS: tuple[str, ...] = ("goal", "verdict", "statistic", "ci_low", "ci_high", "n_runs", "rule")
_VERDICT = {"holds": "met", "does not hold": "not met", "inconclusive": "inconclusive"}
#: The issue's thresholds.
RECON_CNN_GOAL = 0.50
RECON_EGEMAPS_SHARE = 0.80
CONVERSION_CNN_GOAL = 0.45
CONVERSION_EGEMAPS_GOAL = 0.35
CONVERSION_SPEAKER_SLACK = 0.05
NEW_MODEL = "factorised"


@dataclass(frozen=True)
class Design:
    """One design of the factorised VAE (a row of the ablation): its label and constructor arguments."""

    label: str
    config: Mapping[str, Any] = field(default_factory=dict)


#: The ablation's designs; ``default`` is the model judged everywhere.
DESIGNS: dict[str, Design] = {
    "default": Design("content 4 x 128 ms, instance norm"),
    "wide_content": Design("content 16 x 64 ms, instance norm", {"content_dim": 16, "content_stride": 4}),
    "content_adversary": Design("content 4 x 128 ms, instance norm + adversaries (emotion, speaker)",
                                {"content_adversary_weight": 10.0}),
    "no_instance_norm": Design("content 4 x 128 ms, no instance norm", {"content_instance_norm": False}),
    "conversion_loss": Design("content 4 x 128 ms, instance norm + conversion loss (decoded with another clip's "
                              "emotion, read back by the emotion head)", {"conversion_weight": 10.0}),
}

#: Judged models: table name -> (notebook 06 variant key or None for the new model, features).
MODELS: dict[str, tuple[str | None, str]] = {
    "vae": ("vae", "windows"), "supervised": ("supervised", "windows"), "sequence": ("sequence", "sequences"),
    NEW_MODEL: (None, "sequences"),
}
#: Which audio of a real clip a model's features stand for (:data:`emovae_utils.metrics.baselines.EGEMAPS_AUDIO`).
AUDIO = {"windows": "window", "sequences": "preprocessed"}


@dataclass(frozen=True)
class HearingConfig:
    """Settings of notebook 07's experiment.

    Parameters
    ----------
    epochs : int
        Epochs of each factorised VAE (18 batches of 64 per epoch on a fold's 1,140 clips).
    batch_size : int
    threads : int
        Torch threads per training run.
    recon_clips : mapping
        Which of a held-out actor's clips are reconstructed (index column -> value).
    conversion_clips : mapping
        Which are converted to every emotion.
    judge_clips : mapping
        Which of the training actors' real clips the eGeMAPS judge is fitted on (default: all).
    """

    epochs: int = 100
    batch_size: int = 64
    threads: int = 1
    recon_clips: Mapping[str, Any] = field(default_factory=lambda: {"repetition": 1})
    conversion_clips: Mapping[str, Any] = field(
        default_factory=lambda: {"statement": 1, "repetition": 1, "intensity": "normal"})
    judge_clips: Mapping[str, Any] = field(default_factory=dict)

    def fit(self) -> dict[str, Any]:
        """Keyword settings of the trials."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "drop_last": True, "threads": self.threads}


def factorised_trials(config: HearingConfig, design: str = "default", seeds: Sequence[int] = (0, 1, 2),
                      folds: Iterable[int] = range(5)) -> list:
    """The factorised VAE's trials of one design: one per seed and fold, on both statements of the training actors.

    Examples
    --------
    >>> [t.cond for t in factorised_trials(HearingConfig(), seeds=[0], folds=[0, 1])]
    [('lengths', 'labels'), ('lengths', 'labels')]
    """
    from .replication import seeded_trials

    if design not in DESIGNS:
        raise KeyError(f"unknown design {design!r}; known: {', '.join(DESIGNS)}")
    return seeded_trials(f"hearing_{design}", {}, seeds, folds=folds, model="factorised_vae",
                         config=dict(DESIGNS[design].config), cond=("lengths", "labels"), **config.fit())


# ----------------------------------------------------------------------------- one run's judging


@dataclass(frozen=True)
class JudgeJob:
    """What one worker judges: a trained model (or ``None``: the recordings) of one fold and seed.

    ``train``: the model's training clips (index column -> value; the fold's test actors are removed).
    """

    model: str
    design: str
    fold: int
    seed: int
    features: str
    model_path: str | None
    cnn_path: str
    train: Mapping[str, Any]
    cond: Any
    cache: str

    def key(self) -> str:
        return f"{self.model}-{self.design}-s{self.seed}-fold{self.fold}"


_CTX: dict[str, Any] = {}


def _functionals(index: pd.DataFrame, cache_dir: Any, config: HearingConfig, audio: str) -> pd.DataFrame:
    """eGeMAPS functionals (rows: clip names) of the clips the eGeMAPS judges learn from (all actors), cached."""
    from .metrics.baselines import egemaps_cached

    clips = index[selection_mask(index, config.judge_clips)]
    return egemaps_cached(clips["path"], cache_dir, names=clips["name"], audio=audio, sampling_rate=JUDGE_SR,
                          progress=False)


def _init(data_dir: Any, cache_dir: Any, config: HearingConfig, audios: Sequence[str]) -> None:
    """Worker start: one thread, the clips (both kinds) from the feature cache, the eGeMAPS functionals."""
    import torch
    from threadpoolctl import threadpool_limits

    from . import data

    torch.set_num_threads(1)
    threadpool_limits(1)
    X, index = data.load_features(data_dir, cache_dir, progress=False)
    S, sindex = data.load_sequences(data_dir, cache_dir, progress=False)
    feats = {audio: _functionals(index, cache_dir, config, audio) for audio in audios}
    _CTX.update(windows=(X, index), sequences=(S, sindex), egemaps=feats, config=config, judges={})


def _emotion_judge(fold: int, audio: str):
    """The eGeMAPS judge of ``fold``'s training actors (both statements), fitted once per worker."""
    from .data import ACTOR_FOLDS
    from .judges import fit_emotion_judge

    key = (fold, audio)
    if key not in _CTX["judges"]:
        index = _CTX["windows"][1]
        train = ~index["actor"].isin(ACTOR_FOLDS[fold]).to_numpy()
        train &= selection_mask(index, _CTX["config"].judge_clips)
        _CTX["judges"][key] = fit_emotion_judge(index[train], ACTOR_FOLDS[fold], audio=audio,
                                                functionals=_CTX["egemaps"][audio])
    return _CTX["judges"][key]


def _render(S: np.ndarray, lengths: np.ndarray | None) -> list[np.ndarray]:
    from .inversion import log_mel_to_audio

    return [log_mel_to_audio(s if lengths is None else s[:, : int(n)], method="fast")
            for s, n in zip(S, lengths if lengths is not None else [None] * len(S))]


def _cnn_predictions(cnn: Any, waves: list[np.ndarray], names: Mapping[int, str]) -> list[str]:
    """The CNN's emotion for each 16 kHz waveform, read from the waveform's own log-mel (fixed to 128 frames)."""
    from .dsp import fix_frames, log_mel

    S = np.stack([fix_frames(log_mel(y), 128) for y in waves])
    return [names[int(k)] for k in cnn.predict(S)]


def judge_one(job: JudgeJob) -> pd.DataFrame | str:
    """Judge one run in a worker (see :func:`judge_runs`); its rows are cached at ``job.cache``.

    Returns the rows, or the traceback of the error (a string), which :func:`judge_runs` raises with.
    """
    import traceback

    from .io import atomic_write

    cache = Path(job.cache)
    if cache.exists():
        return pd.read_csv(cache)
    try:
        rows = _judge(job)
    except Exception:  # noqa: BLE001 - sent back whole, raised in the parent with the job's name
        return traceback.format_exc()
    atomic_write(cache, lambda p: rows.to_csv(p, index=False))
    return rows


def _judge(job: JudgeJob) -> pd.DataFrame:
    from .conditions import route_condition
    from .data import ACTOR_FOLDS, emotion_names
    from .generate import decode_latents, encode_posterior
    from .models import load_model

    X, index = _CTX[job.features]
    config: HearingConfig = _CTX["config"]
    audio = AUDIO[job.features]
    held = index["actor"].isin(ACTOR_FOLDS[job.fold]).to_numpy()
    names = emotion_names(index)
    cnn = load_model(job.cnn_path)[0].eval()
    egemaps = _emotion_judge(job.fold, audio)
    keys = {"model": job.model, "design": job.design, "fold": job.fold, "seed": job.seed}
    recon = held & selection_mask(index, config.recon_clips)
    src = index[recon].reset_index(drop=True)
    originals = real_waveforms(src, audio)
    lengths = src["n_frames"].to_numpy() if job.features == "sequences" else None
    emotions = src["emotion"].to_numpy()
    if job.model_path is None:  # the recordings and their resynthesis
        out = [judge_rows(originals, emotions=emotions, emotion_judge=egemaps,
                          cnn_predictions=_cnn_predictions(cnn, originals, names), stage="original", **keys)]
        resynth = _render(X[recon], lengths)
        out.append(judge_rows(resynth, references=originals, emotions=emotions, emotion_judge=egemaps,
                              cnn_predictions=_cnn_predictions(cnn, resynth, names), stage="resynthesis", **keys))
        return pd.concat(out, ignore_index=True).assign(target="all")
    model = load_model(job.model_path)[0].eval()
    cond = route_condition(job.cond, type(model), X[recon], src).get("cond")
    mu = encode_posterior(model, X[recon], cond=cond)[0]
    waves = _render(decode_latents(model, mu, cond), lengths)
    out = [judge_rows(waves, references=originals, emotions=emotions, emotion_judge=egemaps,
                      cnn_predictions=_cnn_predictions(cnn, waves, names), stage="reconstruction", target="all",
                      **keys)]
    if model.emotion_dims is not None:
        out.append(_conversions(job, model, X, index, held, egemaps, cnn, names, keys))
    return pd.concat(out, ignore_index=True)


def _conversions(job: JudgeJob, model: Any, X: np.ndarray, index: pd.DataFrame, held: np.ndarray, egemaps: Any,
                 cnn: Any, names: Mapping[int, str], keys: Mapping[str, Any]) -> pd.DataFrame:
    """Every conversion source to every emotion (its emotion latent replaced by the emotion's training mean)."""
    from .conditions import route_condition
    from .conversion import convert_emotion, emotion_means

    config: HearingConfig = _CTX["config"]
    train = ~held & selection_mask(index, job.train)

    def cond_of(rows: np.ndarray) -> Any:
        return route_condition(job.cond, type(model), X[rows], index[rows].reset_index(drop=True)).get("cond")

    means = emotion_means(model, X[train], index["emotion"][train], cond=cond_of(train))
    conv = held & selection_mask(index, config.conversion_clips)
    src = index[conv].reset_index(drop=True)
    originals = real_waveforms(src, AUDIO[job.features])
    lengths = src["n_frames"].to_numpy() if job.features == "sequences" else None
    out = []
    for target, z in means.iterrows():
        S = convert_emotion(model, X[conv], z.to_numpy(), cond=cond_of(conv))
        waves = _render(S, lengths)
        out.append(judge_rows(waves, references=originals, emotions=[target] * len(waves), emotion_judge=egemaps,
                              cnn_predictions=_cnn_predictions(cnn, waves, names), judges=["cnn", "egemaps",
                                                                                             "speaker_cos"],
                              stage="conversion", target=target, **keys))
    return pd.concat(out, ignore_index=True)


# ----------------------------------------------------------------------------- all runs


def judge_jobs(runs: Mapping[tuple[str, str], pd.DataFrame], cnn: pd.DataFrame, config: HearingConfig,
               cache_root: str | os.PathLike) -> list[JudgeJob]:
    """One job per trained run (``runs``: (model, design) -> result rows) and per (fold, seed, features) of recordings.

    A run's cache file is named by a hash of its job, so a changed setting (or another CNN judge) is judged again.
    """
    cnns = {(int(r.fold), int(r.seed)): r.model_path for r in cnn.itertuples()}
    jobs, real = [], set()
    for (model, design), rows in runs.items():
        features = MODELS[model][1]
        for r in rows.itertuples():
            fold, seed = int(r.fold), int(r.seed)
            if (fold, seed) not in cnns:
                raise ValueError(f"no CNN judge of fold {fold}, seed {seed}: train the ceiling with that seed")
            spec = json.loads(Path(r.path, "trial.json").read_text(encoding="utf-8"))
            jobs.append(_job(model, design, fold, seed, features, r.model_path, cnns[(fold, seed)],
                             spec.get("data", {}), spec.get("cond"), config, cache_root))
            real.add((fold, seed, features))
    for fold, seed, features in sorted(real):
        jobs.append(_job("recordings", features, fold, seed, features, None, cnns[(fold, seed)], {}, None, config,
                         cache_root))
    return jobs


def _job(model: str, design: str, fold: int, seed: int, features: str, model_path: str | None, cnn_path: str,
         train: Mapping[str, Any], cond: Any, config: HearingConfig, cache_root: str | os.PathLike) -> JudgeJob:
    cond = tuple(cond) if isinstance(cond, list) else cond
    what = json.dumps([model, design, fold, seed, features, model_path, cnn_path, dict(train), cond,
                       asdict(config), 1], sort_keys=True, default=str)
    digest = hashlib.sha1(what.encode()).hexdigest()[:10]
    cache = Path(cache_root) / f"hearing-{model}-{design}-s{seed}-fold{fold}-{digest}.csv"
    return JudgeJob(model, design, fold, seed, features, model_path, cnn_path, dict(train), cond, str(cache))


def judge_runs(jobs: Sequence[JudgeJob], data_dir: Any, cache_dir: Any, config: HearingConfig, *,
               workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """Judge every job in ``workers`` spawned processes (one thread each); cached jobs are read, not redone.

    Returns
    -------
    pandas.DataFrame
        Long rows: ``model, design, fold, seed, stage, target, judge, value, n_clips``.
    """
    from .runners import run_pool

    results: dict[str, pd.DataFrame] = {}
    todo = []
    for job in jobs:
        if Path(job.cache).exists():
            results[job.key()] = pd.read_csv(job.cache)
        else:
            todo.append((job.key(), (job,)))
    if todo:
        from . import data

        audios = sorted({AUDIO[job.features] for _, (job,) in todo})
        index = data.load_features(data_dir, cache_dir, progress=False)[1]
        for audio in audios:  # once, here, before the workers read the cache
            _functionals(index, cache_dir, config, audio)
        Path(jobs[0].cache).parent.mkdir(parents=True, exist_ok=True)
        lost: list[str] = []

        def done(key: str, rows: pd.DataFrame | str) -> None:
            if isinstance(rows, str):
                raise RuntimeError(f"judging {key} failed (judged runs are cached; fix and run again):\n{rows}")
            results[key] = rows
            if progress:
                print(f"judged {key} ({len(results)}/{len(jobs)})", flush=True)

        run_pool(todo, workers, judge_one, done, lambda key, causes, final: final and lost.append(key),
                 initializer=_init, initargs=(data_dir, cache_dir, config, audios))
        if lost:
            raise RuntimeError(f"judging lost {len(lost)} runs ({', '.join(lost)}): their workers died; run again "
                               "(judged runs are cached)")
    return pd.concat([results[j.key()] for j in jobs], ignore_index=True)


def speaker_scale_rows(index: pd.DataFrame, folds: Iterable[int], config: HearingConfig,
                       features: str = "sequences") -> pd.DataFrame:
    """Speaker cosine between real clips, per held-out actor: same actor (other clip), other actors.

    The clips are :attr:`HearingConfig.recon_clips` of each fold's held-out actors (the audio ``features`` stands for);
    each actor's value is the mean over its pairs. Rows: ``model`` "recordings", ``fold``, ``actor``, ``stage``,
    ``judge`` "speaker_cos", ``value``.
    """
    from .data import ACTOR_FOLDS
    from .judges import speaker_scale

    rows = []
    for fold in folds:
        held = index["actor"].isin(ACTOR_FOLDS[fold]).to_numpy()
        clips = index[held & selection_mask(index, config.recon_clips)]
        clips = clips.reset_index(drop=True)
        E = speaker_embeddings(real_waveforms(clips, AUDIO[features]))
        pairs = speaker_scale(clips, embeddings=E)
        for actor in sorted(set(clips["actor"])):
            mine = (pairs["actor_a"] == actor) | (pairs["actor_b"] == actor)
            for stage, group in pairs[mine].groupby("stage"):
                rows.append({"model": "recordings", "features": features, "fold": fold, "actor": int(actor),
                             "stage": stage, "judge": "speaker_cos", "value": float(group["value"].mean())})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- tables and goals


#: Where each judge's values can lie (intervals of the tables are clipped to it).
_RANGE = {"cnn": (0.0, 1.0), "egemaps": (0.0, 1.0), "stoi": (0.0, 1.0), "speaker_cos": (-1.0, 1.0),
          "pesq": (1.0, 4.64)}


def _runs_interval(rows: pd.DataFrame) -> Any:
    """The crossed seed x fold interval of long rows (``seed``, ``fold``, ``value``)."""
    table = rows.pivot_table(index="seed", columns="fold", values="value", aggfunc="mean")
    return mean_interval(table.to_numpy(dtype=float), design="crossed")


def _seed_free(rows: pd.DataFrame) -> bool:
    """Whether the values do not depend on the seed (the same in every seed of each fold: a judge with no
    seed of its own on the recordings), so that seeds are not independent measurements of them."""
    spread = rows.groupby("fold")["value"].agg(lambda v: float(np.ptp(v.to_numpy(dtype=float))))
    return bool(rows["seed"].nunique() > 1 and (spread <= 1e-9).all())


def _interval_and_unit(rows: pd.DataFrame) -> tuple[Any, str]:
    """Seeds as the unit (folds crossed); for values that do not depend on the seed, the folds are the unit
    (a t-interval over fold values; no interval from one fold)."""
    if _seed_free(rows):
        return mean_interval(rows.groupby("fold")["value"].mean().to_numpy(dtype=float), design="nested"), "fold"
    return _runs_interval(rows), "seed"


def _clipped(ci: Any, judge: str) -> tuple[float, float]:
    """An interval's ends within the judge's range (a t-interval of shares can leave [0, 1])."""
    low, high = _RANGE.get(judge, (-np.inf, np.inf))
    return float(np.clip(ci.low, low, high)), float(np.clip(ci.high, low, high))


def hearing_table(judged: pd.DataFrame, scale: pd.DataFrame, design: str = "default") -> pd.DataFrame:
    """The judges' table (:data:`TABLE_COLUMNS`): every model's stages, with the recordings' rows of its own folds.

    ``unit`` says what ``n_runs`` counts and the interval is over: ``"seed"`` (each seed's mean over its folds,
    the folds' spread added); ``"fold"`` for values that do not depend on the seed (the eGeMAPS judge, PESQ, STOI
    and speaker cosine of the recordings' resynthesis: one measurement per fold, however many seeds); ``"actor"``
    for the speaker scale of the recordings.

    ``original`` and ``resynthesis`` of a model are the recordings' rows on the folds, seeds (CNN judges) and audio
    that model was judged on; conversions are pooled over targets (each run's mean over the 8 targets).
    """
    out = []
    models = judged[(judged["model"] != "recordings") & ((judged["model"] != NEW_MODEL) | (judged["design"] == design))]
    for model, rows in models.groupby("model", sort=False):
        features = MODELS[model][1]
        runs = rows[["fold", "seed"]].drop_duplicates()
        real = judged[(judged["model"] == "recordings") & (judged["design"] == features)].merge(runs)
        scale_m = scale[(scale["features"] == features) & scale["fold"].isin(runs["fold"])]
        parts = [real, rows.groupby(["stage", "judge", "fold", "seed"], as_index=False)["value"].mean()]
        for (stage, judge), group in pd.concat(parts, ignore_index=True).groupby(["stage", "judge"], sort=False):
            ci, unit = _interval_and_unit(group)
            out.append([model, stage, judge, ci.estimate, *_clipped(ci, judge), ci.n, unit])
        for stage, group in scale_m.groupby("stage"):
            ci = mean_interval(group["value"].to_numpy(dtype=float), design="nested")
            out.append([model, stage, "speaker_cos", ci.estimate, *_clipped(ci, "speaker_cos"), ci.n, "actor"])
    table = pd.DataFrame(out, columns=list(TABLE_COLUMNS))
    order = {s: i for i, s in enumerate(("original", "resynthesis", "reconstruction", "conversion",
                                         "same_actor_other_clip", "other_actor"))}
    return table.sort_values(["model", "stage", "judge"], key=lambda c: c.map(order) if c.name == "stage" else c,
                             kind="stable").reset_index(drop=True)


def conversion_table(judged: pd.DataFrame, model: str = NEW_MODEL, design: str = "default") -> pd.DataFrame:
    """Conversion per target emotion (and all targets): each judge's value with its interval over seeds (folds crossed).

    Returns
    -------
    pandas.DataFrame
        Columns ``target, judge, value, ci_low, ci_high, n_runs``; ``target`` "all" is each run's mean over targets.
    """
    rows = judged[(judged["model"] == model) & (judged["design"] == design) & (judged["stage"] == "conversion")]
    pooled = rows.groupby(["judge", "fold", "seed"], as_index=False)["value"].mean().assign(target="all")
    out = []
    for (target, judge), group in pd.concat([rows, pooled], ignore_index=True).groupby(["target", "judge"],
                                                                                        sort=False):
        ci = _runs_interval(group)
        low, high = _clipped(ci, judge)
        out.append({"target": target, "judge": judge, "value": ci.estimate, "ci_low": low, "ci_high": high,
                    "n_runs": ci.n})
    return pd.DataFrame(out, columns=["target", "judge", "value", "ci_low", "ci_high", "n_runs"])


def reconstruction_loss(judged: pd.DataFrame, design: str = "default") -> pd.DataFrame:
    """What reconstruction costs each emotion judge: reconstruction minus the recordings, paired per run.

    Each run's reconstruction value minus the recordings' value on the same fold, seed (CNN judge) and audio; a
    descriptive companion of the goals (no rule), with the seeds as the unit (folds crossed).

    Returns
    -------
    pandas.DataFrame
        Columns ``model, judge, difference, ci_low, ci_high, n_runs``.
    """
    out = []
    for model, (_, features) in MODELS.items():
        for judge in ("cnn", "egemaps"):
            own = _run_values(judged, model, design if model == NEW_MODEL else "notebook06", "reconstruction", judge)
            if not len(own):
                continue
            real = _run_values(judged, "recordings", features, "original", judge).set_index(["fold", "seed"])
            diff = own.assign(value=own["value"].to_numpy() - real["value"].loc[list(zip(own.fold, own.seed))]
                              .to_numpy())
            ci = _runs_interval(diff)
            out.append({"model": model, "judge": judge, "difference": ci.estimate, "ci_low": ci.low,
                        "ci_high": ci.high, "n_runs": ci.n})
    return pd.DataFrame(out, columns=["model", "judge", "difference", "ci_low", "ci_high", "n_runs"])


def _run_values(judged: pd.DataFrame, model: str, design: str, stage: str, judge: str) -> pd.DataFrame:
    rows = judged[(judged["model"] == model) & (judged["design"] == design) & (judged["stage"] == stage)
                  & (judged["judge"] == judge)]
    return rows.groupby(["fold", "seed"], as_index=False)["value"].mean()


def _goal(goal: str, rule: str, rows: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """A goal "value >= threshold" on per-run ``value`` rows (fold, seed): met / not met / inconclusive."""
    if not len(rows):
        return {"goal": goal, "verdict": "not measured", "statistic": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "n_runs": 0, "rule": rule}
    ci, unit = _interval_and_unit(rows)
    verdict = _VERDICT[interval_verdict(ci.low, ci.high, threshold - 1e-12)]
    if unit == "fold":
        rule += "; these values do not depend on the seed, so the interval is over the folds"
    return {"goal": goal, "verdict": verdict, "statistic": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
            "n_runs": int(len(rows)) if unit == "seed" else ci.n, "rule": rule}


_RULE = ("met if the 95 % interval over seeds (fold means, folds' spread added) lies at or above {t}; not met if "
         "it lies below; else inconclusive")


def goal_rows(judged: pd.DataFrame, scale: pd.DataFrame, representation: pd.DataFrame | None = None, *,
              model: str = NEW_MODEL, design: str = "default") -> pd.DataFrame:
    """The issue's goals for ``model``, each decided by the rule stated in its row, and the same rules on controls.

    The controls apply each rule to the recordings: the CNN judge on the originals, and (since the share of the
    originals' own rate and their cosine to themselves are 1 by construction) the eGeMAPS share and the speaker
    cosine of their resynthesis, the render's ceiling: a rule a perfect log-mel cannot pass is reported as such.
    Speaker goals are differences per run against the same fold's same-actor level (mean over its held-out actors).

    Parameters
    ----------
    judged : rows of :func:`judge_runs`
    scale : rows of :func:`speaker_scale_rows`
    representation : result rows of the model's trials (``emotion_uar``, ``speaker_id_acc``), optional

    Returns
    -------
    pandas.DataFrame, columns :data:`GOAL_COLUMNS`
    """
    features = MODELS[model][1]
    same = scale[(scale["stage"] == "same_actor_other_clip") & (scale["features"] == features)]
    level = same.groupby("fold")["value"].mean()
    real = lambda stage, judge: _run_values(judged, "recordings", features, stage, judge)  # noqa: E731
    own = lambda stage, judge: _run_values(judged, model, design, stage, judge)  # noqa: E731

    def minus_level(rows: pd.DataFrame, slack: float = 0.0) -> pd.DataFrame:
        return rows.assign(value=rows["value"] - (rows["fold"].map(level) - slack))

    def share(rows: pd.DataFrame, of: pd.DataFrame) -> pd.DataFrame:
        base = of.set_index(["fold", "seed"])["value"]
        return rows.assign(value=rows["value"].to_numpy() / base.loc[list(zip(rows.fold, rows.seed))].to_numpy())

    goals = []
    for who, rows_cnn, rows_eg, rows_spk in (
            (model, own("reconstruction", "cnn"), own("reconstruction", "egemaps"),
             own("reconstruction", "speaker_cos")),
            ("control: the recordings; eGeMAPS and speaker: their resynthesis", real("original", "cnn"),
             real("resynthesis", "egemaps"), real("resynthesis", "speaker_cos"))):
        goals.append(_goal(f"reconstruction keeps the emotion, CNN judge ({who})", _RULE.format(t=RECON_CNN_GOAL),
                           rows_cnn, RECON_CNN_GOAL))
        eg_base = real("original", "egemaps")
        if len(rows_eg) and len(eg_base):
            goals.append(_goal(f"reconstruction keeps the emotion, eGeMAPS judge: share of its rate on the "
                               f"originals ({who})", _RULE.format(t=RECON_EGEMAPS_SHARE),
                               share(rows_eg, eg_base), RECON_EGEMAPS_SHARE))
        goals.append(_goal(f"reconstruction keeps the voice: speaker cosine minus the same-actor-other-clip level "
                           f"({who})", _RULE.format(t=0), minus_level(rows_spk), 0.0))
    goals.append(_goal(f"conversion is heard, CNN judge: target recognised ({model})",
                       _RULE.format(t=CONVERSION_CNN_GOAL), own("conversion", "cnn"), CONVERSION_CNN_GOAL))
    goals.append(_goal(f"conversion is heard, eGeMAPS judge: target recognised ({model})",
                       _RULE.format(t=CONVERSION_EGEMAPS_GOAL), own("conversion", "egemaps"), CONVERSION_EGEMAPS_GOAL))
    goals.append(_goal(f"conversion keeps the voice: speaker cosine to the source minus (same-actor level - "
                       f"{CONVERSION_SPEAKER_SLACK}) ({model})", _RULE.format(t=0),
                       minus_level(own("conversion", "speaker_cos"), CONVERSION_SPEAKER_SLACK), 0.0))
    if representation is not None and len(representation):
        goals.append(_representation_goal(representation, model))
    return pd.DataFrame(goals, columns=list(GOAL_COLUMNS))


def _representation_goal(rows: pd.DataFrame, model: str) -> dict[str, Any]:
    """Notebook 06's goal 1 on the emotion latent: UAR >= 0.49 with speaker ID <= 2/24."""
    from .beyond import EMOTION_GOAL, SPEAKER_GOAL

    uar = _goal("", "", rows.rename(columns={"emotion_uar": "value"})[["fold", "seed", "value"]], EMOTION_GOAL)
    speaker = float(rows["speaker_id_acc"].mean())
    verdict = uar["verdict"] if speaker <= SPEAKER_GOAL or uar["verdict"] == "not met" else "not met"
    return {**uar, "verdict": verdict,
            "goal": f"the emotion latent alone: emotion UAR >= {EMOTION_GOAL} with speaker ID <= {SPEAKER_GOAL:.3f} "
                    f"({model}; speaker ID {speaker:.3f})",
            "rule": f"met if the UAR interval lies at or above {EMOTION_GOAL} and the mean speaker ID <= 2/24; not met "
                    "if the interval lies below or speaker ID exceeds the bound; else inconclusive"}


def ablation_table(judged: pd.DataFrame, representation: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per design: the judges on its reconstructions and conversions and what its latents hold (mean over runs).

    Only the runs every design has (the same folds and seeds) are compared.
    """
    rows = judged[judged["model"] == NEW_MODEL]
    common = None
    for design, group in rows.groupby("design"):
        runs = set(zip(group["fold"], group["seed"]))
        common = runs if common is None else common & runs
    out = []
    for design in [d for d in DESIGNS if d in set(rows["design"])]:
        in_common = np.array([r in common for r in zip(rows["fold"], rows["seed"])], dtype=bool)
        group = rows[(rows["design"] == design).to_numpy() & in_common]
        row: dict[str, Any] = {"design": design, "what": DESIGNS[design].label}
        for stage in ("reconstruction", "conversion"):
            for judge in ("cnn", "egemaps", "speaker_cos"):
                values = group[(group["stage"] == stage) & (group["judge"] == judge)]
                row[f"{stage}_{judge}"] = float(values.groupby(["fold", "seed"])["value"].mean().mean())
        rep = representation.get(design)
        if rep is not None and len(rep):
            rep = rep[np.array([r in common for r in zip(rep["fold"], rep["seed"])], dtype=bool)]
            for column in ("emotion_uar", "speaker_id_acc", "recon_mse", "final_content_speaker_acc",
                           "final_content_emotion_acc"):
                row[column] = float(rep[column].mean()) if column in rep else np.nan
        row["n_runs"] = len(common)
        out.append(row)
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- the audio grid


def conversion_grid(model: Any, S: np.ndarray, index: pd.DataFrame, fold: int, *, n_sources: int = 2,
                    train: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Source clips x target emotions for a sequence model with an emotion latent (the notebook's audio grid).

    Sources: the neutral clip (statement 1, repetition 1) of the first ``n_sources`` held-out actors of ``fold``;
    targets: every emotion, by its mean emotion latent over the fold's training clips (``train`` selects them
    among the training actors' clips; default all).

    Returns
    -------
    dict
        ``spectrograms`` (list of (80, length) arrays), ``titles``, ``ncols`` (targets + 1: the source first),
        ``recordings`` (each source's real audio at 16 kHz, the voiced part), ``sources`` (their index rows) and
        ``targets``.
    """
    from .conversion import convert_emotion, emotion_means
    from .data import ACTOR_FOLDS, emotion_names

    held = index["actor"].isin(ACTOR_FOLDS[fold]).to_numpy()
    train_rows = ~held & selection_mask(index, train or {})
    lengths = index["n_frames"].to_numpy()
    means = emotion_means(model, S[train_rows], index["emotion"][train_rows], cond=lengths[train_rows])
    means = means.loc[[e for e in emotion_names(index).values() if e in means.index]]
    neutral = (index["emotion_id"] == 1).to_numpy() & selection_mask(index, {"statement": 1, "repetition": 1})
    pick = index[held & neutral]
    pick = pick.head(n_sources)
    spectrograms, titles = [], []
    for pos, row in pick.iterrows():
        n = int(row["n_frames"])
        spectrograms.append(S[pos, :, :n])
        titles.append(f"Actor {int(row.actor):02d}, {row.emotion} (recording)")
        batch = np.repeat(S[pos][None], len(means), axis=0)
        converted = convert_emotion(model, batch, means.to_numpy(), cond=np.full(len(means), n))
        spectrograms += [c[:, :n] for c in converted]
        titles += [f"-> {target}" for target in means.index]
    return {"spectrograms": spectrograms, "titles": titles, "ncols": len(means) + 1,
            "recordings": real_waveforms(pick, AUDIO["sequences"]), "sources": pick, "targets": list(means.index)}
