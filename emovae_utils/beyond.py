"""Beyond the report (notebook 06): which VAE learns emotion apart from speaker.

Every variant is a registered model (:mod:`emovae_utils.models`) trained per
actor fold on that fold's training actors only, over several seeds, through the
trial runner (:func:`emovae_utils.replication.run_seeds`). Each trial is scored
in its worker right after training (:func:`evaluate_trial`), on the study's
clips (statement 01, 720 clips of 24 actors):

* **emotion UAR** of the variant's representation (its posterior mean, or the
  emotion sub-latent of the supervised VAE) by a linear probe fitted on the
  training actors and tested on the fold's held-out actors (the CNN ceiling
  uses its own predictions), kept per held-out actor for the intervals;
* **gender UAR**, same split;
* **speaker-ID accuracy** from the same representation of all 24 actors,
  trained on one repetition and tested on the other (chance 1/24);
* **MIG** per factor (emotion, actor, gender) over the 720 clips;
* **reconstruction MSE** (dB², element mean) of the held-out actors' clips;
* **active dimensions** (:func:`~emovae_utils.metrics.active_dimensions`).

:func:`variants_table` turns the result rows into ``figures/beyond_variants.csv``
(mean and 95 % interval of the emotion UAR over seeds x actors, the other
numbers as means over folds and seeds), with the baselines in the same table;
:func:`goal_rows` states the issue's goals as met / not met / inconclusive.

Examples
--------
>>> list(VARIANTS)[:3]
['vae', 'beta0.25', 'beta4']
>>> trials = variant_trials("sigma", seeds=[0, 1], folds=range(5), epochs=10)
>>> len(trials), trials[0].model, trials[0].data["statement"]
(10, 'sigma_vae', 1)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .conditions import route_condition
from .data import emotion_names
from .experiments import Trial
from .models import model_class
from .protocols import PROTOCOLS
from .io import atomic_write

__all__ = ["Variant", "VARIANTS", "STUDY_CLIPS", "variant_trials", "evaluate_trial", "representation",
           "variant_rows", "variants_table", "write_table", "baselines_table", "goal_rows", "emotion_conversion",
           "conversion_grid", "describe_variants", "run_summary", "protocol_clips", "emobox_comparison",
           "TABLE_COLUMNS", "TABLE_NAME", "SPEAKER_GOAL", "EMOTION_GOAL", "CEILING_GOAL"]

#: The clips every variant is scored on: the study's statement 01 (the study protocol's test clips).
STUDY_CLIPS = dict(PROTOCOLS["study"].test_clips)
#: Result table of notebook 06, in ``figures_dir``.
TABLE_NAME = "beyond_variants.csv"
#: Its columns: the protocol (:data:`emovae_utils.protocols.PROTOCOLS`), the variant, the probed dimensions
#: (``dims``) and the model's whole latent (``latent_dims``), emotion UAR with its interval and WA (accuracy, as
#: EmoBox reports), speaker ID, gender UAR, MIG, held-out and final training reconstruction, epochs trained
#: (mean), runs whose loss flattened (early stop), active dimensions, runs, training time, kind.
TABLE_COLUMNS = ("protocol", "variant", "dims", "latent_dims", "emotion_uar_mean", "emotion_uar_ci_low",
                 "emotion_uar_ci_high", "emotion_wa", "speaker_id_acc", "gender_uar", "mig_emotion", "mig_actor",
                 "mig_gender", "recon_mse", "train_recon", "epochs_done", "n_flat", "active_dims", "n_runs",
                 "train_seconds", "kind")
#: Goal 1: emotion UAR of an 8-dim (sub-)latent at eGeMAPS-88's level ...
EMOTION_GOAL = 0.49
#: ... with speaker ID from it at most twice chance (2/24).
SPEAKER_GOAL = 2 / 24
#: Goal 2: the supervised small model (ResLSTM-SA reports 0.623 +- 0.012).
CEILING_GOAL = 0.62


@dataclass(frozen=True)
class Variant:
    """One model of the comparison: a registered model, its config, condition and training clips.

    Parameters
    ----------
    label : str
        Name in tables and figures.
    model : str
        Registered model name.
    config : mapping
        Its constructor arguments.
    cond : str, optional
        Condition name (:data:`emovae_utils.conditions.CONDITIONS`). Only a model's declared
        condition (:attr:`~emovae_utils.models.Model.condition`) is given at evaluation;
        its training labels (``"labels"``, ``"emotion"``) never reach the test clips.
    features : {"windows", "sequences"}
        The study's fixed 80 x 128 windows, or variable-length log-mels
        (:func:`emovae_utils.data.load_sequences`).
    data : mapping
        Training clips (before the fold removes the held-out actors).
    fit : mapping
        Settings of :func:`~emovae_utils.train.fit` that differ from the comparison's own.
    """

    label: str
    model: str
    config: Mapping[str, Any] = field(default_factory=dict)
    cond: str | None = None
    features: str = "windows"
    data: Mapping[str, Any] = field(default_factory=lambda: dict(STUDY_CLIPS))
    fit: Mapping[str, Any] = field(default_factory=dict)


#: The variants, by key (the notebook's ``variants`` parameter lists keys).
VARIANTS: dict[str, Variant] = {
    "vae": Variant("VAE, the study's loss (beta = 1)", "emotion_vae"),
    "beta0.25": Variant("beta-VAE, beta = 0.25", "beta_vae", {"beta": 0.25}),
    "beta4": Variant("beta-VAE, beta = 4", "beta_vae", {"beta": 4.0}),
    "beta16": Variant("beta-VAE, beta = 16", "beta_vae", {"beta": 16.0}),
    "sigma": Variant("sigma-VAE (optimal decoder variance)", "sigma_vae", {"sigma_mode": "optimal"}),
    "sigma_learned": Variant("sigma-VAE (learned decoder variance)", "sigma_vae", {"sigma_mode": "learned"}),
    "tc": Variant("beta-TCVAE (beta = 6)", "tc_vae", {"beta": 6.0}),
    "speaker": Variant("speaker-conditioned VAE (decoder gets the speaker's mean spectrum)", "speaker_vae",
                       cond="speaker_code"),
    "supervised": Variant("emotion-supervised VAE: 8-dim emotion sub-latent, speaker adversary", "supervised_vae",
                          {"latent_dim": 16, "emotion_dims": 8, "classifier_weight": 100.0,
                           "adversary_weight": 100.0}, cond="labels"),
    "sequence": Variant("sequence VAE (variable length, masked)", "sequence_vae", cond="lengths",
                        features="sequences"),
    "cnn": Variant("supervised CNN on the log-mel (ceiling, tuned on validation actors)", "emotion_cnn",
                   cond="emotion", data={}),
}


def variant_trials(key: str, seeds: Sequence[int], folds: Iterable[int] = range(5), **fit: Any) -> list[Trial]:
    """The trials of one variant: one per seed and fold, labelled ``beyond_<key>``.

    Parameters
    ----------
    key : str
        A key of :data:`VARIANTS`.
    seeds : sequence of int
    folds : iterable of int, default range(5)
        Held-out actor folds.
    **fit
        Settings of :func:`~emovae_utils.train.fit` (``epochs`` required); the
        variant's own ``fit`` settings override them.
    """
    from .replication import seeded_trials

    if key not in VARIANTS:
        raise KeyError(f"unknown variant {key!r}; known: {', '.join(VARIANTS)}")
    v = VARIANTS[key]
    settings = {**fit, **dict(v.fit)}
    return seeded_trials(f"beyond_{key.replace('.', '_')}", dict(v.data), seeds, folds=folds, model=v.model,
                         config=dict(v.config), cond=v.cond, **settings)


# ----------------------------------------------------------------------------- scoring one trial


def representation(model: Any, X: np.ndarray, cond: Any = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """What the probes read from a trained model: ``(R, mu, sigma)`` for clips ``X``.

    ``R`` is the model's :meth:`~emovae_utils.models.Model.representation`
    (N, representation_dim): the posterior mean, the supervised VAE's emotion
    sub-latent, or a classifier's embedding. ``mu`` and ``sigma`` are the
    posterior of a generative model, None for a classifier.
    """
    from .generate import encode_posterior

    R = model.represent(X, cond)
    if not model.generative:
        return R, None, None
    mu, sigma = encode_posterior(model, X, cond=cond)
    return R, mu, sigma


def _reconstruction_mse(model: Any, X: np.ndarray, mu: np.ndarray, cond: Any) -> float:
    """Element-mean squared error (dB²) of decoding ``mu``; for a model conditioned on lengths the real frames only."""
    from .generate import decode_latents

    recon = decode_latents(model, mu, cond)
    if cond is not None and model.condition == "lengths":
        lengths = np.asarray(cond)
        sq = sum(float(np.sum((recon[i, :, :n] - X[i, :, :n]) ** 2)) for i, n in enumerate(lengths))
        return sq / float(lengths.sum() * X.shape[1])
    return float(np.mean((recon - X) ** 2))


def evaluate_trial(model: Any, X: np.ndarray, index: pd.DataFrame, trial: Trial,
                   train_positions: np.ndarray) -> dict[str, Any]:
    """Score one trained variant on the study's clips (the trial runner's ``evaluate``; see the module notes).

    Parameters
    ----------
    model : trained model
    X, index : all clips and their index (as given to the trial runner)
    trial : Trial
        With a fold: the held-out actors are its protocol's fold
        (:func:`emovae_utils.protocols.fold_actors`); the clips scored are the protocol's
        (the study's: statement 01; EmoBox's: both statements).
    train_positions : np.ndarray
        Rows the model was trained on (checked to exclude the held-out actors).

    Returns
    -------
    dict
        ``dims, emotion_uar, emotion_wa`` (accuracy over the test clips: EmoBox's WA),
        ``gender_uar, speaker_id_acc, actor_uar`` (JSON ``{actor: uar}`` of the held-out actors),
        ``mig_emotion, mig_actor, mig_gender, recon_mse, active_dims``.
    """
    from . import metrics
    from .metrics import actor_uar
    from .protocols import fold_actors, protocol_rows

    if trial.fold is None:
        raise ValueError("evaluate_trial scores held-out actors: give the trial a fold")
    held = list(fold_actors(trial.fold, trial.protocol))
    if index["actor"].iloc[np.asarray(train_positions)].isin(held).any():
        raise ValueError(f"trial {trial.trial_id} trained on held-out actors {held}")
    rows = protocol_rows(index, trial.protocol)
    study = index[rows].reset_index(drop=True)
    Xs = np.asarray(X)[rows]
    cond = route_condition(trial.cond, type(model), Xs, study).get("cond")  # labels stay out of evaluation
    R, mu, sigma = representation(model, Xs, cond)
    probes = metrics.probe_representation(R.astype(float), study, folds=[held], random_state=trial.seed)
    test = study["actor"].isin(held).to_numpy()
    emotion = probes["emotion"]
    if not model.generative:  # a classifier: its own predictions are the ceiling
        pred = np.full(len(study), None, dtype=object)
        names = emotion_names(study)
        pred[test] = [names[int(k)] for k in model.predict_logits(Xs[test]).argmax(axis=1)]
        emotion = SimpleNamespace(predictions=pred)
    per_actor = actor_uar(emotion, study["actor"], study["emotion"])
    wa = float(np.mean(np.asarray(emotion.predictions)[test] == study["emotion"].to_numpy()[test]))
    factors = study[["emotion", "actor", "gender"]]
    mig = metrics.mig(R, factors) if R.shape[1] >= 2 else pd.Series(np.nan, index=factors.columns)
    out = {
        "dims": int(R.shape[1]), "latent_dims": int(mu.shape[1]) if mu is not None else None,
        "emotion_uar": float(per_actor.mean()),
        "emotion_wa": wa,
        "gender_uar": float(probes["gender"].uar_mean),
        "speaker_id_acc": float(probes["speaker_id"].accuracy_mean),
        "actor_uar": json.dumps({str(int(a)): round(float(u), 6) for a, u in per_actor.items()}),
        "mig_emotion": float(mig["emotion"]), "mig_actor": float(mig["actor"]), "mig_gender": float(mig["gender"]),
        "recon_mse": float("nan"), "active_dims": float("nan"),
    }
    if mu is not None:
        out["active_dims"] = int(metrics.active_dimensions(mu, sigma)["active"].sum())
        test_cond = None if cond is None else np.asarray(cond)[test]
        try:
            out["recon_mse"] = _reconstruction_mse(model, Xs[test], mu[test], test_cond)
        except (TypeError, ValueError):  # a decoder that needs a condition it was not given
            pass
    return out


# ----------------------------------------------------------------------------- the table


def run_summary(rows: pd.DataFrame, key: str) -> str:
    """One line on a variant's runs: count, time, epochs trained, how many flattened, losses and emotion UAR.

    Examples
    --------
    >>> r = pd.DataFrame({"wall_seconds": [10.0, 12.0], "epochs_done": [900, 1100], "stopped_early": [True, False],
    ...                   "final_reconstruction": [60.0, 58.0], "recon_mse": [100.0, 98.0], "emotion_uar": [0.3, 0.32]})
    >>> run_summary(r, "vae")
    '       vae: 2 runs, 11 s each; epochs 1000 [900, 1100], flat (stopped early) 1 of 2; final training recon. 59.0 dB², held-out 99.0 dB²; emotion UAR 0.310 [0.300, 0.320]'
    """
    num = lambda c: pd.to_numeric(rows[c], errors="coerce") if c in rows else pd.Series(np.nan, index=rows.index)  # noqa: E731
    flat = int(rows["stopped_early"].fillna(False).astype(bool).sum()) if "stopped_early" in rows else 0
    epochs, uar = num("epochs_done"), num("emotion_uar")
    return (f"{key:>10}: {len(rows)} runs, {num('wall_seconds').mean():.0f} s each; epochs {epochs.mean():.0f} "
            f"[{epochs.min():.0f}, {epochs.max():.0f}], flat (stopped early) {flat} of {len(rows)}; final training "
            f"recon. {num('final_reconstruction').mean():.1f} dB², held-out {num('recon_mse').mean():.1f} dB²; "
            f"emotion UAR {uar.mean():.3f} [{uar.min():.3f}, {uar.max():.3f}]")


def protocol_clips(X: np.ndarray, index: pd.DataFrame, protocol: str = "study") -> tuple[np.ndarray, pd.DataFrame]:
    """The clips a protocol evaluates on and their index rows (:func:`emovae_utils.protocols.protocol_rows`)."""
    from .protocols import protocol_rows

    keep = protocol_rows(index, protocol)
    return np.asarray(X)[keep], index[keep].reset_index(drop=True)


def emobox_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Our EmoBox-partition rows beside EmoBox's published leaderboard (WA, %), best first.

    Ours: every row of ``table`` with ``protocol == "emobox"`` (trained from scratch on the log-mel, or a
    classical feature with a linear probe); theirs: :data:`emovae_utils.protocols.EMOBOX_LEADERBOARD`
    (frozen pre-trained speech models with a small trained head).

    Returns
    -------
    pandas.DataFrame
        ``system, WA %, UAR %, what`` (ours: trained from scratch, feature + linear probe, or trivial).
    """
    from .protocols import EMOBOX_LEADERBOARD

    def what(r: Any) -> str:
        if r.kind == "variant":
            return "this study: trained from scratch on RAVDESS"
        return "this study: trivial" if r.dims == 0 else "this study: feature + linear probe"

    ours = table[table["protocol"] == "emobox"] if "protocol" in table else table.iloc[:0]
    rows = [{"system": r.variant, "WA %": 100 * float(r.emotion_wa), "UAR %": 100 * float(r.emotion_uar_mean),
             "what": what(r)} for r in ours.itertuples() if pd.notna(r.emotion_wa)]
    rows += [{"system": name, "WA %": wa, "UAR %": np.nan, "what": "EmoBox: frozen pre-trained model + small head"}
             for name, wa in EMOBOX_LEADERBOARD.items()]
    return pd.DataFrame(rows).sort_values("WA %", ascending=False, ignore_index=True)



def variant_rows(rows: pd.DataFrame, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A variant's result rows as ``(per_actor, long)`` frames for :func:`~emovae_utils.metrics.probe_summary`."""
    label = VARIANTS[key].label if key in VARIANTS else key
    per_actor = pd.DataFrame([{"representation": label, "seed": int(r.seed), "actor": int(a), "uar": float(u)}
                              for r in rows.itertuples() for a, u in json.loads(r.actor_uar).items()])
    long = pd.concat([
        pd.DataFrame({"representation": label, "seed": rows["seed"], "target": "speaker_id",
                      "accuracy": rows["speaker_id_acc"], "uar": rows["speaker_id_acc"]}),
        pd.DataFrame({"representation": label, "seed": rows["seed"], "target": "gender",
                      "accuracy": np.nan, "uar": rows["gender_uar"]}),
    ], ignore_index=True)
    return per_actor, long


def variants_table(results: Mapping[str, pd.DataFrame], baselines: pd.DataFrame | None = None,
                   random_state: int = 0, protocol: str = "study") -> pd.DataFrame:
    """The comparison table (:data:`TABLE_COLUMNS`): one row per variant, then the baselines.

    Parameters
    ----------
    results : mapping of variant key to result rows
        The rows of :func:`~emovae_utils.replication.run_seeds` with :func:`evaluate_trial`'s columns.
    baselines : pandas.DataFrame, optional
        Rows of :func:`~emovae_utils.metrics.probe_summary` for the baselines (``representation,
        dims, emotion_uar_*``, ``speaker_id_acc``, ``gender_uar``; optional ``mig_*``).
    random_state : int
        Of the bootstrap.
    protocol : str, default "study"
        Written into the ``protocol`` column (the rows must come from that protocol's folds).

    Returns
    -------
    pandas.DataFrame
        The emotion-UAR interval resamples seeds and held-out actors
        (:func:`~emovae_utils.metrics.hierarchical_bootstrap_ci`); the other numbers are means over the
        variant's runs (folds x seeds), ``n_runs`` their count, ``kind`` "variant" or "baseline".
    """
    from .metrics import probe_summary

    out = []
    for key, rows in results.items():
        rows = rows[rows["status"] == "ok"] if "status" in rows else rows
        per_actor, long = variant_rows(rows, key)
        summary = probe_summary(per_actor, long, random_state=random_state).iloc[0].to_dict()
        mean = lambda c: float(pd.to_numeric(rows[c], errors="coerce").mean()) if c in rows else np.nan  # noqa: E731
        flat = rows["stopped_early"] if "stopped_early" in rows else pd.Series(False, index=rows.index)
        out.append({**{k: summary[k] for k in ("emotion_uar_mean", "emotion_uar_ci_low", "emotion_uar_ci_high",
                                             "speaker_id_acc", "gender_uar")},
                    "variant": summary["representation"], "dims": int(rows["dims"].iloc[0]),
                    "latent_dims": mean("latent_dims"), "emotion_wa": mean("emotion_wa"),
                    "mig_emotion": mean("mig_emotion"), "mig_actor": mean("mig_actor"),
                    "mig_gender": mean("mig_gender"), "recon_mse": mean("recon_mse"),
                    "train_recon": mean("final_reconstruction"),
                    "epochs_done": mean("epochs_done"), "n_flat": int(flat.fillna(False).astype(bool).sum()),
                    "active_dims": mean("active_dims"), "n_runs": int(len(rows)),
                    "train_seconds": mean("wall_seconds"), "kind": "variant"})
    table = pd.DataFrame(out)
    if baselines is not None and len(baselines):
        base = baselines.rename(columns={"representation": "variant"}).assign(kind="baseline")
        base["n_runs"] = base.get("n_seeds", pd.Series(1, index=base.index)).fillna(0).astype(int)
        table = pd.concat([table, base], ignore_index=True)
    return table.assign(protocol=protocol).reindex(columns=list(TABLE_COLUMNS))


def write_table(table: pd.DataFrame, figures_dir: str | os.PathLike) -> Path:
    """Write :func:`variants_table` to ``figures_dir/beyond_variants.csv`` (atomically)."""
    path = Path(figures_dir) / TABLE_NAME
    return atomic_write(path, lambda p: table.to_csv(p, index=False, float_format="%.4f"))


def _goal(goal: str, rule: str, verdict: str, statistic: float, low: float, high: float, n: int) -> dict[str, Any]:
    return {"goal": goal, "verdict": verdict, "statistic": statistic, "ci_low": low, "ci_high": high,
            "n_runs": n, "rule": rule}


def goal_rows(table: pd.DataFrame, ceiling: str | None = None) -> pd.DataFrame:
    """The issue's goals, each met / not met / inconclusive by a rule fixed before looking.

    * **Goal 1**, per 8-dimensional variant: *met* when the lower end of its emotion-UAR
      interval is >= :data:`EMOTION_GOAL` and its speaker-ID accuracy is <= :data:`SPEAKER_GOAL`;
      *not met* when the upper end is below :data:`EMOTION_GOAL` or speaker ID exceeds the
      bound; otherwise *inconclusive*. The goal is met if any variant meets it.
    * **Goal 2**, the ceiling row ``ceiling``: the same interval rule at :data:`CEILING_GOAL`.

    Only rows of the study's protocol count (a table without a ``protocol`` column is the study's).

    Returns
    -------
    pandas.DataFrame
        ``goal, verdict, statistic, ci_low, ci_high, n_runs, rule``; goal 1 names the closest
        8-dimensional variant (best verdict; among equals, one within the speaker bound before one
        outside it; then the highest mean emotion UAR); rows of ``kind`` "baseline" (e.g. PCA-8) do not count.

    Examples
    --------
    >>> t = pd.DataFrame({"variant": ["a", "b"], "dims": [8, 8], "emotion_uar_mean": [0.55, 0.3],
    ...                   "emotion_uar_ci_low": [0.5, 0.25], "emotion_uar_ci_high": [0.6, 0.35],
    ...                   "speaker_id_acc": [0.07, 0.3], "n_runs": [15, 15]})
    >>> goal_rows(t)["verdict"].tolist()
    ['met']
    """
    def interval(row: Mapping[str, Any], bound: float, extra_ok: bool = True) -> str:
        if row["emotion_uar_ci_low"] >= bound and extra_ok:
            return "met"
        if row["emotion_uar_ci_high"] < bound or not extra_ok:
            return "not met"
        return "inconclusive"

    if "protocol" in table:
        table = table[table["protocol"].fillna("study") == "study"]
    eight = table[(table["dims"] == 8) & table["emotion_uar_mean"].notna()]
    if "kind" in eight:
        eight = eight[eight["kind"].fillna("variant") == "variant"]  # a learned (sub-)latent, not PCA-8
    goals = []
    if len(eight):
        verdicts = [interval(r, EMOTION_GOAL, r["speaker_id_acc"] <= SPEAKER_GOAL) for _, r in eight.iterrows()]
        rank = {"met": 2, "inconclusive": 1, "not met": 0}
        within = (eight["speaker_id_acc"] <= SPEAKER_GOAL).to_numpy()
        best_i = max(range(len(eight)), key=lambda i: (rank[verdicts[i]], within[i], eight["emotion_uar_mean"].iloc[i]))
        best, verdict = eight.iloc[best_i], verdicts[best_i]
        goals.append(_goal(
            f"goal 1: an 8-dim (sub-)latent with emotion UAR >= {EMOTION_GOAL} and speaker ID <= "
            f"{SPEAKER_GOAL:.3f} (closest: {best['variant']}, speaker ID {best['speaker_id_acc']:.3f})",
            "per 8-dim variant: met if the 95 % interval's lower end >= 0.49 and speaker ID <= 2/24; not met if "
            "its upper end < 0.49 or speaker ID > 2/24; else inconclusive. The goal takes the best verdict over "
            "the variants; the closest is the best verdict, then within the speaker bound, then the highest mean",
            verdict, float(best["emotion_uar_mean"]),
            float(best["emotion_uar_ci_low"]), float(best["emotion_uar_ci_high"]), int(best["n_runs"])))
    if ceiling is not None and ceiling in set(table["variant"]):
        row = table.set_index("variant").loc[ceiling]
        goals.append(_goal(
            f"goal 2: the supervised small model reaches emotion UAR >= {CEILING_GOAL} ({ceiling})",
            "met if the 95 % interval's lower end >= 0.62; not met if its upper end < 0.62; else inconclusive",
            interval(row, CEILING_GOAL), float(row["emotion_uar_mean"]), float(row["emotion_uar_ci_low"]),
            float(row["emotion_uar_ci_high"]), int(row["n_runs"])))
    return pd.DataFrame(goals)


def baselines_table(X: np.ndarray, study: pd.DataFrame, *, egemaps_audio: Sequence[str] = (),
                    cache_dir: str | os.PathLike | None = None, random_state: int = 0,
                    protocol: str = "study") -> pd.DataFrame:
    """The baselines of the comparison on the same clips and actor folds, as :func:`variants_table` rows.

    PCA-8 of the log-mel (fitted per fold on the training actors; no MIG, which would need one
    PCA for all clips, test actors included), the pooled log-mel (mean and
    standard deviation per band), eGeMAPS-88 for each ``egemaps_audio`` (see
    :data:`~emovae_utils.metrics.EGEMAPS_AUDIO`; cached), and the trivial majority-class predictor.

    Parameters
    ----------
    X : np.ndarray, (N, 80, 128)
        The protocol's clips (the study's: statement 01; EmoBox's: both statements).
    study : pandas.DataFrame, N rows
        Their index rows (``actor, emotion, gender, repetition``; ``path, name`` for eGeMAPS).
    protocol : str, default "study"
        Whose actor folds the probes use (:data:`emovae_utils.protocols.PROTOCOLS`).
    egemaps_audio : sequence of str, default ()
        Which eGeMAPS inputs to add (none: no openSMILE run).
    cache_dir : path-like, optional
        Where eGeMAPS is cached.
    random_state : int, default 0

    Returns
    -------
    pandas.DataFrame
        ``representation, dims, n_seeds, emotion_uar_mean, emotion_uar_ci_low, emotion_uar_ci_high,
        emotion_wa, speaker_id_acc, gender_uar, mig_emotion, mig_actor, mig_gender``.
    """
    from . import metrics
    from .metrics import actor_uar, probe_summary
    from .protocols import check_protocol

    folds = check_protocol(protocol).folds
    reps: dict[str, tuple[np.ndarray, Any, int]] = {
        "PCA-8 of the log-mel (fitted per fold)": (X, metrics.pca_transform(8, random_state), 8),
        "pooled log-mel (mean, std per band)": (metrics.pooled_log_mel(X), None, 2 * X.shape[1]),
    }
    for audio in egemaps_audio:
        F = metrics.egemaps_cached(study["path"], cache_dir, names=study["name"], audio=audio, progress=False)
        reps[metrics.EGEMAPS_AUDIO[audio]] = (F.to_numpy(), None, F.shape[1])
    per_actor, long, extra = [], [], {}
    factors = study[["emotion", "actor", "gender"]]
    for name, (F, transform, dims) in reps.items():
        res = metrics.probe_representation(F, study, transform=transform, folds=folds, random_state=random_state)
        per_actor.append(actor_uar(res["emotion"], study["actor"], study["emotion"]).reset_index()
                         .assign(representation=name, seed=None))
        long.append(metrics.probe_rows(res, name))
        # MIG needs one code for all clips: none for PCA, which is fitted per fold
        mig = metrics.mig(F, factors) if transform is None else pd.Series(np.nan, index=factors.columns)
        wa = float(np.mean(np.asarray(res["emotion"].predictions) == study["emotion"].to_numpy()))
        extra[name] = {"dims": dims, "emotion_wa": wa,
                       **{f"mig_{k}": float(mig[k]) for k in ("emotion", "actor", "gender")}}
    table = probe_summary(pd.concat(per_actor, ignore_index=True), pd.concat(long, ignore_index=True),
                          random_state=random_state)
    table = table.assign(**{k: table["representation"].map(lambda n, k=k: extra[n][k])
                            for k in ("dims", "emotion_wa", "mig_emotion", "mig_actor", "mig_gender")})
    trivial = {"representation": "trivial: majority class", "dims": 0, "n_seeds": 0, "emotion_uar_mean": 1 / 8,
               "emotion_uar_ci_low": 1 / 8, "emotion_uar_ci_high": 1 / 8, "speaker_id_acc": 1 / 24,
               "emotion_wa": float((study["emotion"] == study["emotion"].mode()[0]).mean()),
               "gender_uar": 0.5}
    return pd.concat([table, pd.DataFrame([trivial])], ignore_index=True)


# ----------------------------------------------------------------------------- emotion conversion


def _fold_models(rows: pd.DataFrame, seed: int) -> dict[int, Any]:
    from .replication import load_models

    rows = rows[(rows["seed"] == seed) & (rows["status"] == "ok")] if "status" in rows else rows[rows["seed"] == seed]
    if not len(rows):
        raise ValueError(f"no complete trial of seed {seed}; train it first")
    return load_models(rows, by="fold")


def emotion_conversion(supervised: pd.DataFrame, classifiers: pd.DataFrame, X: np.ndarray, study: pd.DataFrame,
                       X_all: np.ndarray, index: pd.DataFrame, *, seed: int) -> dict[str, pd.DataFrame]:
    """Convert every held-out clip to every emotion, and judge the results.

    For each fold of seed ``seed``: the supervised VAE of that fold encodes the held-out actors' clips,
    their emotion sub-latent is replaced by each emotion's mean sub-latent over the fold's training clips
    (:func:`emovae_utils.conversion.emotion_means`, :func:`~emovae_utils.conversion.convert_emotion`), and
    the result is decoded. Judges: the supervised CNN of the same fold and seed (which emotion; chance
    1/8) and a speaker classifier fitted on every actor's statement-02 clips, which no VAE here trained
    on (the CNN judge did: both statements of its fold's training actors;
    :func:`~emovae_utils.conversion.speaker_classifier`; whose voice; chance 1/24). As references, the
    same judges score the original clips and their plain reconstructions.

    Parameters
    ----------
    supervised, classifiers : pandas.DataFrame
        Result rows of the ``supervised`` and ``cnn`` variants (:func:`variant_trials`).
    X, study : the study's clips (statement 01) and their index rows
    X_all, index : all clips (the speaker judge trains on statement 02)
    seed : int
        Which seed's models.

    Returns
    -------
    dict
        ``scores``: :func:`~emovae_utils.conversion.conversion_scores` per target emotion (converted
        clips), with the references as rows ``original`` and ``reconstruction``; ``clips``: one row per
        converted clip (fold, actor, source and target emotion, both judges' predictions).
    """
    from .conversion import conversion_scores, convert_emotion, emotion_means, speaker_classifier
    from .data import ACTOR_FOLDS
    from .generate import decode_latents, encode_posterior

    vaes, cnns = _fold_models(supervised, seed), _fold_models(classifiers, seed)
    second = (index["statement"] == 2).to_numpy()
    judge = speaker_classifier(np.asarray(X_all)[second], index["actor"].to_numpy()[second], random_state=seed)
    names = emotion_names(study)
    rows, refs = [], []
    for fold in sorted(set(vaes) & set(cnns)):
        vae, cnn = vaes[fold], cnns[fold]
        test = study["actor"].isin(ACTOR_FOLDS[fold]).to_numpy()
        means = emotion_means(vae, X[~test], study["emotion"][~test])
        src = study[test]
        recon = decode_latents(vae, encode_posterior(vae, X[test])[0])
        for what, S in (("original", X[test]), ("reconstruction", recon)):
            refs.append(pd.DataFrame({"what": what, "target": src["emotion"].to_numpy(),
                                      "emotion_pred": [names[k] for k in cnn.predict(S)],
                                      "speaker_pred": judge.predict(S), "actor": src["actor"].to_numpy()}))
        for target, z in means.iterrows():
            S = convert_emotion(vae, X[test], z.to_numpy())
            rows.append(pd.DataFrame({"fold": fold, "actor": src["actor"].to_numpy(),
                                      "source": src["emotion"].to_numpy(), "target": target,
                                      "emotion_pred": [names[k] for k in cnn.predict(S)],
                                      "speaker_pred": judge.predict(S)}))
    clips = pd.concat(rows, ignore_index=True)
    scores = conversion_scores(clips["emotion_pred"], clips["target"], clips["speaker_pred"], clips["actor"])
    for what, ref in pd.concat(refs, ignore_index=True).groupby("what", sort=False):
        one = conversion_scores(ref["emotion_pred"], ref["target"], ref["speaker_pred"], ref["actor"]).loc["all"]
        scores.loc[what] = one
    scores["n"] = scores["n"].astype(int)
    return {"scores": scores.reset_index(), "clips": clips}


def conversion_grid(supervised: pd.DataFrame, X: np.ndarray, study: pd.DataFrame, *, seed: int, fold: int = 0,
                    n_sources: int = 3) -> dict[str, Any]:
    """Spectrograms for a grid of source clips x target emotions (plus each source itself).

    Sources: the neutral, normal-intensity clip (repetition 1) of the first ``n_sources`` held-out
    actors of ``fold``; targets: every emotion, by its mean sub-latent over the fold's training clips.

    Returns
    -------
    dict
        ``spectrograms`` (list of (80, 128)), ``titles`` (list of str), row-major with
        ``len(targets) + 1`` columns (the source first), and ``targets``.
    """
    from .conversion import convert_emotion, emotion_means
    from .data import ACTOR_FOLDS

    vae = _fold_models(supervised, seed)[fold]
    test = study["actor"].isin(ACTOR_FOLDS[fold]).to_numpy()
    means = emotion_means(vae, X[~test], study["emotion"][~test])
    means = means.loc[[e for e in emotion_names(study).values() if e in means.index]]
    pick = study[test & (study["emotion_id"] == 1).to_numpy() & (study["repetition"] == 1).to_numpy()]
    spectrograms, titles = [], []
    for pos, row in pick.head(n_sources).iterrows():
        spectrograms.append(X[pos])
        titles.append(f"Actor {int(row.actor):02d}, {row.emotion} (source)")
        converted = convert_emotion(vae, np.repeat(X[pos][None], len(means), axis=0), means.to_numpy())
        spectrograms += list(converted)
        titles += [f"Actor {int(row.actor):02d} -> {target}" for target in means.index]
    return {"spectrograms": spectrograms, "titles": titles, "targets": list(means.index)}


def describe_variants(keys: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per variant: model, config, condition in training and at test, training clips.

    Examples
    --------
    >>> describe_variants(["speaker"]).loc["speaker", "condition at test"]
    'speaker_code'
    """
    rows = {}
    for key in (keys if keys is not None else VARIANTS):
        v = VARIANTS[key]
        names = [] if v.cond is None else [v.cond] if isinstance(v.cond, str) else list(v.cond)
        at_test = [n for n in names if "cond" in route_condition(n, model_class(v.model))]  # labels stay out
        rows[key] = {"model": v.model, "config": json.dumps(dict(v.config)) if v.config else "",
                     "condition in training": "+".join(names), "condition at test":
                     "+".join(at_test), "training clips": ", ".join(
                         f"{k} {val}" for k, val in dict(v.data).items()) or "all", "features": v.features}
    return pd.DataFrame.from_dict(rows, orient="index")
