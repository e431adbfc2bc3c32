"""Trials and sweeps: stable ids, resumable folders, local worker processes and a real Ray cluster."""

from __future__ import annotations

import doctest
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emovae_utils import experiments, runners
from emovae_utils.io import sha1_bytes
from emovae_utils.experiments import Trial, run_trial, run_trials, select_clips, sweep, trial_status

EPOCHS = 2


@pytest.fixture(scope="module")
def tiny():
    """8 synthetic clips of 4 actors (2 each), statements 1 and 2."""
    X = np.random.default_rng(0).normal(0.0, 10.0, size=(8, 80, 128)).astype(np.float32)
    index = pd.DataFrame({"actor": np.repeat([1, 2, 3, 4], 2), "statement": np.tile([1, 2], 4)})
    return X, index


def small(**fields) -> Trial:
    fields.setdefault("fit", {"epochs": EPOCHS})
    return Trial(fields.pop("model", "beta_vae"), fields.pop("config", {"latent_dim": 4}), **fields)


def test_trial_ids_are_stable_and_distinct():
    t = Trial("emotion_vae", {"latent_dim": 8}, {"actor": [1]}, seed=2, fit={"epochs": 5})
    assert t.trial_id == Trial("emotion_vae", {"latent_dim": 8}, {"actors": (1,)}, 2, None, {"epochs": 5}).trial_id
    assert t.trial_id == "emotion_vae-s2-" + t.content_hash[:10]
    # the hash of the canonical JSON spec: pinned, so a change to the hashing shows up here
    assert t.content_hash == sha1_bytes(
        b'{"config":{"latent_dim":8},"data":{"actor":[1]},"fit":{"epochs":5},"fold":null,'
        b'"label":"","model":"emotion_vae","seed":2}')
    variants = [
        t,
        Trial("emotion_vae", {"latent_dim": 8}, {"actor": [1]}, seed=3, fit={"epochs": 5}),
        Trial("emotion_vae", {"latent_dim": 8}, {"actor": [1]}, seed=2, fold=0, fit={"epochs": 5}),
        Trial("emotion_vae", {"latent_dim": 4}, {"actor": [1]}, seed=2, fit={"epochs": 5}),
        Trial("emotion_vae", {"latent_dim": 8}, {"actor": [2]}, seed=2, fit={"epochs": 5}),
        Trial("emotion_vae", {"latent_dim": 8}, {"actor": [1]}, seed=2, fit={"epochs": 6}),
        Trial("beta_vae", {"latent_dim": 8}, {"actor": [1]}, seed=2, fit={"epochs": 5}),
        Trial("emotion_vae", {"latent_dim": 8}, {"actor": [1]}, seed=2, fit={"epochs": 5}, label="one_actor"),
    ]
    assert len({v.trial_id for v in variants}) == len(variants)
    assert variants[2].trial_id.startswith("emotion_vae-s2-fold0-") and variants[-1].trial_id.startswith("one_actor-")
    # frozen, hashable, picklable, and rebuilt from its spec
    import pickle

    assert pickle.loads(pickle.dumps(t)) == t and hash(pickle.loads(pickle.dumps(t))) == hash(t)
    assert Trial.from_spec(json.loads(json.dumps(t.spec()))) == t
    with pytest.raises(TypeError):
        t.config["latent_dim"] = 3
    row = variants[-1].row()
    assert row["data.actor"] == "[1]" and row["fit.epochs"] == 5 and row["config.latent_dim"] == 8


