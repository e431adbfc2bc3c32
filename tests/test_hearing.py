"""Notebook 07's experiment (emovae_utils.hearing): trials, judging jobs, the judges' table, goals and ablation."""
from __future__ import annotations

import itertools
import zlib

import numpy as np
import pandas as pd
import pytest
import torch

from emovae_utils import hearing, judges
from emovae_utils.data import ACTOR_FOLDS
from emovae_utils.models import build
from emovae_utils.trial import select_clips


def _index(actors=range(1, 25)) -> pd.DataFrame:
    """A RAVDESS-shaped index: every actor x 8 emotions x 2 statements x 2 repetitions (normal intensity)."""
    emotions = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    rows = [{"actor": a, "emotion": e, "emotion_id": i + 1, "statement": s, "repetition": r, "intensity": "normal",
             "gender": "male" if a % 2 else "female", "name": f"a{a}-e{i + 1}-s{s}-r{r}", "n_frames": 100}
            for a, (i, e), s, r in itertools.product(actors, enumerate(emotions), (1, 2), (1, 2))]
    return pd.DataFrame(rows)


def test_factorised_trials_train_on_both_statements_of_the_training_actors_only():
    index = _index()
    trials = hearing.factorised_trials(hearing.HearingConfig(epochs=3), "default", seeds=[0, 1], folds=[0, 1])
    assert len({t.trial_id for t in trials}) == 4
    for t in trials:
        assert t.model == "factorised_vae" and t.cond == ("lengths", "labels") and t.fit.epochs == 3
        rows = index.iloc[select_clips(index, t.data, t.fold, len(index), t.protocol)]
        assert not rows["actor"].isin(ACTOR_FOLDS[t.fold]).any()
        assert set(rows["statement"]) == {1, 2}
        assert set(rows["actor"]) == set(range(1, 25)) - set(ACTOR_FOLDS[t.fold])
    other = hearing.factorised_trials(hearing.HearingConfig(epochs=3), "wide_content", seeds=[0], folds=[0])[0]
    assert other.config == {"content_dim": 16, "content_stride": 4}
    assert other.trial_id not in {t.trial_id for t in trials}
    with pytest.raises(KeyError, match="known: default"):
        hearing.factorised_trials(hearing.HearingConfig(), "wider")


def test_every_design_builds_and_the_instance_norm_switch_is_live():
    for design in hearing.DESIGNS.values():
        build("factorised_vae", **design.config)
    torch.manual_seed(0)
    on = build("factorised_vae")
    off = build("factorised_vae", content_instance_norm=False)
    off.load_state_dict(on.state_dict())
    x, lengths = torch.randn(2, 80, 96) * 10 - 40, torch.tensor([96, 64])
    # with instance norm every hidden channel has mean 0 and variance 1 over each clip's real steps; without, not
    xn = on._normalised(x, lengths)
    for model, normalised in ((on, True), (off, False)):
        h, m = model.content_encoder(xn, lengths, 96)
        count = m.sum(dim=2)
        mean = (h * m).sum(dim=2) / count
        var = ((h - mean.unsqueeze(2)) ** 2 * m).sum(dim=2) / count
        assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-4) == normalised
        assert torch.allclose(var, torch.ones_like(var), atol=1e-2) == normalised
    with pytest.raises(ValueError, match="content_instance_norm=1"):
        build("factorised_vae", content_instance_norm=1)


def test_the_emotion_judge_of_a_fold_never_sees_its_test_actors(monkeypatch):
    index = _index()
    rng = np.random.default_rng(0)
    feats = pd.DataFrame(rng.normal(size=(len(index), 5)), index=index["name"])
    config = hearing.HearingConfig(judge_clips={"statement": 1})
    monkeypatch.setattr(hearing, "_CTX", {"windows": (None, index), "egemaps": {"window": feats}, "config": config,
                                          "judges": {}})
    for fold in range(5):
        judge = hearing._emotion_judge(fold, "window")
        assert not set(judge.train_actors) & set(ACTOR_FOLDS[fold])
        assert judge.test_actors == tuple(sorted(ACTOR_FOLDS[fold]))
        trained = index.set_index("name").loc[list(judge.train_names)]
        assert set(trained["statement"]) == {1} and len(trained) == 16 * (24 - len(ACTOR_FOLDS[fold]))
    assert hearing._emotion_judge(0, "window") is hearing._CTX["judges"][(0, "window")]  # fitted once


