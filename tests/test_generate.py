"""Tests of emovae_utils.generate (report 5.2) and the latent explorer logic (widgets)."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch import nn

from emovae_utils import generate as gen
from emovae_utils.models import EmotionVAE

N_MELS, N_FRAMES, HOP = 80, 128, 256
# librosa.istft with center=True returns hop * (frames - 1) samples
EXPECTED_SAMPLES = HOP * (N_FRAMES - 1)  # 32512


@pytest.fixture(scope="module")
def model() -> EmotionVAE:
    torch.manual_seed(0)
    return EmotionVAE(latent_dim=8).eval()


@pytest.fixture(scope="module")
def model4() -> EmotionVAE:
    torch.manual_seed(1)
    return EmotionVAE(latent_dim=4).eval()


class StandIn(nn.Module):
    """Tiny module with the encode/decode API and *no* ``latent_dim`` attribute."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.enc = nn.Linear(N_MELS, 2 * d)
        self.dec = nn.Linear(d, N_MELS * N_FRAMES)
        self.d = d

    def encode(self, x):
        h = self.enc(x.mean(-1))
        return h[:, : self.d], h[:, self.d:]

    def decode(self, z):
        return self.dec(z).view(-1, N_MELS, N_FRAMES)


class CheapDecoder(nn.Module):
    """Parameter-free stand-in whose decode costs nothing (broadcasts z's sum)."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.latent_dim = d

    def encode(self, x):  # latent_dim_of reads the width of mu (no probing for attributes)
        zeros = torch.zeros(x.shape[0], self.latent_dim)
        return zeros, zeros

    def decode(self, z):
        return z.sum(1)[:, None, None].expand(-1, N_MELS, N_FRAMES)


def _decode_direct(model, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.decode(torch.as_tensor(z, dtype=torch.float32)).numpy()


# ----------------------------------------------------------------- generate
def test_sample_single_dims_shapes_and_one_nonzero_per_row(model):
    z, spec = gen.sample_single_dims(model, sigma=1.0, seed=0)
    assert z.shape == (8, 8) and z.dtype == np.float32
    assert spec.shape == (8, N_MELS, N_FRAMES) and spec.dtype == np.float32
    assert np.all(np.count_nonzero(z, axis=1) == 1)
    np.testing.assert_array_equal(np.argmax(np.abs(z), axis=1), np.arange(8))
    np.testing.assert_allclose(spec, _decode_direct(model, z), rtol=1e-5, atol=1e-5)


def test_sample_single_dims_sigma_is_honoured():
    m = CheapDecoder(d=8)  # this test is about the sampling, not the decoder
    for sigma in (1.0, 3.0):
        zs = [gen.sample_single_dims(m, sigma=sigma, seed=s)[0] for s in range(400)]
        assert all(np.count_nonzero(z) == 8 and np.count_nonzero(z - np.diag(np.diag(z))) == 0
                   for z in zs)
        vals = np.concatenate([np.diag(z) for z in zs])  # 3200 draws
        assert abs(vals.mean()) < 0.1 * sigma
        # standard error of the std is sigma / sqrt(2 * 3200) ~ 0.0125 sigma
        assert vals.std() == pytest.approx(sigma, rel=0.06)


def test_sample_single_dims_seed_and_value(model):
    z0, s0 = gen.sample_single_dims(model, seed=3)
    z1, s1 = gen.sample_single_dims(model, seed=3)
    z2, _ = gen.sample_single_dims(model, seed=4)
    np.testing.assert_array_equal(z0, z1)
    np.testing.assert_array_equal(s0, s1)
    assert not np.array_equal(z0, z2)
    z, _ = gen.sample_single_dims(model, value=2.5)
    np.testing.assert_array_equal(z, 2.5 * np.eye(8, dtype=np.float32))
    z, _ = gen.sample_single_dims(model, value=np.arange(8))
    np.testing.assert_array_equal(np.diag(z), np.arange(8))


def test_decode_latents_single_and_batch_and_mode_restored(model):
    model.train()
    try:
        z = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
        out = gen.decode_latents(model, z)
        assert out.shape == (5, N_MELS, N_FRAMES)
        assert model.training, "decode_latents must restore the training mode"
        one = gen.decode_latents(model, torch.as_tensor(z[2]))
        assert one.shape == (N_MELS, N_FRAMES)
        np.testing.assert_allclose(one, out[2], rtol=1e-5, atol=1e-5)
    finally:
        model.eval()
    with pytest.raises(ValueError):
        gen.decode_latents(model, np.zeros((1, 2, 8)))


def test_traverse_shapes_middle_and_rows(model):
    values = np.linspace(-3, 3, 7)
    out = gen.traverse(model, values)
    assert out.shape == (8, 7, N_MELS, N_FRAMES)
    zero = _decode_direct(model, np.zeros((1, 8)))[0]
    for i in range(8):
        np.testing.assert_allclose(out[i, 3], zero, rtol=1e-5, atol=1e-5)
    z = np.zeros((1, 8), np.float32)
    z[0, 5] = values[6]
    np.testing.assert_allclose(out[5, 6], _decode_direct(model, z)[0], rtol=1e-5, atol=1e-5)
    # a random model is not constant along a dimension
    assert not np.allclose(out[5, 0], out[5, 6])
    sub = gen.traverse(model, [0.0, 1.0], dims=[2])
    assert sub.shape == (1, 2, N_MELS, N_FRAMES)
    np.testing.assert_allclose(sub[0, 1], out[2, 4], rtol=1e-5, atol=1e-5)


def test_any_module_with_the_api_works():
    torch.manual_seed(0)
    m = StandIn(d=3)
    assert gen.latent_dim_of(m) == 3
    z, spec = gen.sample_single_dims(m, sigma=3.0)
    assert z.shape == (3, 3) and spec.shape == (3, N_MELS, N_FRAMES)
    assert gen.traverse(m).shape == (3, 7, N_MELS, N_FRAMES)
    mu = gen.encode_mu(m, np.zeros((4, N_MELS, N_FRAMES), np.float32))
    assert mu.shape == (4, 3)


def test_encode_mu_matches_encode(model):
    X = np.random.default_rng(1).normal(-40, 10, size=(7, N_MELS, N_FRAMES)).astype(np.float32)
    mu = gen.encode_mu(model, X, batch_size=3)
    with torch.no_grad():
        ref = model.encode(torch.as_tensor(X))[0].numpy()
    np.testing.assert_allclose(mu, ref, rtol=1e-5, atol=1e-5)


def test_emotion_mean_latents():
    mu = np.array([[1, 2], [3, 4], [10, 0], [0, 0], [5, 5]], dtype=np.float32)
    emo = ["sad", "sad", "happy", "neutral", "happy"]
    df = gen.emotion_mean_latents(mu, emo)
    assert list(df.index) == ["neutral", "happy", "sad"]  # RAVDESS order
    assert list(df.columns) == ["z0", "z1", "n"]
    np.testing.assert_allclose(df.loc["sad", ["z0", "z1"]].to_numpy(float), [2, 3])
    np.testing.assert_allclose(df.loc["happy", ["z0", "z1"]].to_numpy(float), [7.5, 2.5])
    assert df.loc["happy", "n"] == 2
    with pytest.raises(ValueError):
        gen.emotion_mean_latents(mu, emo[:-1])


def test_render_audio_writes_16k_wavs(model, tmp_path):
    _, spec = gen.sample_single_dims(model, sigma=3.0)
    paths = gen.render_audio(spec[:2], tmp_path / "wav", names=["dim0", "dim1.wav"])
    assert [p.name for p in paths] == ["dim0.wav", "dim1.wav"]
    for p in paths:
        info = sf.info(p)
        assert info.samplerate == 16000 and info.channels == 1
        assert info.frames == EXPECTED_SAMPLES
        y, sr = sf.read(p)
        assert sr == 16000 and np.max(np.abs(y)) > 0.1  # not silent
    assert not np.array_equal(sf.read(paths[0])[0], sf.read(paths[1])[0])
    (single,) = gen.render_audio(spec[0], tmp_path, names=None)
    assert single.name == "sample_00.wav" and sf.info(single).frames == EXPECTED_SAMPLES


def test_render_audio_goes_through_inversion_render_wav(tmp_path, monkeypatch):
    """One render-and-write path: inversion.render_wav (Griffin-Lim, atomic write) for every spectrogram."""
    from emovae_utils import dsp, inversion

    calls = []
    monkeypatch.setattr(inversion, "render_wav", lambda S, path, config=None: calls.append((S, path, config)) or path)
    spec = np.random.default_rng(0).normal(-40, 5, size=(2, N_MELS, N_FRAMES)).astype(np.float32)
    config = dsp.PreprocessConfig()
    paths = gen.render_audio(spec, tmp_path, names=["a", "b.wav"], config=config)
    assert paths == [tmp_path / "a.wav", tmp_path / "b.wav"] == [c[1] for c in calls]
    assert all(c[2] is config for c in calls)
    np.testing.assert_array_equal(np.stack([c[0] for c in calls]), spec)


# ------------------------------------------------------------ widget logic
# The explorer's controls, continuous updates and rendering: tests/test_widgets.py.
def test_clip_label_formats():
    from emovae_utils.widgets import clip_label

    row = {"actor": 1, "emotion": "happy", "intensity": 2, "statement": 1, "repetition": 2}
    assert clip_label(row) == "Actor 01 · happy · strong · rep 2"
    row = {"actor": "12", "emotion": "calm", "intensity": "normal", "statement": 2, "repetition": 1}
    assert clip_label(row) == "Actor 12 · calm · normal · stmt 2 · rep 1"
    assert clip_label({}, 7) == "clip 7"


# ------------------------------------------------------------ real clips
def test_explorer_on_real_clips(model, ravdess_dir, tmp_path):
    """Labels and start points from real RAVDESS clips (6 clips of Actor 01, statement 1)."""
    from emovae_utils.data import ravdess_index
    from emovae_utils.dsp import preprocess_file
    from emovae_utils.widgets import LatentExplorer

    index = ravdess_index(ravdess_dir, warn=False)
    index = index[(index["actor"] == 1) & (index["statement"] == 1)]
    index = index[index["emotion"].isin(["happy", "sad"])].head(6).reset_index(drop=True)
    assert len(index) == 6
    X = np.stack([preprocess_file(p) for p in index["path"]]).astype(np.float32)
    assert X.shape == (6, N_MELS, N_FRAMES)
    ex = LatentExplorer(model, X=X, index=index, audio=False)
    labels = dict(ex.dropdown.options)
    row = index.iloc[3]
    label = (f"Actor 01 · {row['emotion']} · {row['intensity']} · rep {int(row['repetition'])}")
    assert label in labels, sorted(labels)
    ex.dropdown.value = labels[label]
    np.testing.assert_allclose(ex.get_latent(), np.clip(gen.encode_mu(model, X[3:4])[0], -4, 4),
                               atol=1e-5)
    for emo in ("happy", "sad"):
        n = int((index["emotion"] == emo).sum())
        assert f"mean: {emo} (n={n})" in labels
    # reconstructions of real clips render to 16 kHz audio of the expected length
    with torch.no_grad():
        recon = model(torch.as_tensor(X[:1]))["recon"].numpy()
    (p,) = gen.render_audio(recon, tmp_path, names=["recon"])
    assert sf.info(p).samplerate == 16000 and sf.info(p).frames == EXPECTED_SAMPLES


def test_decode_latents_accepts_read_only_arrays_without_warning(model):
    # pandas' to_numpy() can return a read-only view (emotion means in notebook 03)
    z = np.random.default_rng(3).normal(size=(2, 8)).astype(np.float32)
    frozen = z.copy()
    frozen.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gen.decode_latents(model, frozen)
    np.testing.assert_array_equal(out, gen.decode_latents(model, z))
