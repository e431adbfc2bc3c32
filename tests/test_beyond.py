"""Notebook 06's comparison: scoring one trial, the table with intervals, the goal rules."""
from __future__ import annotations

import doctest
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from emovae_utils import beyond, models
from emovae_utils.experiments import Trial

EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


@pytest.fixture(scope="module")
def clips():
    """24 actors x 8 emotions x 2 repetitions, statement 1, plus a few statement-2 clips; emotion sets the level."""
    rows = list(itertools.product(range(1, 25), range(1, 9), (1, 2), (1,))) + [(1, 1, 1, 2), (2, 1, 1, 2)]
    index = pd.DataFrame(rows, columns=["actor", "emotion_id", "repetition", "statement"])
    index["emotion"] = [EMOTIONS[e - 1] for e in index.emotion_id]
    index["gender"] = np.where(index.actor % 2, "male", "female")
    rng = np.random.default_rng(0)
    X = rng.normal(-40.0, 3.0, size=(len(index), 80, 128)).astype(np.float32)
    X += (2.0 * index.emotion_id.to_numpy())[:, None, None].astype(np.float32)
    return X, index


def _trained(model: str, config: dict, clips, fold: int = 0, cond: str | None = None):
    X, index = clips
    trial = Trial(model, config, {"statement": 1}, seed=0, fold=fold, fit={"epochs": 1}, cond=cond)
    from emovae_utils.experiments import select_clips

    positions = select_clips(index, trial.data, fold, len(X))
    net = models.build(model, **config).eval()
    return net, trial, positions


def test_evaluate_trial_scores_the_held_out_actors(clips):
    X, index = clips
    net, trial, positions = _trained("emotion_vae", {"latent_dim": 4}, clips)
    row = beyond.evaluate_trial(net, X, index, trial, positions)
    per_actor = json.loads(row["actor_uar"])
    from emovae_utils.data import ACTOR_FOLDS

    assert sorted(int(a) for a in per_actor) == sorted(ACTOR_FOLDS[0])
    assert row["dims"] == 4 and 0 <= row["emotion_uar"] <= 1 and 0 <= row["speaker_id_acc"] <= 1
    assert row["emotion_uar"] == pytest.approx(np.mean(list(per_actor.values())))
    assert row["active_dims"] <= 4 and row["recon_mse"] > 0
    json.dumps(row)  # result.json must hold it
    # a trial that trained on a held-out actor is refused
    with pytest.raises(ValueError, match="held-out"):
        beyond.evaluate_trial(net, X, index, trial, np.arange(len(X)))


def test_training_labels_never_reach_the_evaluation(clips):
    """The supervised VAE's condition is its training labels: shuffling them must not change its scores."""
    X, index = clips
    net, trial, positions = _trained("supervised_vae", {"latent_dim": 6, "emotion_dims": 3}, clips, cond="labels")
    a = beyond.evaluate_trial(net, X, index, trial, positions)
    shuffled = index.assign(emotion_id=np.random.default_rng(1).permutation(index.emotion_id.to_numpy()))
    b = beyond.evaluate_trial(net, X, shuffled, trial, positions)
    assert a == b and a["dims"] == 3  # the 3-dim emotion sub-latent is what is probed


def test_the_speaker_condition_is_formed_for_unseen_speakers(clips):
    X, index = clips
    net, trial, positions = _trained("speaker_vae", {"latent_dim": 4}, clips, cond="speaker_code")
    row = beyond.evaluate_trial(net, X, index, trial, positions)
    assert np.isfinite(row["recon_mse"])  # decoding the held-out actors needed their own codes


def _rows(uars: dict[int, list[float]], speaker: float = 0.05) -> pd.DataFrame:
    """Result rows: seed -> per-actor UARs of 24 actors (5 folds each)."""
    from emovae_utils.data import ACTOR_FOLDS

    out = []
    for seed, values in uars.items():
        for k, fold in enumerate(ACTOR_FOLDS):
            per = {str(a): values[a - 1] for a in fold}
            out.append({"seed": seed, "fold": k, "status": "ok", "dims": 8, "actor_uar": json.dumps(per),
                        "speaker_id_acc": speaker, "gender_uar": 0.6, "mig_emotion": 0.1, "mig_actor": 0.01,
                        "mig_gender": 0.0, "recon_mse": 100.0, "active_dims": 8, "wall_seconds": 30.0})
    return pd.DataFrame(out)