def _rows(model, design, folds, seeds, stage, judge, value, spread=0.0, target="all"):
    rng = np.random.default_rng(zlib.crc32(f"{model}{design}{stage}{judge}{target}".encode()))
    return [{"model": model, "design": design, "fold": f, "seed": s, "stage": stage, "target": target, "judge": judge,
             "value": value + spread * rng.normal(), "n_clips": 10} for f in folds for s in seeds]


def _planted():
    """Recordings and a factorised model on folds 0-1, a window VAE on fold 0, seeds 0-2."""
    folds, seeds, rows = [0, 1], [0, 1, 2], []
    for features, fs in (("sequences", folds), ("windows", [0])):
        rows += _rows("recordings", features, fs, seeds, "original", "cnn", 0.62, 0.01)
        rows += _rows("recordings", features, fs, seeds, "original", "egemaps", 0.50, 0.01)
        rows += _rows("recordings", features, fs, seeds, "resynthesis", "egemaps", 0.45, 0.01)
        rows += _rows("recordings", features, fs, seeds, "resynthesis", "speaker_cos", 0.95, 0.005)
    rows += _rows("factorised", "default", folds, seeds, "reconstruction", "cnn", 0.80, 0.01)  # met
    rows += _rows("factorised", "default", folds, seeds, "reconstruction", "egemaps", 0.20, 0.01)  # not met (0.4)
    rows += _rows("factorised", "default", folds, seeds, "reconstruction", "speaker_cos", 0.70, 0.3)  # wide
    for target in ("sad", "angry"):
        rows += _rows("factorised", "default", folds, seeds, "conversion", "cnn", 0.10, 0.01, target)
        rows += _rows("factorised", "default", folds, seeds, "conversion", "egemaps", 0.42, 0.01, target)
        rows += _rows("factorised", "default", folds, seeds, "conversion", "speaker_cos", 0.90, 0.01, target)
    rows += _rows("factorised", "wide_content", [0], seeds, "reconstruction", "cnn", 0.30, 0.01)
    rows += _rows("vae", "notebook06", [0], seeds, "reconstruction", "cnn", 0.20, 0.01)
    scale = [{"model": "recordings", "features": feat, "fold": f, "actor": a, "stage": stage, "judge": "speaker_cos",
              "value": v + 0.01 * a} for feat in ("sequences", "windows") for f in (0, 1) for a in ACTOR_FOLDS[f]
             for stage, v in (("same_actor_other_clip", 0.70), ("other_actor", 0.55))]
    return pd.DataFrame(rows), pd.DataFrame(scale)


def test_goal_rules_give_the_planted_answers_and_controls_pass():
    judged, scale = _planted()
    rep = pd.DataFrame({"fold": [0, 0, 0, 1, 1, 1], "seed": [0, 1, 2] * 2,
                        "emotion_uar": [0.60, 0.62, 0.61, 0.63, 0.60, 0.62], "speaker_id_acc": 0.05})
    goals = hearing.goal_rows(judged, scale, rep).set_index("goal")
    assert list(goals.columns) == list(hearing.GOAL_COLUMNS[1:])
    verdict = {g.rsplit(" (", 1)[0] + (" [control]" if "control" in g else ""): v for g, v in goals["verdict"].items()}
    assert verdict["reconstruction keeps the emotion, CNN judge"] == "met"
    assert verdict["reconstruction keeps the emotion, eGeMAPS judge: share of its rate on the originals"] == "not met"
    assert verdict["reconstruction keeps the voice: speaker cosine minus the same-actor-other-clip level"] == \
        "inconclusive"
    assert verdict["conversion is heard, CNN judge: target recognised"] == "not met"
    assert verdict["conversion is heard, eGeMAPS judge: target recognised"] == "met"
    assert verdict["conversion keeps the voice: speaker cosine to the source minus (same-actor level - 0.05)"] == "met"
    assert verdict["the emotion latent alone: emotion UAR >= 0.49 with speaker ID <= 0.083"] == "met"
    controls = goals[goals.index.str.contains("control")]
    assert len(controls) == 3 and (controls["verdict"] == "met").all()  # 0.62 CNN, 0.45/0.50 = 0.9, 0.95 vs 0.7
    assert (goals["n_runs"] == 6).all()
    # speaker ID above 2/24 fails the representation goal whatever the UAR
    worse = hearing.goal_rows(judged, scale, rep.assign(speaker_id_acc=0.3)).iloc[-1]
    assert worse["verdict"] == "not met" and "0.300" in worse["goal"]