def test_fit_settings_are_a_fitconfig_whose_spec_keeps_the_keys_given():
    import dataclasses
    import pickle

    from emovae_utils.train import FitConfig

    given = {"epochs": 5, "lr": 1e-3, "threads": 1, "sample_every": None}  # all equal to a default
    t = Trial("emotion_vae", {"latent_dim": 8}, {"actor": [1]}, seed=2, fit=given)
    assert isinstance(t.fit, FitConfig) and (t.fit.epochs, t.fit.lr, t.fit.threads) == (5, 1e-3, 1)
    # the spec (and so the id) holds exactly the keys given, as before FitConfig: pinned
    assert t.spec()["fit"] == given
    assert t.content_hash == sha1_bytes(
        b'{"config":{"latent_dim":8},"data":{"actor":[1]},"fit":{"epochs":5,"lr":0.001,"sample_every":null,'
        b'"threads":1},"fold":null,"label":"","model":"emotion_vae","seed":2}')
    # the trial defaults fill what is not given; they are not part of the spec
    plain = Trial("emotion_vae", fit={"epochs": 5})
    assert (plain.fit.threads, plain.fit.sample_every, plain.fit.progress) == (1, None, False)
    assert plain.spec()["fit"] == {"epochs": 5}
    # round trips: spec, pickle, dataclasses.replace of another field
    for trial in (t, plain):
        again = Trial.from_spec(json.loads(json.dumps(trial.spec())))
        assert again == trial and again.trial_id == trial.trial_id and again.fit == trial.fit
        assert pickle.loads(pickle.dumps(trial)).trial_id == trial.trial_id
        assert dataclasses.replace(trial, seed=7).spec()["fit"] == trial.spec()["fit"]
    # a FitConfig given directly: its spec is epochs and what differs from the trial defaults
    direct = Trial("emotion_vae", fit=FitConfig(epochs=5, batch_size=64, threads=1, sample_every=None))
    assert direct.spec()["fit"] == {"epochs": 5, "batch_size": 64}
    assert Trial.from_spec(direct.spec()) == direct
    assert Trial("emotion_vae", fit={"epochs": 5, "batch_size": 64}) == direct  # same spec, same trial
    assert direct.trial_id == Trial("emotion_vae", fit={"epochs": 5, "batch_size": 64}).trial_id


def test_trial_rejects_bad_specs():
    with pytest.raises(KeyError, match="available"):
        Trial("no_such_vae", fit={"epochs": 1})
    with pytest.raises(ValueError, match="epochs"):
        Trial("beta_vae", fit={})
    with pytest.raises(ValueError, match="seed is a Trial field"):
        Trial("beta_vae", fit={"epochs": 1, "seed": 3})
    with pytest.raises(ValueError, match="unknown fit settings"):
        Trial("beta_vae", fit={"epochs": 1, "learning_rate": 0.1})
    with pytest.raises(ValueError, match="fold"):
        Trial("beta_vae", fold=5, fit={"epochs": 1})
    with pytest.raises(ValueError, match="label"):
        Trial("beta_vae", fit={"epochs": 1}, label="a/b")


def test_sweep_is_the_cross_product():
    trials = sweep(["emotion_vae", ("beta_vae", {"beta": 4.0})], [{"actor": [1]}, {"gender": "male"}],
                   seeds=range(3), folds=[None, 1], epochs=3, batch_size=4, label="x")
    assert len(trials) == 2 * 2 * 3 * 2 and len({t.trial_id for t in trials}) == 24
    assert [(t.seed, t.fold) for t in trials[:4]] == [(0, None), (0, 1), (1, None), (1, 1)]
    assert trials[-1].model == "beta_vae" and trials[-1].data == {"gender": "male"}
    assert all(t.fit_settings() == {"epochs": 3, "batch_size": 4} and t.label == "x" for t in trials)
    assert len(sweep("beta_vae", seeds=7, folds=2, epochs=1)) == 1


def test_select_clips(tiny):
    X, index = tiny
    assert select_clips(index, {"actor": (1, 2), "statement": 1}, None, 8).tolist() == [0, 2]
    assert select_clips(index, {}, 0, 8).tolist() == [0, 1, 4, 5, 6, 7]  # fold 0 holds out actor 2
    assert select_clips(None, {}, None, 3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="no clips"):
        select_clips(index, {"actor": 99}, None, 8)
    with pytest.raises(KeyError, match="gender"):
        select_clips(index, {"gender": "male"}, None, 8)
    with pytest.raises(ValueError, match="index"):
        select_clips(None, {"actor": 1}, None, 8)


