"""fit(): learning, reproducibility, kill-and-resume, NaN handling, outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emovae_utils import train
from emovae_utils.accel import cpu
from emovae_utils.models import BetaVAE, EmotionVAE
from emovae_utils.train import NonFiniteLossError, fit, load_checkpoint, set_determinism

THREADS = 1  # fixed for bitwise comparisons


def synthetic_spectrograms(n: int, seed: int = 0) -> np.ndarray:
    """Smooth, structured dB spectrograms (harmonic ridges under a moving envelope)."""
    rng = np.random.default_rng(seed)
    f = np.arange(80)[:, None]
    t = np.arange(128)[None, :]
    out = np.empty((n, 80, 128), np.float32)
    for i in range(n):
        f0 = rng.uniform(4, 9)
        vib = 1 + 0.08 * np.sin(2 * np.pi * t / rng.uniform(40, 120) + rng.uniform(0, 6))
        env = np.exp(-0.5 * ((t - rng.uniform(40, 90)) / rng.uniform(20, 40)) ** 2)
        s = np.full((80, 128), -70.0)
        for h in range(1, 8):
            s += 55 * env / h * np.exp(-0.5 * ((f - h * f0 * vib) / 1.5) ** 2)
        out[i] = np.clip(s, -80, 0)
    return out


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return synthetic_spectrograms(10)


def _model(seed: int = 0, latent_dim: int = 8) -> EmotionVAE:
    torch.manual_seed(seed)
    return EmotionVAE(latent_dim=latent_dim)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_reduces_the_loss_on_real_clips(ravdess_dir):
    """8 clips of actor 01, statement 01, preprocessed as in the study."""
    from emovae_utils.dsp import preprocess_file

    files = sorted(ravdess_dir.glob("Actor_01/03-01-*-*-01-*-01.*"))[:8]
    assert len(files) == 8
    Xr = np.stack([preprocess_file(f) for f in files])
    m = _model()
    hist = fit(m, Xr, epochs=150, seed=0, threads=THREADS, progress=False, sample_every=None)
    first, last = hist["total"].iloc[0], hist["total"].iloc[-10:].mean()
    assert last < 0.3 * first, (first, last)  # about 1000 -> 170 at 150 epochs
    assert hist["reconstruction"].iloc[-10:].mean() < 0.3 * hist["reconstruction"].iloc[0]
    assert hist["kl"].iloc[-1] > 0


def test_training_reduces_the_loss_synthetic(X):
    m = _model()
    hist = fit(m, X, epochs=120, batch_size=4, seed=0, threads=THREADS, progress=False)
    assert list(hist.columns) == ["epoch", "reconstruction", "kl", "total"]
    assert hist["epoch"].tolist() == list(range(1, 121))
    np.testing.assert_allclose(hist["total"], hist["reconstruction"] + hist["kl"], rtol=1e-5)
    assert hist["total"].iloc[-10:].mean() < 0.1 * hist["total"].iloc[0]  # ~4400 -> ~70
    with torch.no_grad():  # the returned model is the trained one
        xt = torch.as_tensor(X)
        mse = torch.mean((m.decode(m.encode(xt)[0]) - xt) ** 2).item()
    assert mse < 0.1 * hist["reconstruction"].iloc[0]


@pytest.mark.parametrize("accel", [None, "gemm"])
def test_model_parameters_are_independent_after_fit(X, accel):
    m = _model()
    fit(m, X[:4], epochs=2, threads=THREADS, progress=False, accel=accel)
    for p in m.parameters():
        assert p._base is None and p.grad is None
    ptrs = [p.data_ptr() for p in m.parameters()]
    assert len(set(ptrs)) == len(ptrs)


def test_same_seed_same_history_and_weights(X):
    runs = []
    for _ in range(2):
        m = _model()
        runs.append((fit(m, X, epochs=15, batch_size=4, seed=5, threads=THREADS, progress=False), _state(m)))
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0], check_exact=True)
    for k in runs[0][1]:
        assert torch.equal(runs[0][1][k], runs[1][1][k]), k
    other = fit(_model(), X, epochs=15, batch_size=4, seed=6, threads=THREADS, progress=False)
    assert not np.array_equal(other["total"].to_numpy(), runs[0][0]["total"].to_numpy())


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize("accel", [None, "gemm"])
@pytest.mark.parametrize("batch_size", [4, None])
def test_kill_and_resume_is_bitwise_identical(X, tmp_path, batch_size, accel):
    kw = dict(batch_size=batch_size, seed=3, threads=THREADS, checkpoint_every=10, progress=False,
              sample_every=None, accel=accel)
    m_ref = _model()
    ref = fit(m_ref, X, epochs=20, out_dir=tmp_path / "ref", **kw)

    def crash_at_15(epoch, losses):
        if epoch == 15:
            raise _Crash("simulated kill")

    m = _model()
    with pytest.raises(_Crash):
        fit(m, X, epochs=20, out_dir=tmp_path / "run", callbacks=[crash_at_15], **kw)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 10
    # a fresh process would start from a fresh model and fresh global RNG state
    torch.manual_seed(12345)
    np.random.seed(1)
    m2 = _model(seed=99)
    resumed = fit(m2, X, epochs=20, out_dir=tmp_path / "run", resume=True, **kw)
    pd.testing.assert_frame_equal(resumed, ref, check_exact=True)
    ref_state, state = _state(m_ref), _state(m2)
    for k in ref_state:
        assert torch.equal(ref_state[k], state[k]), k
    on_disk = pd.read_csv(tmp_path / "run" / "history.csv")
    np.testing.assert_allclose(on_disk["total"], ref["total"], rtol=1e-8)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["resumed_from_epoch"] == 10


@pytest.mark.parametrize("accel", [None, "gemm"])
def test_run_10_then_resume_to_20_equals_20(X, tmp_path, accel):
    kw = dict(batch_size=3, seed=0, threads=THREADS, checkpoint_every=5, progress=False, accel=accel)
    ref = fit(_model(), X, epochs=20, **kw)
    fit(_model(), X, epochs=10, out_dir=tmp_path, **kw)
    resumed = fit(_model(seed=1), X, epochs=20, out_dir=tmp_path, resume=True, **kw)
    pd.testing.assert_frame_equal(resumed, ref, check_exact=True)
    # resuming a finished run is a no-op that returns the history
    again = fit(_model(seed=2), X, epochs=20, out_dir=tmp_path, resume=True, **kw)
    pd.testing.assert_frame_equal(again, ref, check_exact=True)


def test_resume_refuses_changed_settings(X, tmp_path):
    kw = dict(seed=0, threads=THREADS, checkpoint_every=2, progress=False)
    fit(_model(), X, epochs=2, out_dir=tmp_path, **kw)
    with pytest.raises(ValueError, match="lr"):
        fit(_model(), X, epochs=4, out_dir=tmp_path, resume=True, lr=1e-4, **kw)
    with pytest.raises(ValueError, match="accel"):
        fit(_model(), X, epochs=4, out_dir=tmp_path, resume=True, accel="gemm", **kw)
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        fit(_model(), X, epochs=4, resume=True, threads=THREADS, progress=False)


def test_nan_stops_with_the_epoch_and_no_nan_checkpoint(X, tmp_path):
    def poison_after_3(epoch, losses):
        if epoch == 3:
            with torch.no_grad():
                m.fc_dec.weight[0, 0] = float("nan")

    m = _model()
    with pytest.raises(NonFiniteLossError, match="epoch 4") as err:
        fit(m, X, epochs=10, out_dir=tmp_path, checkpoint_every=1, callbacks=[poison_after_3],
            threads=THREADS, progress=False, sample_every=None)
    assert err.value.epoch == 4
    assert isinstance(err.value, FloatingPointError)
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["epoch"] == 3
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values())
    assert np.isfinite(np.asarray(ck["history"])).all()
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_in_data_is_an_input_error_naming_the_clips(X, value):
    bad = X.copy()
    bad[2, 5, 7] = value
    bad[7, 0, 0] = value
    with pytest.raises(ValueError, match=r"NaN or inf values in 2 of 10 clips \(first: \[2, 7\]\).*input is bad"):
        fit(_model(), bad, epochs=5, threads=THREADS, progress=False)


def test_outputs_run_json_history_and_samples(X, tmp_path, monkeypatch):
    calls = []
    from emovae_utils import inversion

    def log_mel_to_audio(S_db, config=None):  # a fast stand-in for Griffin-Lim
        calls.append(np.array(S_db))
        np.random.seed(0)  # rendering may touch numpy's global RNG: fit must undo it
        return np.zeros(100, np.float32)

    def save_wav(path, y, sr=16000):
        assert sr == 16000
        Path(path).write_bytes(b"RIFF")

    monkeypatch.setattr(inversion, "log_mel_to_audio", log_mel_to_audio)
    monkeypatch.setattr(inversion, "save_wav", save_wav)
    hist = fit(_model(), X, epochs=6, batch_size=4, seed=2, threads=THREADS, out_dir=tmp_path,
               sample_every=2, checkpoint_every=4, progress=True, render_workers=0)
    names = sorted(p.name for p in (tmp_path / "training_samples").iterdir())
    assert names == ["epoch_00002.wav", "epoch_00004.wav", "epoch_00006.wav"]
    assert len(calls) == 3 and calls[0].shape == (80, 128) and np.isfinite(calls[0]).all()
    run = json.loads((tmp_path / "run.json").read_text())
    for key, value in dict(seed=2, threads=THREADS, device="cpu", batch_size=4, lr=1e-3, accel=None,
                           clip_norm=1.0, epochs=6, n_clips=10, sample_every=2).items():
        assert run[key] == value, key
    assert run["torch_version"] == torch.__version__ and run["wall_seconds"] > 0
    disk = pd.read_csv(tmp_path / "history.csv")
    np.testing.assert_allclose(disk.to_numpy(), hist.to_numpy(), rtol=1e-8)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 6  # at 4 and at the end
    # rendering draws no random numbers: same trajectory as without samples
    plain = fit(_model(), X, epochs=6, batch_size=4, seed=2, threads=THREADS, progress=False)
    pd.testing.assert_frame_equal(hist, plain, check_exact=True)
    # a sample still being rendered when a checkpoint was written is rendered on resume
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["callbacks"]["TrainingSamples"] == []
    ck["callbacks"]["TrainingSamples"] = [(calls[1], "epoch_00004.wav")]
    torch.save(ck, tmp_path / "checkpoint.pt")
    (tmp_path / "training_samples" / "epoch_00004.wav").unlink()
    fit(_model(), X, epochs=8, batch_size=4, seed=2, threads=THREADS, out_dir=tmp_path, sample_every=2,
        checkpoint_every=4, progress=False, render_workers=0, resume=True)
    names = sorted(p.name for p in (tmp_path / "training_samples").iterdir())
    assert names == [f"epoch_{e:05d}.wav" for e in (2, 4, 6, 8)]
    np.testing.assert_array_equal(calls[3], calls[1])  # re-rendered from the checkpoint, first


@pytest.mark.parametrize("workers", [1, 2])
def test_training_samples_rendered_by_worker_processes(X, tmp_path, workers):
    """Real Griffin-Lim (emovae_utils.dsp) in spawned workers; checkpoints keep the unwritten ones."""
    sf = pytest.importorskip("soundfile")
    pytest.importorskip("librosa")
    samples = tmp_path / "training_samples"
    on_disk = {}

    def callback(epoch, losses):  # runs after the epoch's checkpoint
        on_disk[epoch] = sorted(f.name for f in samples.glob("*.wav"))
        if epoch == 3:
            on_disk["unwritten"] = [name for _, name in
                                    load_checkpoint(tmp_path / "checkpoint.pt")["callbacks"]["TrainingSamples"]]

    fit(_model(), X[:4], epochs=6, threads=THREADS, out_dir=tmp_path, sample_every=1,
        checkpoint_every=3, progress=False, render_workers=workers, callbacks=[callback])
    names = [f"epoch_{e:05d}.wav" for e in range(1, 7)]
    # every sample before a checkpoint is on disk or in the checkpoint
    assert sorted(set(on_disk[3]) | set(on_disk["unwritten"])) == names[:3]
    assert sorted(f.name for f in samples.glob("*.wav")) == names
    assert not list(samples.glob(".*"))  # no temporary files left
    y, sr = sf.read(samples / names[0])
    assert sr == 16000 and len(y) > 16000 and np.abs(y).max() > 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["render_workers"] == workers
    from emovae_utils.resources import available_cores

    free_cores = available_cores() - THREADS
    assert run["render_mode"] == ("concurrent" if workers <= free_cores else "batched")
    if run["render_mode"] == "batched":  # training waits for them at the checkpoint
        assert on_disk[3] == names[:3] and on_disk["unwritten"] == []


def test_drop_last_without_a_full_batch_is_an_error(X):
    with pytest.raises(ValueError, match="no step"):
        fit(_model(), X, epochs=1, batch_size=64, drop_last=True, threads=THREADS, progress=False)
    hist = fit(_model(), X, epochs=2, batch_size=4, drop_last=True, threads=THREADS, progress=False)
    assert len(hist) == 2


def test_plain_loop_equivalence(X):
    """fit's default path is the textbook loop."""

    set_determinism(0, THREADS)
    m_ref = _model()
    opt = torch.optim.Adam(m_ref.parameters(), lr=1e-3)
    xt = torch.as_tensor(X)
    torch.manual_seed(0)
    ref = []
    for _ in range(5):
        opt.zero_grad()
        total = m_ref.loss_function(xt, m_ref(xt))["loss"]
        total.backward()
        torch.nn.utils.clip_grad_norm_(m_ref.parameters(), 1.0)
        opt.step()
        ref.append(total.item())
    m = _model()
    hist = fit(m, X, epochs=5, seed=0, threads=THREADS, progress=False)
    np.testing.assert_allclose(hist["total"], ref, rtol=1e-4)
    for a, b in zip(m.parameters(), m_ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_plain_loop_equivalence_with_minibatches(X):
    """Shuffled minibatches (4, 4, 2: two batch shapes)."""
    set_determinism(3, THREADS)
    m_ref = _model()
    opt = torch.optim.Adam(m_ref.parameters(), lr=1e-3)
    xt = torch.as_tensor(X)
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    ref = []
    for _ in range(4):
        perm, losses = torch.randperm(len(xt), generator=gen), []
        for b in range(0, len(xt), 4):
            xb = xt[perm[b: b + 4]]
            opt.zero_grad()
            total = m_ref.loss_function(xb, m_ref(xb))["loss"]
            total.backward()
            torch.nn.utils.clip_grad_norm_(m_ref.parameters(), 1.0)
            opt.step()
            losses.append(total.item())
        ref.append(np.mean(losses))
    m = _model()
    hist = fit(m, X, epochs=4, batch_size=4, seed=3, threads=THREADS, progress=False)
    np.testing.assert_allclose(hist["total"], ref, rtol=1e-4)
    for a, b in zip(m.parameters(), m_ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_cpu_adam_step_is_adam_and_flushes_subnormals():
    """The accelerated path's optimiser step: torch's fused Adam on one thread; stuck subnormal moments become 0."""
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    p1 = torch.randn(1000, generator=g)
    p2 = p1.clone()
    grads = [torch.randn(1000, generator=g) * 1e-3 for _ in range(3)]
    o1 = torch.optim.Adam([p1], lr=1e-3, fused=True)
    o2 = torch.optim.Adam([p2], lr=1e-3, fused=True)
    for gr in grads:  # the first call creates the state, the others use it directly
        p1.grad, p2.grad = gr.clone(), gr.clone()
        o1.step()
        cpu.cpu_adam_step(o2, 2, False)
        assert torch.equal(p1, p2)
    assert torch.get_num_threads() == 2 and not cpu.denormals_flushed()
    st = o2.state[p2]
    st["exp_avg"][:10] = 1.4e-45  # the smallest subnormal: 0.9 x it rounds back to it
    p2.grad = torch.zeros(1000)
    before = p2.clone()
    cpu.cpu_adam_step(o2, 2, False)
    assert torch.count_nonzero(st["exp_avg"][:10]) == 0
    assert torch.equal(p2[:10], before[:10])
    assert not cpu.denormals_flushed()


def test_set_determinism():
    assert set_determinism(1, 1) == 1 and torch.get_num_threads() == 1
    a = (torch.rand(1).item(), np.random.rand(), __import__("random").random())
    set_determinism(1, 1)
    assert a == (torch.rand(1).item(), np.random.rand(), __import__("random").random())
    assert train.default_threads() >= 1


def test_a_subclass_overriding_decode_trains_with_its_own_decode(X):
    class Doubled(EmotionVAE):
        calls = 0

        def decode(self, z, cond=None):
            Doubled.calls += 1
            return 2.0 * super().decode(z, cond)

    torch.manual_seed(0)
    m = Doubled()
    hist = fit(m, X, epochs=3, batch_size=4, threads=THREADS, progress=False, accel="auto")
    assert Doubled.calls == 9  # 3 epochs x 3 batches, through autograd
    torch.manual_seed(0)
    plain = fit(EmotionVAE(), X, epochs=3, batch_size=4, threads=THREADS, progress=False)
    assert not np.allclose(hist["reconstruction"], plain["reconstruction"])


def test_beta_vae_history_records_its_own_loss(X, tmp_path):
    torch.manual_seed(0)
    hist = fit(BetaVAE(beta=4.0), X, epochs=3, threads=THREADS, progress=False, accel="auto", out_dir=tmp_path,
               sample_every=None)
    np.testing.assert_allclose(hist["total"], hist["reconstruction"] + 4 * hist["kl"], rtol=1e-5)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["accel"] is None and "EmotionVAE exactly" in run["accel_reason"]
    assert run["model"]["name"] == "beta_vae" and run["model"]["config"]["beta"] == 4.0


def test_cond_reaches_forward_batch_by_batch(X):
    class Conditional(EmotionVAE):
        condition = "clip_code"  # declared, so fit passes cond on

        def forward(self, x, cond=None):
            seen.append(cond.clone())
            # the condition belongs to these clips: clip i's condition is i
            assert torch.equal(x[:, 0, 0], torch.as_tensor(X)[cond, 0, 0])
            return super().forward(x, cond)

    seen = []
    fit(Conditional(), X, cond=np.arange(len(X)), epochs=2, batch_size=4, threads=THREADS, progress=False)
    assert [len(c) for c in seen] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat(seen[:3]).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="one condition per clip"):
        fit(Conditional(), X, cond=np.arange(3), epochs=1, progress=False)


def test_fit_refuses_models_outside_the_family(X):
    with pytest.raises(TypeError, match="BaseVAE"):
        fit(torch.nn.Linear(2, 2), X, epochs=1, progress=False)


def test_progress_leaves_a_readable_final_line(X, capsys):
    fit(_model(), X, epochs=2, threads=THREADS, progress=True)
    out = capsys.readouterr().out
    assert "fit done: epoch 2 of 2" in out and "total" in out


def test_training_samples_from_a_script_without_main_guard(tmp_path):
    """Sample workers must not re-run the calling script (no ``if __name__ == "__main__":`` there)."""
    import subprocess
    import sys

    pytest.importorskip("librosa")
    script = tmp_path / "train_me.py"
    script.write_text(
        "import numpy as np, torch\n"
        "from emovae_utils.models import build\n"
        "from emovae_utils.train import fit\n"
        "print('script body ran')\n"
        "X = np.random.default_rng(0).normal(-40, 10, (4, 80, 128)).astype('float32')\n"
        f"fit(build('emotion_vae'), X, epochs=2, out_dir={str(tmp_path / 'run')!r}, sample_every=1,\n"
        "    render_workers=1, threads=1, progress=False)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("script body ran") == 1
    assert sorted(p.name for p in (tmp_path / "run" / "training_samples").glob("*.wav")) == [
        "epoch_00001.wav", "epoch_00002.wav"]


def test_default_is_one_thread_recorded_in_run_json(X, tmp_path):
    """One thread by default: two spin-waiting OpenMP threads collapse when another process is busy."""
    torch.set_num_threads(2)
    fit(_model(), X, epochs=1, progress=False, out_dir=tmp_path, sample_every=None)
    run = json.loads((tmp_path / "run.json").read_text())
    assert train.default_threads() == 1 and run["threads"] == 1 and torch.get_num_threads() == 1
    assert "omp_wait_policy" in run and run["accel"] is None and run["accel_reason"].startswith("autograd")


def test_a_checkpoint_from_when_labels_were_cond_still_resumes(tmp_path):
    """Before labels had their own argument they went in ``cond``: such a checkpoint resumes with ``labels=``."""
    from emovae_utils.models import build
    from emovae_utils.train import CHECKPOINT_NAME, FitConfig

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(6, 80, 128)) * 17.5 - 40).astype(np.float32)
    y = np.stack([np.arange(6) % 8, np.arange(6) % 2], axis=1)
    config = FitConfig(epochs=1, batch_size=3, progress=False, checkpoint_every=1, sample_every=None)
    model = build("supervised_vae", latent_dim=4, emotion_dims=2, n_speakers=2)
    fit(model, X, config, labels=y, out_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    ck = torch.load(path, weights_only=False)
    ck["config"]["cond_sha1"] = ck["config"].pop("labels_sha1")  # as the earlier fit wrote it
    torch.save(ck, path)
    model = build("supervised_vae", latent_dim=4, emotion_dims=2, n_speakers=2)
    history = fit(model, X, config, labels=y, out_dir=tmp_path, epochs=2, resume=True)
    assert history["epoch"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="labels_sha1"):
        fit(build("supervised_vae", latent_dim=4, emotion_dims=2, n_speakers=2), X, config, labels=y[::-1].copy(),
            out_dir=tmp_path, epochs=3, resume=True)


def test_fit_config_accepts_every_healthy_setting_unchanged():
    from emovae_utils.train import FitConfig

    cfg = FitConfig(epochs=np.int64(5), batch_size=64, lr=3e-3, clip_norm=None, threads=2, device="cpu",
                    accel="auto", checkpoint_every=None, sample_every=0, render_workers=0, resume=False)
    assert cfg.epochs == 5 and cfg.lr == 3e-3 and cfg.clip_norm is None and cfg.render_workers == 0
    assert FitConfig(epochs=1, clip_norm=0, accel="gemm", device=torch.device("cpu")).clip_norm == 0
    assert FitConfig.from_mapping({"epochs": 3, "lr": 1e-4}).settings() == {"epochs": 3, "lr": 1e-4}


@pytest.mark.parametrize("field, value, allowed", [
    ("epochs", 2.5, "integer >= 1"), ("epochs", -1, "integer >= 1"), ("batch_size", 3.0, "integer >= 1 or None"),
    ("lr", float("inf"), "finite number > 0"), ("lr", "1e-3", "finite number > 0"),
    ("threads", 1.5, "integer >= 1 or None"), ("checkpoint_every", -5, ">= 0"), ("drop_last", "no", "True or False"),
    ("progress", 1, "True or False"), ("device", 0, "torch.device"),
])
def test_fit_config_names_a_bad_field_its_value_and_what_is_allowed(field, value, allowed):
    from emovae_utils.train import FitConfig

    settings = {"epochs": 1, field: value}
    for make in (lambda: FitConfig(**settings), lambda: FitConfig.from_mapping(settings)):
        with pytest.raises(ValueError) as err:
            make()
        assert f"FitConfig({field}={value!r})" in str(err.value) and allowed in str(err.value)


@pytest.mark.parametrize("name", ["supervised_vae", "emotion_cnn"])
def test_a_model_that_trains_on_labels_refuses_to_train_without_them(name):
    """Without labels its classification loss would be 0: fit says how to pass them; all -1 is the explicit way."""
    from emovae_utils.models import build, model_class

    X = np.zeros((4, 80, 128), np.float32)
    with pytest.raises(ValueError, match=rf"make_condition\('{model_class(name).labels}', X, index\)"):
        fit(build(name), X, epochs=1, progress=False)
    unknown = np.full((4, 2) if name == "supervised_vae" else (4,), -1)
    assert len(fit(build(name), X, epochs=1, labels=unknown, progress=False)) == 1