def test_the_table_pairs_each_model_with_the_recordings_of_its_own_folds():
    judged, scale = _planted()
    table = hearing.hearing_table(judged, scale)
    assert list(table.columns) == list(hearing.TABLE_COLUMNS)
    assert set(table["stage"]) <= set(judges.STAGES) and set(table["judge"]) <= set(judges.JUDGES)
    vae = table[table["model"] == "vae"].set_index(["stage", "judge"])
    factorised = table[table["model"] == "factorised"].set_index(["stage", "judge"])
    # seeds are the unit: 3 runs whatever the number of folds
    assert vae.loc[("original", "cnn"), "n_runs"] == factorised.loc[("original", "cnn"), "n_runs"] == 3
    fold0 = judged[(judged.model == "recordings") & (judged.design == "windows") & (judged.stage == "original")
                   & (judged.judge == "cnn")]["value"].mean()
    assert vae.loc[("original", "cnn"), "value"] == pytest.approx(fold0)
    assert vae.loc[("same_actor_other_clip", "speaker_cos"), "unit"] == "actor"
    assert vae.loc[("same_actor_other_clip", "speaker_cos"), "n_runs"] == len(ACTOR_FOLDS[0])
    assert factorised.loc[("same_actor_other_clip", "speaker_cos"), "n_runs"] == len(ACTOR_FOLDS[0] + ACTOR_FOLDS[1])
    assert ("conversion", "cnn") in factorised.index and ("conversion", "cnn") not in vae.index
    # only the default design enters the table; the ablation's others stay out
    assert factorised.loc[("reconstruction", "cnn"), "value"] == pytest.approx(0.80, abs=0.02)
    low, high = factorised.loc[("reconstruction", "cnn"), ["ci_low", "ci_high"]]
    assert low < 0.80 < high


def test_conversion_per_target_and_over_all_targets():
    judged, _ = _planted()
    table = hearing.conversion_table(judged).set_index(["target", "judge"])
    assert set(table.index.get_level_values("target")) == {"sad", "angry", "all"}
    assert table.loc[("all", "cnn"), "value"] == pytest.approx(
        (table.loc[("sad", "cnn"), "value"] + table.loc[("angry", "cnn"), "value"]) / 2)
    assert (table["n_runs"] == 3).all()


def test_the_ablation_compares_only_the_runs_every_design_has():
    judged, _ = _planted()
    reps = {"default": pd.DataFrame({"fold": [0, 0, 0, 1, 1, 1], "seed": [0, 1, 2] * 2,
                                     "emotion_uar": [0.5] * 3 + [0.9] * 3, "speaker_id_acc": 0.1}),
            "wide_content": pd.DataFrame({"fold": [0] * 3, "seed": [0, 1, 2], "emotion_uar": 0.4,
                                          "speaker_id_acc": 0.2})}
    table = hearing.ablation_table(judged, reps).set_index("design")
    assert list(table.index) == ["default", "wide_content"]
    assert (table["n_runs"] == 3).all()  # fold 0 x 3 seeds, the wide design's runs
    assert table.loc["default", "emotion_uar"] == pytest.approx(0.5)  # fold 1 left out
    assert table.loc["wide_content", "reconstruction_cnn"] == pytest.approx(0.30, abs=0.03)


def test_judge_jobs_name_their_caches_by_what_is_judged(tmp_path):
    trial_dir = tmp_path / "t"
    trial_dir.mkdir()
    (trial_dir / "trial.json").write_text('{"data": {}, "cond": ["lengths", "labels"]}')
    rows = pd.DataFrame({"fold": [0], "seed": [1], "path": [str(trial_dir)], "model_path": ["m.pt"]})
    cnn = pd.DataFrame({"fold": [0], "seed": [1], "model_path": ["cnn.pt"]})
    config = hearing.HearingConfig()
    jobs = hearing.judge_jobs({("factorised", "default"): rows}, cnn, config, tmp_path)
    assert [(j.model, j.features, j.model_path) for j in jobs] == [("factorised", "sequences", "m.pt"),
                                                                   ("recordings", "sequences", None)]
    assert jobs[0].cond == ("lengths", "labels")
    again = hearing.judge_jobs({("factorised", "default"): rows}, cnn, config, tmp_path)
    other = hearing.judge_jobs({("factorised", "default"): rows}, cnn, hearing.HearingConfig(epochs=7), tmp_path)
    assert again[0].cache == jobs[0].cache != other[0].cache
    with pytest.raises(ValueError, match="no CNN judge of fold 0, seed 1"):
        hearing.judge_jobs({("factorised", "default"): rows}, cnn.assign(seed=0), config, tmp_path)