def test_variants_table_intervals_and_baselines():
    rng = np.random.default_rng(0)
    high = _rows({s: list(0.6 + 0.02 * rng.standard_normal(24)) for s in range(3)})
    low = _rows({s: list(0.2 + 0.02 * rng.standard_normal(24)) for s in range(3)}, speaker=0.3)
    base = pd.DataFrame([{"representation": "trivial", "dims": 0, "n_seeds": 0, "emotion_uar_mean": 0.125,
                          "emotion_uar_ci_low": 0.125, "emotion_uar_ci_high": 0.125, "speaker_id_acc": 1 / 24,
                          "gender_uar": 0.5}])
    table = beyond.variants_table({"supervised": high, "vae": low}, base)
    assert list(table.columns) == list(beyond.TABLE_COLUMNS)
    assert table["kind"].tolist() == ["variant", "variant", "baseline"]
    sup = table.iloc[0]
    assert sup.variant == beyond.VARIANTS["supervised"].label and sup.n_runs == 15
    assert sup.emotion_uar_ci_low < sup.emotion_uar_mean < sup.emotion_uar_ci_high
    assert 0.55 < sup.emotion_uar_mean < 0.65 and table.iloc[1].emotion_uar_ci_high < 0.3
    goals = beyond.goal_rows(table)
    assert goals.verdict.tolist() == ["met"] and beyond.VARIANTS["supervised"].label in goals.goal[0]


@pytest.mark.parametrize("low, high, speaker, verdict", [
    (0.50, 0.60, 0.05, "met"), (0.40, 0.48, 0.05, "not met"), (0.45, 0.55, 0.05, "inconclusive"),
    (0.50, 0.60, 0.20, "not met"),
])
def test_goal_rule(low, high, speaker, verdict):
    t = pd.DataFrame({"variant": ["x"], "dims": [8], "emotion_uar_mean": [(low + high) / 2],
                      "emotion_uar_ci_low": [low], "emotion_uar_ci_high": [high], "speaker_id_acc": [speaker],
                      "n_runs": [15]})
    assert beyond.goal_rows(t).verdict.tolist() == [verdict]
    ceiling = beyond.goal_rows(t.assign(dims=64), ceiling="x")
    assert len(ceiling) == 1 and ceiling.goal[0].startswith("goal 2")


def test_variants_are_registered_models_with_known_conditions():
    from emovae_utils.conditions import CONDITIONS

    for key, v in beyond.VARIANTS.items():
        assert v.cond is None or v.cond in CONDITIONS, key
        if v.model in models.available():
            trials = beyond.variant_trials(key, seeds=[0, 1, 2], folds=range(5), epochs=3)
            assert len(trials) == 15 and len({t.trial_id for t in trials}) == 15
            assert all(t.cond == v.cond and t.model == v.model for t in trials)
    with pytest.raises(KeyError, match="known"):
        beyond.variant_trials("nope", seeds=[0], epochs=1)


def test_docstring_examples():
    assert doctest.testmod(beyond).failed == 0


def test_goal_one_takes_the_best_learned_variant_not_a_baseline():
    t = pd.DataFrame({"variant": ["low", "high", "pca"], "dims": [8, 8, 8], "kind": ["variant", "variant", "baseline"],
                      "emotion_uar_mean": [0.2, 0.45, 0.6], "emotion_uar_ci_low": [0.15, 0.4, 0.55],
                      "emotion_uar_ci_high": [0.25, 0.5, 0.65], "speaker_id_acc": [0.05, 0.2, 0.05],
                      "n_runs": [15, 15, 1]})
    goal = beyond.goal_rows(t).iloc[0]
    # both not met; "high" reads more emotion but breaks the speaker bound: "low" is the closer one
    assert goal.verdict == "not met" and "closest: low" in goal.goal and goal.statistic == 0.2
    within = t.assign(speaker_id_acc=[0.05, 0.07, 0.05])
    goal = beyond.goal_rows(within).iloc[0]  # both within the bound: the higher mean is closer; never the baseline
    assert "closest: high" in goal.goal and goal.statistic == 0.45


def test_goals_read_the_study_protocol_only():
    t = pd.DataFrame({"protocol": ["study", "emobox"], "variant": ["cnn", "cnn"], "dims": [64, 64],
                      "kind": ["variant", "variant"], "emotion_uar_mean": [0.5, 0.7],
                      "emotion_uar_ci_low": [0.45, 0.65], "emotion_uar_ci_high": [0.55, 0.75],
                      "speaker_id_acc": [0.3, 0.3], "n_runs": [15, 18]})
    goal = beyond.goal_rows(t, ceiling="cnn").iloc[0]
    assert goal.verdict == "not met" and goal.statistic == 0.5 and goal.n_runs == 15