def test_run_trial_writes_its_folder_and_a_rerun_skips_it(tiny, tmp_path, monkeypatch):
    import emovae_utils.train as train

    calls = []
    real_fit = train.fit

    @functools.wraps(real_fit)
    def counting_fit(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train, "fit", counting_fit)
    trials = [small(data={"actor": [1, 2]}, seed=s, label="pair") for s in (0, 1)]
    first = run_trials(trials, tmp_path, tiny, workers=1, progress=False)
    assert len(calls) == 2 and first["status"].tolist() == ["ok", "ok"] and first.attrs["failed"] == []
    assert first["trial_id"].tolist() == [t.trial_id for t in trials]
    assert first["n_clips"].tolist() == [4, 4] and first["train_actors"].tolist() == ["[1, 2]"] * 2
    assert first["epochs_done"].tolist() == [EPOCHS] * 2 and first["seed"].tolist() == [0, 1]
    folder = tmp_path / trials[0].trial_id
    for name in ("trial.json", "run.json", "history.csv", "checkpoint.pt", "model.pt", "result.json"):
        assert (folder / name).is_file(), name
    assert trial_status(trials[0], tmp_path) == "complete"
    from emovae_utils.models import load_model

    model, meta = load_model(folder / "model.pt")
    assert meta["trial_id"] == trials[0].trial_id and model.latent_dim == 4
    # different seeds, different initial weights
    assert first["final_total"].nunique() == 2
    mtime = (folder / "result.json").stat().st_mtime_ns
    again = run_trials(trials, tmp_path, tiny, workers=1, progress=False)
    assert len(calls) == 2 and (folder / "result.json").stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(first, again)
    assert run_trial(trials[0], tmp_path, tiny) == json.loads((folder / "result.json").read_text())
    # a complete result is never reused for other clips
    with pytest.raises(ValueError, match="other clips"):
        run_trials(trials, tmp_path, (tiny[0] + 1.0, tiny[1]), workers=1, progress=False)
    assert len(calls) == 2


def test_an_interrupted_trial_resumes_from_its_checkpoint(tiny, tmp_path):
    trial = small(seed=3, fit={"epochs": EPOCHS, "checkpoint_every": 1})
    row = run_trial(trial, tmp_path, tiny)
    folder = tmp_path / trial.trial_id
    history = pd.read_csv(folder / "history.csv")
    (folder / "result.json").unlink()  # as if killed after the last checkpoint, before the result
    assert trial_status(trial, tmp_path) == "partial"
    again = run_trial(trial, tmp_path, tiny)
    assert json.loads((folder / "run.json").read_text())["resumed_from_epoch"] == EPOCHS
    pd.testing.assert_frame_equal(history, pd.read_csv(folder / "history.csv"))
    assert again["final_total"] == row["final_total"]


def test_a_failed_trial_is_recorded_and_the_sweep_goes_on(tiny, tmp_path, capsys):
    good, bad = small(data={"actor": [3]}), small(data={"actor": [99]})
    rows = run_trials([good, bad, good], tmp_path, tiny, workers=1)
    assert len(rows) == 2 and rows["status"].tolist() == ["ok", "failed"]
    assert rows.attrs["failed"] == [bad.trial_id]
    assert "no clips" in rows.loc[1, "error"] and rows.loc[0, "error"] == ""
    assert "no clips" in (tmp_path / bad.trial_id / "error.txt").read_text()
    assert trial_status(bad, tmp_path) == "failed"
    out = capsys.readouterr().out
    assert f"{bad.trial_id} FAILED" in out and "1 ok (0 already complete), 1 failed" in out
    assert str(tmp_path / bad.trial_id / "error.txt") in out
    rows = run_trials([good, bad], tmp_path, tiny, workers=1)  # retried, still failing; good skipped
    assert "1 already complete" in capsys.readouterr().out and rows.attrs["failed"] == [bad.trial_id]