def test_a_failed_judging_job_is_raised_with_its_traceback(tmp_path):
    job = hearing.JudgeJob("factorised", "default", 0, 0, "sequences", str(tmp_path / "missing.pt"),
                           str(tmp_path / "missing_cnn.pt"), {}, None, str(tmp_path / "cache.csv"))
    hearing._CTX.clear()
    out = hearing.judge_one(job)
    assert isinstance(out, str) and "Traceback" in out and not (tmp_path / "cache.csv").exists()


def test_conversion_grid_puts_the_recording_first_then_every_target(ravdess_dir, tmp_path):
    from emovae_utils.data import load_sequences, ravdess_index

    full = ravdess_index(ravdess_dir)
    keep = full["actor"].isin([2, 5, 1, 3]) & (full["statement"] == 1) & (full["repetition"] == 1)
    S, index = load_sequences(ravdess_dir, tmp_path, index=full[keep].reset_index(drop=True), progress=False,
                              workers=1)
    torch.manual_seed(0)
    model = build("factorised_vae").eval()
    grid = hearing.conversion_grid(model, S, index, fold=0, n_sources=2)
    assert grid["ncols"] == 9 and len(grid["spectrograms"]) == len(grid["titles"]) == 18
    assert list(grid["sources"]["actor"]) == [2, 5] and (grid["sources"]["emotion"] == "neutral").all()
    assert grid["titles"][0].endswith("(recording)") and grid["titles"][1] == "-> neutral"
    n = int(grid["sources"]["n_frames"].iloc[0])
    assert all(s.shape == (80, n) for s in grid["spectrograms"][:9])
    assert np.array_equal(grid["spectrograms"][0], S[grid["sources"].index[0], :, :n])
    assert len(grid["recordings"]) == 2 and grid["recordings"][0].ndim == 1


def test_values_that_do_not_depend_on_the_seed_are_not_counted_as_seeds():
    judged, scale = _planted()
    free = []
    for features, folds in (("sequences", [0, 1]), ("windows", [0])):
        for stage, judge, value in (("resynthesis", "pesq", 3.2), ("original", "egemaps", 0.5),
                                    ("resynthesis", "egemaps", 0.45)):
            rows = pd.DataFrame(_rows("recordings", features, folds, [0, 1, 2], stage, judge, value))
            rows.loc[rows["fold"] == 1, "value"] = value + 0.2  # one value per fold, the same in every seed
            free.append(rows)
    keep = ~((judged["model"] == "recordings") & (judged["judge"] == "egemaps"))
    judged = pd.concat([judged[keep], *free], ignore_index=True)
    table = hearing.hearing_table(judged, scale).set_index(["model", "stage", "judge"])
    row = table.loc[("factorised", "resynthesis", "pesq")]
    assert row["unit"] == "fold" and row["n_runs"] == 2 and row["value"] == pytest.approx(3.3)
    one_fold = table.loc[("vae", "resynthesis", "pesq")]
    assert one_fold["unit"] == "fold" and one_fold["n_runs"] == 1 and np.isnan(one_fold["ci_low"])
    assert table.loc[("factorised", "original", "cnn"), "unit"] == "seed"  # the CNN judges have seeds
    goals = hearing.goal_rows(judged, scale).set_index("goal")
    control = goals[goals.index.str.contains("eGeMAPS judge") & goals.index.str.contains("control")].iloc[0]
    assert control["n_runs"] == 2 and "over the folds" in control["rule"]
    own = goals[goals.index.str.contains("eGeMAPS judge: share") & ~goals.index.str.contains("control")].iloc[0]
    assert own["n_runs"] == 6 and "over the folds" not in own["rule"]  # the model's runs have seeds


def test_reconstruction_loss_is_paired_per_run():
    judged, _ = _planted()
    loss = hearing.reconstruction_loss(judged).set_index(["model", "judge"])
    # factorised CNN: 0.80 against the recordings' 0.62; eGeMAPS 0.20 against 0.50; the VAE 0.20 against 0.62
    assert loss.loc[("factorised", "cnn"), "difference"] == pytest.approx(0.18, abs=0.02)
    assert loss.loc[("factorised", "egemaps"), "difference"] == pytest.approx(-0.30, abs=0.02)
    assert loss.loc[("vae", "cnn"), "difference"] == pytest.approx(-0.42, abs=0.02)
    assert (loss["n_runs"] == 3).all() and ("sequence", "cnn") not in loss.index
