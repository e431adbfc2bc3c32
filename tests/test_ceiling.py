"""The nested ceiling, the protocols, validation curves and early stopping."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from emovae_utils import ceiling, protocols
from emovae_utils.callbacks import StopWhenFlat, Validation
from emovae_utils.models import build
from emovae_utils.train import fit
from emovae_utils.trial import Trial, run_trial


def _index(clips_per_actor: int = 8) -> pd.DataFrame:
    rows = [{"actor": a, "gender": "male" if a % 2 else "female", "emotion_id": 1 + k % 8, "statement": 1 + k % 2,
             "repetition": 1 + (k // 2) % 2} for a in range(1, 25) for k in range(clips_per_actor)]
    index = pd.DataFrame(rows)
    index["emotion"] = index["emotion_id"].map(lambda e: f"e{e}")
    return index


@pytest.mark.parametrize("protocol", ["study", "emobox"])
def test_every_fold_partitions_the_actors_and_emobox_tests_240_clips(protocol):
    p = protocols.PROTOCOLS[protocol]
    assert sorted(a for fold in p.folds for a in fold) == list(range(1, 25))
    ravdess_like = pd.DataFrame([{"actor": a, "statement": s} for a in range(1, 25) for s in (1, 2) for _ in range(30)])
    sizes = {int(protocols.held_out_rows(ravdess_like, f, protocol).sum()) for f in range(p.n_folds)}
    assert sizes == ({240} if protocol == "emobox" else {len(f) * 30 for f in p.folds})


@pytest.mark.parametrize("protocol", ["study", "emobox"])
def test_tuning_never_trains_or_validates_on_a_folds_test_actors(protocol):
    index = _index()
    genders = dict(zip(index.actor, index.gender))
    trials = ceiling.tuning_trials(index, ceiling.CeilingConfig(), protocol=protocol)
    assert len(trials) == protocols.PROTOCOLS[protocol].n_folds * 4
    for t in trials:
        test, train, val = set(protocols.fold_actors(t.fold, protocol)), set(t.data["actor"]), set(t.validation["actor"])
        assert not test & train and not test & val and not train & val
        assert train | val | test == set(range(1, 25))
        assert sorted(genders[a] for a in val) == ["female", "female", "male", "male"]


def test_a_trial_refuses_validation_clips_of_its_test_actors(tmp_path):
    index = _index(2)
    X = np.zeros((len(index), 80, 8), dtype=np.float32)
    bad = Trial("emotion_cnn", {}, {"actor": [1, 3]}, fold=0, fit={"epochs": 1}, cond="emotion",
                validation={"actor": [2]})  # actor 2 is a test actor of the study's fold 0
    with pytest.raises(ValueError, match="validation on test actors"):
        run_trial(bad, tmp_path, (X, index))
    overlap = Trial("emotion_cnn", {}, {"actor": [1, 3]}, fit={"epochs": 1}, cond="emotion", validation={"actor": [3]})
    with pytest.raises(ValueError, match="also training clips"):
        run_trial(overlap, tmp_path, (X, index))


def _trained_on(model, X, index, trial, positions):
    """An evaluate function: which actors the scored model trained on."""
    return {"seen": json.dumps(sorted(int(a) for a in set(index["actor"].iloc[positions])))}


def test_nested_run_chooses_on_validation_and_scores_only_the_final_models(tmp_path):
    index = _index(8)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((len(index), 80, 16)).astype(np.float32)
    X += 3 * (index["emotion_id"].to_numpy() % 2)[:, None, None]  # a learnable emotion cue
    cfg = ceiling.CeilingConfig(grid={"dropout": (0.1, 0.3)}, max_epochs=3, batch_size=16)
    selection, rows = ceiling.run((X, index), str(tmp_path), cfg, seeds=[0, 1], protocol="emobox", folds=[2],
                                  evaluate=_trained_on)
    assert len(selection) == 2 and selection["chosen"].sum() == 1
    chosen = selection[selection["chosen"]].iloc[0]
    assert chosen["val_accuracy"] == selection["val_accuracy"].max() and 1 <= chosen["best_epoch"] <= 3
    assert sorted(rows["seed"]) == [0, 1] and set(rows["epochs_done"]) == {int(chosen["best_epoch"])}
    assert len(rows) == 2 and all(not set(json.loads(a)) & set(protocols.EMOBOX_FOLDS[2]) for a in rows["seen"])
    tune = [p for p in Path(tmp_path, "trials").iterdir() if p.name.startswith("ceiling_tune_emobox")]
    curve = pd.read_csv(tune[0] / "validation.csv")
    assert list(curve.columns) == ["epoch", "val_total", "val_accuracy"] and len(curve) == 3
    spec = json.loads((tune[0] / "trial.json").read_text())
    assert spec["protocol"] == "emobox" and not set(spec["validation"]["actor"]) & set(protocols.EMOBOX_FOLDS[2])


def test_best_epoch_and_select_break_ties_as_documented(tmp_path):
    curve = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_accuracy": [0.5, 0.6, 0.6, 0.6], "val_total": [1, 1.2, 1.1, 1.1]})
    assert ceiling.best_epoch(curve) == (3, 0.6, 1.1)


def test_validation_leaves_the_training_trajectory_unchanged():
    X, y, X_val = torch.randn(12, 80, 16), torch.arange(12) % 8, torch.randn(6, 80, 16)
    histories = []
    for callbacks in ([], [Validation(X_val, labels=torch.arange(6))]):
        torch.manual_seed(0)
        histories.append(fit(build("emotion_cnn"), X, epochs=3, batch_size=4, labels=y, progress=False, seed=1,
                             callbacks=callbacks))
    pd.testing.assert_frame_equal(histories[0], histories[1])
    vae, X, X_val = [], torch.randn(8, 80, 128), torch.randn(4, 80, 128)  # a VAE's forward draws noise
    for callbacks in ([], [Validation(X_val)]):
        torch.manual_seed(0)
        vae.append(fit(build("emotion_vae"), X, epochs=2, batch_size=4, progress=False, callbacks=callbacks))
    pd.testing.assert_frame_equal(vae[0], vae[1])


def _run(curve):
    return SimpleNamespace(rows=[[i + 1, v] for i, v in enumerate(curve)], columns=["total"], config={}, stop=False)


def test_stop_when_flat_stops_a_flat_loss_and_not_a_falling_one():
    stop = StopWhenFlat(per_epochs=20)
    flat = _run(np.r_[np.linspace(100, 10, 30), np.full(60, 10.0)])
    stop.on_epoch_end(flat, 90, {})
    assert flat.stop and flat.config["flat_epoch"] <= 40
    falling = _run(np.linspace(100, 10, 90))
    stop.on_epoch_end(falling, 90, {})
    assert not falling.stop


def test_early_stopping_ends_training_and_records_it(tmp_path):
    history = fit(build("emotion_vae"), torch.zeros(4, 80, 128), epochs=300, lr=1e-2, progress=False,
                  stop_when_flat=20, out_dir=tmp_path, checkpoint_every=None)
    run = json.loads((tmp_path / "run.json").read_text())
    assert len(history) < 300 and run["stopped_early"] and run["epochs_done"] == len(history)
    assert run["flat_epoch"] < len(history)


def test_trial_ids_without_protocol_or_validation_are_unchanged():
    t = Trial("emotion_vae", {"latent_dim": 8}, {"actor": [1]}, seed=2, fit={"epochs": 5})
    assert "protocol" not in t.spec() and "validation" not in t.spec()
    assert Trial.from_spec(t.spec()).trial_id == t.trial_id
    e = Trial("emotion_cnn", {}, {}, fold=5, fit={"epochs": 1}, cond="emotion", protocol="emobox")
    assert Trial.from_spec(e.spec()) == e
    with pytest.raises(ValueError, match="fold must be 0..4"):
        Trial("emotion_vae", fold=5, fit={"epochs": 1})