def barrier_evaluate(model, X, index, trial, positions):
    """Waits (up to 60 s) until both trials of the parallel test are evaluating at the same time."""
    folder = Path(os.environ["EMOVAE_TEST_BARRIER"])
    (folder / trial.trial_id).touch()
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    import torch

    with torch.no_grad():
        mean_mu = float(model.encode(torch.as_tensor(X[positions]))[0].mean())
    return {"pid": os.getpid(), "met": len(list(folder.iterdir())) >= 2, "torch_threads": torch.get_num_threads(),
            "mean_mu": mean_mu}


def test_local_pool_runs_two_trials_in_parallel(tiny, tmp_path, monkeypatch):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    monkeypatch.setenv("EMOVAE_TEST_BARRIER", str(barrier))
    trials = sweep(("beta_vae", {"latent_dim": 4}), {"statement": 1}, seeds=[0, 1], epochs=EPOCHS)
    rows = run_trials(trials, tmp_path / "sweep", tiny, workers=2, evaluate=barrier_evaluate, progress=False)
    assert rows["status"].tolist() == ["ok", "ok"], rows["error"].tolist()
    assert rows["met"].all() and rows["pid"].nunique() == 2 and os.getpid() not in rows["pid"].tolist()
    assert rows["torch_threads"].tolist() == [1, 1] and rows["n_clips"].tolist() == [4, 4]
    assert np.isfinite(rows["mean_mu"]).all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_cluster_runs_a_sweep_through_the_address(tiny, tmp_path, capsys):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'emovae[cluster]')")
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        pytest.skip(f"no ray command next to {sys.executable}")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--object-store-memory=100000000",
         f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    t0 = time.perf_counter()
    try:
        trials = sweep("beta_vae", {"actor": [1, 2, 3]}, seeds=[0, 1], folds=[None, 0], epochs=EPOCHS)
        deadline = time.monotonic() + 60
        while True:  # the head's GCS port accepts connections once it is up
            assert head.poll() is None, "ray start --head exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not come up within 60 s"
                time.sleep(0.5)
        rows = run_trials(trials, tmp_path, tiny, address=f"127.0.0.1:{port}")
        out = capsys.readouterr().out
        assert f"ray at 127.0.0.1:{port}" in out and "4 ok (0 already complete), 0 failed" in out
        assert rows["status"].tolist() == ["ok"] * 4, rows["error"].tolist()
        assert rows["trial_id"].tolist() == [t.trial_id for t in trials]
        assert rows["n_clips"].tolist() == [6, 4, 6, 4] and rows["held_out_actors"].iloc[1] == "[2, 5, 14, 15, 16]"
        assert all((tmp_path / t.trial_id / "result.json").is_file() for t in trials)
        # the same trials again: all complete, nothing sent to the cluster
        assert run_trials(trials, tmp_path, tiny, address=f"127.0.0.1:{port}", progress=False)["status"].eq("ok").all()
        # a local rerun agrees with the cluster's rows bit for bit (same seeds, one thread)
        local = run_trials(trials[:1], tmp_path / "local", tiny, workers=1, progress=False)
        assert local.loc[0, "final_total"] == rows.loc[0, "final_total"]
    finally:
        head.send_signal(signal.SIGTERM)  # --block: the head takes its raylet and workers down with it
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)
        print(f"ray_cluster test: {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def test_docstring_examples():
    assert doctest.testmod(experiments).failed == 0


def test_a_conditioned_trial_builds_its_condition_from_the_training_clips(tiny, tmp_path, monkeypatch):
    X, index = tiny
    index = index.assign(emotion_id=np.tile([1, 2, 3, 4], 2))
    plain = small(model="emotion_vae", config={"latent_dim": 4}, fold=0)
    cond = small(model="speaker_vae", config={"latent_dim": 4}, fold=0, cond="speaker_code")
    assert "cond" not in plain.spec() and cond.spec()["cond"] == "speaker_code"
    assert cond.trial_id != small(model="speaker_vae", config={"latent_dim": 4}, fold=0).trial_id
    assert Trial.from_spec(cond.spec()) == cond and cond.row()["cond"] == "speaker_code"
    with pytest.raises(KeyError, match="known"):
        small(cond="no_such_condition")
    seen = {}
    from emovae_utils import train

    real_fit = train.fit

    @functools.wraps(real_fit)
    def spy(model, X_, config=None, **kw):
        seen["X"], seen["cond"], seen["labels"], seen["config"] = X_, kw.get("cond"), kw.get("labels"), config
        return real_fit(model, X_, config, **kw)

    monkeypatch.setattr(train, "fit", spy)
    row = run_trial(cond, tmp_path, (X, index))
    assert row["status"] == "ok" and row["cond"] == "speaker_code"
    # fold 0 holds out actor 2: the codes are the training actors' own mean spectra
    train_rows = index.index[index.actor != 2].to_numpy()
    expect = np.stack([X[index.actor == a].mean(axis=(0, 2)) for a in index.actor[train_rows]])
    np.testing.assert_allclose(seen["cond"], expect, rtol=1e-5, atol=1e-4)
    assert seen["X"].shape[0] == len(train_rows) and seen["labels"] is None
    assert seen["config"].resume and not seen["config"].progress and seen["config"].epochs == cond.fit.epochs
    # the labels condition: (emotion index, actor index), 0-based; the supervised VAE declares labels, so they
    # go to its loss (fit's labels), never to forward (fit's cond)
    run_trial(small(model="supervised_vae", config={"latent_dim": 4, "emotion_dims": 2}, cond="labels"),
              tmp_path, (X, index))
    assert seen["cond"] is None
    assert seen["labels"].tolist() == [[e - 1, a - 1] for e, a in zip(index.emotion_id, index.actor)]
    with pytest.raises(ValueError, match="takes no"):
        small(model="emotion_vae", cond="speaker_code")  # an unconditional model declares no condition
    with pytest.raises(ValueError, match="takes no"):
        small(model="speaker_vae", cond="labels")


def test_trials_started_while_a_worker_imports_the_script_say_what_to_do(tiny, tmp_path, monkeypatch):
    """A script without a main guard re-runs its trials in every spawned worker: say so instead of nesting pools."""
    import multiprocessing as mp

    monkeypatch.setattr(mp.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RuntimeError, match='if __name__ == "__main__"'):
        run_trials([small(seed=0), small(seed=1)], tmp_path, tiny[0], workers=2, progress=False)


def test_a_script_without_a_main_guard_fails_fast_instead_of_hanging(tmp_path):
    """Its spawned workers die while importing it; the caller gets failed rows and the reason, not a hang."""
    script = tmp_path / "no_guard.py"
    script.write_text(
        "import numpy as np\n"
        "from emovae_utils.experiments import run_trials, sweep\n"
        "X = np.random.default_rng(0).normal(size=(64, 80, 128)).astype('float32')  # > a pipe's buffer\n"
        f"rows = run_trials(sweep('beta_vae', seeds=[0, 1], epochs=1), {str(tmp_path / 'root')!r}, X, workers=2)\n"
        "print('STATUS', rows['status'].tolist())\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert "STATUS ['failed', 'failed']" in done.stdout, done.stdout + done.stderr
    assert 'if __name__ == "__main__"' in done.stderr
    assert not list((tmp_path / "root" / runners._SHARED_DIR).glob("*.npy"))  # the shared copy is removed


# ------------------------------------------------------------------ faults: lost workers, two sweeps, no cluster


def killing_evaluate(model, X, index, trial, positions):
    """Kills its own worker with SIGKILL, as the out-of-memory killer does: seed 1 on every try, seed 2 once."""
    marker = Path(os.environ["EMOVAE_TEST_KILLS"]) / trial.trial_id
    if trial.seed == 1 or (trial.seed == 2 and not marker.exists()):
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"pid": os.getpid()}


def test_a_killed_worker_costs_only_its_own_trial(tiny, tmp_path, monkeypatch, capsys):
    kills = tmp_path / "kills"
    kills.mkdir()
    monkeypatch.setenv("EMOVAE_TEST_KILLS", str(kills))
    trials = sweep(("beta_vae", {"latent_dim": 4}), {"statement": 1}, seeds=[0, 1, 2, 3], epochs=EPOCHS)
    rows = run_trials(trials, tmp_path / "sweep", tiny, workers=2, evaluate=killing_evaluate)
    out, err = capsys.readouterr()
    assert rows["status"].tolist() == ["ok", "failed", "ok", "ok"], rows["error"].tolist()
    assert rows.attrs["failed"] == [trials[1].trial_id]
    error = rows.loc[1, "error"]
    assert "worker process killed by signal 9 (SIGKILL: out of memory?)" in error and "2 tries" in error
    error_txt = tmp_path / "sweep" / trials[1].trial_id / "error.txt"
    assert "out-of-memory killer" in error_txt.read_text() and f"tracebacks in {error_txt}" in out
    assert f"{trials[2].trial_id}: worker process killed by signal 9" in err  # retried once, then fine
    # the retried trial resumed from its checkpoint: the same numbers as a trial that was never killed
    alone = run_trials(trials[2:3], tmp_path / "alone", tiny, workers=1, progress=False)
    assert rows.loc[2, "final_total"] == alone.loc[0, "final_total"]
    assert not list((tmp_path / "sweep" / runners._SHARED_DIR).glob("*.npy"))


def second_sweep_evaluate(model, X, index, trial, positions):
    """Seed 11 waits until the first sweep is done, then loses its worker once: the fresh worker needs the clips."""
    folder = Path(os.environ["EMOVAE_TEST_TWO_SWEEPS"])
    if trial.seed == 11 and not (folder / "killed").exists():
        deadline = time.monotonic() + 120
        while not (folder / "first_done").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        (folder / "killed").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return {}


def test_two_sweeps_of_the_same_data_in_one_folder_keep_their_own_shared_clips(tiny, tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("EMOVAE_TEST_TWO_SWEEPS", str(tmp_path))
    root = tmp_path / "models"
    first_rows = {}

    def first():
        try:
            first_rows["rows"] = run_trials(sweep("beta_vae", seeds=[0, 1], epochs=EPOCHS, label="first"), root, tiny,
                                            workers=2, progress=False)
        finally:
            (tmp_path / "first_done").touch()

    thread = threading.Thread(target=first)
    thread.start()
    second = run_trials(sweep("beta_vae", seeds=[10, 11], epochs=EPOCHS, label="second"), root, tiny, workers=2,
                        evaluate=second_sweep_evaluate, progress=False)
    thread.join(timeout=300)
    assert (tmp_path / "killed").exists()  # the second sweep started a fresh worker after the first one ended
    assert first_rows["rows"]["status"].tolist() == ["ok", "ok"], first_rows["rows"]["error"].tolist()
    assert second["status"].tolist() == ["ok", "ok"], second["error"].tolist()
    assert not list((root / runners._SHARED_DIR).glob("*.npy"))
    # each sweep writes its own file, and a dead sweep's file is removed by the next one
    a, path_a = runners._share_data(tiny, str(root))
    b, path_b = runners._share_data(tiny, str(root))
    assert path_a != path_b and path_a.is_file() and path_b.is_file()
    orphan = path_a.with_name(path_a.name.replace(f"-{os.getpid()}-", "-999999999-"))
    path_a.rename(orphan)
    runners._share_data(tiny, str(root))[1].unlink()
    assert not orphan.exists() and path_b.is_file()
    path_b.unlink()


def test_an_unreachable_ray_address_fails_fast_and_names_it(tiny, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'emovae[cluster]')")
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match=f"no Ray cluster at address '{address}'"):
        run_trials([small()], tmp_path, tiny, address=address, progress=False)
    seconds = time.perf_counter() - t0
    print(f"unreachable Ray address refused in {seconds:.1f} s", file=sys.stderr)
    assert seconds < 60
