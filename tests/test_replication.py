"""The report's experiments over seeds (emovae_utils.replication) and the generated README results."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emovae_utils import readme, replication
from emovae_utils.metrics import verdict_row


def _tiny_data(n_actors: int = 4, per_actor: int = 3):
    rng = np.random.default_rng(0)
    X = rng.normal(-40, 10, size=(n_actors * per_actor, 80, 128)).astype(np.float32)
    index = pd.DataFrame({"actor": np.repeat(np.arange(1, n_actors + 1), per_actor), "statement": 1})
    return X, index


def test_seeded_trials_render_samples_for_one_seed_only():
    trials = replication.seeded_trials("one", {"actor": 1}, [3, 1, 2], epochs=2, sample_every=5)
    assert [t.seed for t in trials] == [3, 1, 2]
    assert [t.fit.sample_every for t in trials] == [5, None, None]
    assert len({t.trial_id for t in trials}) == 3 and all(t.label == "one" for t in trials)
    chosen = replication.seeded_trials("one", {"actor": 1}, [3, 1], epochs=2, sample_every=5, sample_seed=1)
    assert [t.fit.sample_every for t in chosen] == [None, 5]
    folds = replication.seeded_trials("f", {}, [0, 1], folds=range(5), epochs=1)
    assert [(t.seed, t.fold) for t in folds][:6] == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0)]


def test_seeded_trials_refuse_no_or_repeated_seeds():
    with pytest.raises(ValueError, match="at least one seed"):
        replication.seeded_trials("x", {}, [], epochs=1)
    with pytest.raises(ValueError, match="distinct"):
        replication.seeded_trials("x", {}, [1, 1], epochs=1)


def test_workers_fill_the_cores():
    assert replication.workers_for(1, cores=16) == 16
    assert replication.workers_for(3, cores=16) == 5
    assert replication.workers_for(8, cores=2) == 1


def test_run_seeds_trains_each_seed_and_the_manifest_finds_them_again(tmp_path):
    X, index = _tiny_data()
    trials = replication.seeded_trials("tiny", {"actor": [1, 2]}, [0, 1], epochs=2, batch_size=None, threads=1,
                                       checkpoint_every=None)
    rows = replication.run_seeds(trials, tmp_path, (X, index), progress=False)
    assert sorted(rows["seed"]) == [0, 1] and (rows["n_clips"] == 6).all()
    assert all(p.startswith(str(tmp_path / replication.TRIALS_DIR)) for p in rows["path"])
    manifest = replication.read_manifest(replication.write_manifest(rows, tmp_path / "tiny_seeds.csv"))
    runs = replication.histories(manifest)
    assert sorted(runs) == [0, 1] and all(len(h) == 2 for h in runs.values())
    assert not runs[0]["total"].equals(runs[1]["total"])  # another seed, another run
    nets = replication.load_models(manifest)
    assert sorted(nets) == [0, 1] and not nets[0].training
    again = replication.run_seeds(trials, tmp_path, (X, index), progress=False)  # complete: reused
    assert again["wall_seconds"].tolist() == rows["wall_seconds"].tolist()


def test_run_seeds_names_the_traceback_of_a_failed_trial(tmp_path):
    X, index = _tiny_data()
    trials = replication.seeded_trials("bad", {"actor": 99}, [0], epochs=1)  # no clip of actor 99
    with pytest.raises(RuntimeError, match="error.txt"):
        replication.run_seeds(trials, tmp_path, (X, index), progress=False)


def test_read_manifest_says_which_notebook_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="02_train_single_actor"):
        replication.read_manifest(tmp_path / "missing.csv", "02_train_single_actor")


def test_flat_epochs_judge_each_loss_and_both():
    t = np.arange(1, 4001)
    falling = pd.DataFrame({"epoch": t, "reconstruction": 100 + 900 * np.exp(-t / 300), "kl": np.full(t.size, 5.0)})
    still = falling.assign(reconstruction=5000.0 - t)  # falls by 1 per epoch to the end
    flat = replication.flat_epochs({0: falling, 1: still})
    assert flat.loc[0, "kl"] == 1 and 1000 < flat.loc[0, "reconstruction"] < 3000
    assert flat.loc[0, "both"] == flat.loc[0, "reconstruction"]
    assert np.isnan(flat.loc[1, "reconstruction"]) and np.isnan(flat.loc[1, "both"])
    assert (flat["n_epochs"] == 4000).all()


def test_record_verdicts_and_losses_replace_rows_by_key(tmp_path):
    replication.record_verdicts([verdict_row("a", "holds", "r", 1, 0, 2, 3),
                                 verdict_row("b", "does not hold", "r", 0, 0, 0, 3)], tmp_path)
    table = replication.record_verdicts([verdict_row("a", "inconclusive", "r2", 1, 0, 2, 5)], tmp_path)
    assert table.set_index("claim")["verdict"].to_dict() == {"b": "does not hold", "a": "inconclusive"}
    h = pd.DataFrame({"epoch": [1, 2], "reconstruction": [3.0, 2.0], "kl": [1.0, 1.5]})
    flat = pd.DataFrame({"both": [2.0, np.nan]}, index=[0, 1])
    replication.record_losses("one", {0: h, 1: h}, flat, tmp_path)
    replication.record_losses("two", {0: h}, flat, tmp_path)
    out = replication.record_losses("one", {0: h}, flat, tmp_path)
    assert out.groupby("experiment").size().to_dict() == {"one": 1, "two": 1}


def test_verdict_markdown_names_claim_verdict_interval_and_rule():
    text = replication.verdict_markdown(verdict_row("(b) weaker", "inconclusive", "spans 0.", -0.01, -0.05, 0.03, 15))
    assert text.startswith("**(b) weaker: inconclusive.**") and "[-0.050, 0.030] over 15 runs" in text
    assert text.endswith("Rule: spans 0.")


def _result_files(folder):
    pd.DataFrame([verdict_row("(a) three dims", "does not hold", "count rule", 0.5, 0.0, 1.0, 6)]).to_csv(
        folder / "verdicts.csv", index=False)
    pd.DataFrame({"experiment": ["one actor"] * 2, "seed": [0, 1], "epochs": [100, 100],
                  "final_reconstruction": [19.0, 21.0], "final_kl": [6.0, 6.5], "flat_epoch": [80.0, np.nan]}).to_csv(
        folder / "loss_summary.csv", index=False)
    pd.DataFrame({"representation": ["PCA-8"], "dims": [8], "n_seeds": [1], "emotion_uar_mean": [0.31],
                  "emotion_uar_ci_low": [0.27], "emotion_uar_ci_high": [0.35], "speaker_id_acc": [np.nan],
                  "gender_uar": [0.8]}).to_csv(folder / "table_representation_probes.csv", index=False)
    pd.DataFrame({"notebook": ["01_preprocess.ipynb", "02_train_single_actor.ipynb"], "preset": "paper",
                  "started": ["2026-11-30T10:00:00", "2026-11-30T10:01:00"], "seconds": [60.0, 120.0],
                  "status": "ok"}).to_csv(folder / "run_log.csv", index=False)


def test_results_markdown_renders_every_result_file(tmp_path):
    _result_files(tmp_path)
    text = readme.results_markdown(tmp_path)
    assert "| (a) three dims | **does not hold** | 0.500 [0.000, 1.000] | 6 | count rule |" in text
    assert "| one actor | 2 | 100 | 20.0 [19.0, 21.0] | 6.25 [6.00, 6.50] | not flat in 1 of 2 seeds; others 80-80 |" in text
    assert "| PCA-8 | 8 | 1 | 0.310 [0.270, 0.350] | n/a | 0.800 |" in text
    assert "**3.0 min** for the study (notebooks 01-05: 01 60 s, 02 120 s; run of 2026-11-30" in text
    with pytest.raises(FileNotFoundError, match="make reproduce"):
        readme.results_markdown(tmp_path / "empty")


def test_update_readme_replaces_only_the_marked_block(tmp_path):
    _result_files(tmp_path)
    path = tmp_path / "README.md"
    path.write_text(f"# Title\n\nbefore\n{readme.START}\nold numbers 0.999\n{readme.END}\nafter\n", encoding="utf-8")
    assert readme.update_readme(path, tmp_path) is True
    text = path.read_text(encoding="utf-8")
    assert "0.999" not in text and text.startswith("# Title\n\nbefore\n") and text.endswith(f"{readme.END}\nafter\n")
    assert readme.readme_block(path) == readme.results_markdown(tmp_path)
    assert readme.update_readme(path, tmp_path) is False  # idempotent
    path.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="marker"):
        readme.update_readme(path, tmp_path)


def test_the_committed_readme_says_what_the_committed_result_files_say():
    from emovae_utils.paths import PROJECT_ROOT

    figures = PROJECT_ROOT / "figures"
    if not (figures / "verdicts.csv").exists():
        pytest.skip("no paper-preset result files committed yet (make reproduce writes them)")
    assert readme.readme_block(PROJECT_ROOT / "README.md") == readme.results_markdown(figures), (
        "README.md's results section differs from figures/*.csv: run `emovae readme` (make reproduce does)")


def test_compare_verdicts_flags_a_changed_verdict_and_a_number_outside_the_interval(tmp_path):
    a = pd.DataFrame([verdict_row("x", "holds", "r", 1.0, 0.5, 1.5, 3), verdict_row("y", "inconclusive", "r", 0, -1, 1, 3),
                      verdict_row("z", "does not hold", "r", np.nan, np.nan, np.nan, 3)])
    a.to_csv(tmp_path / "a.csv", index=False)
    b = a.copy()
    b.loc[0, ["statistic", "ci_low", "ci_high"]] = [1.8, 1.6, 2.0]  # outside a's interval
    b.loc[1, "verdict"] = "holds"
    out = replication.compare_verdicts(tmp_path / "a.csv", b).set_index("claim")
    assert out["same_verdict"].to_dict() == {"x": True, "y": False, "z": True}
    assert out["inside_each_other"].to_dict() == {"x": False, "y": True, "z": True}


def test_results_markdown_renders_a_replication_comparison(tmp_path):
    _result_files(tmp_path)
    first = pd.read_csv(tmp_path / "verdicts.csv")
    second = first.assign(statistic=[1.5], ci_low=[1.2], ci_high=[1.8])  # outside the first interval
    replication.compare_verdicts(first, second).to_csv(tmp_path / "replication.csv", index=False)
    text = readme.results_markdown(tmp_path)
    assert "**1 of 1 verdicts identical**; in 0 of 1 claims" in text
    assert ("| (a) three dims | does not hold 0.500 [0.000, 1.000] | does not hold 1.500 [1.200, 1.800] | yes | no |"
            in text)


def test_run_seeds_takes_the_threads_from_the_trials(monkeypatch, tmp_path):
    seen = {}

    def fake_run_trials(trials, root, data, *, workers, **kw):
        seen["workers"] = workers
        frame = pd.DataFrame({"trial_id": [t.trial_id for t in trials]})
        frame.attrs["failed"] = []
        return frame

    monkeypatch.setattr(replication, "run_trials", fake_run_trials)
    for threads in (1, 2):
        trials = replication.seeded_trials("t", {}, [0, 1], epochs=1, threads=threads)
        replication.run_seeds(trials, tmp_path, None, progress=False)
        assert seen["workers"] == replication.workers_for(threads)


def test_replication_rows_are_kept_per_comparison_and_overlap_is_the_weaker_check(tmp_path):
    a = pd.DataFrame({"claim": ["x", "y"], "verdict": ["holds", "holds"], "statistic": [1.0, 1.0],
                      "ci_low": [0.5, 0.5], "ci_high": [1.5, 1.5]})
    b = a.assign(statistic=[1.2, 1.7], ci_low=[0.9, 1.4], ci_high=[1.6, 2.0])  # y: outside, but overlapping
    replication.record_replication(a, a, "threads 2", tmp_path)
    table = replication.record_replication(a, b, "seed set 2", tmp_path).set_index(["comparison", "claim"])
    assert len(table) == 4
    assert table.loc[("seed set 2", "y"), "intervals_overlap"] and not table.loc[("seed set 2", "y"), "inside_each_other"]
    assert table.loc[("seed set 2", "x"), "inside_each_other"]
    again = replication.record_replication(a, a, "seed set 2", tmp_path)  # a rerun replaces its own rows only
    assert len(again) == 4 and again["inside_each_other"].all()
