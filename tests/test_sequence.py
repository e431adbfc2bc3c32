"""SequenceVAE (variable-length log-mels, masked) and data.load_sequences."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import emovae_utils.models.sequence_vae  # noqa: F401  (registers "sequence_vae")
from emovae_utils import data
from emovae_utils.dsp import fix_frames
from emovae_utils.models import build, load_model, save_model
from emovae_utils.models.sequence_vae import SequenceVAE, length_mask
from synthetic_sequences import padded_log_mels


def synthetic(n: int = 6, t_max: int = 50, seed: int = 0):
    return padded_log_mels(n, t_max, seed, min_length=20)


def test_padding_changes_neither_loss_nor_posterior():
    torch.manual_seed(0)
    model = SequenceVAE(latent_dim=4).eval()
    x, lengths = synthetic()
    other = torch.where(length_mask(lengths, x.shape[2])[:, None], x, torch.randn_like(x) * 1e3)
    short = int(torch.argmin(lengths))
    assert lengths[short] < x.shape[2]
    other[short, :, -1] = float("inf")  # even inf in the padding is never seen
    wider = torch.cat([x, torch.full((x.shape[0], 80, 13), -7.0)], dim=2)  # more padding
    mu, logvar = model.encode(x, lengths)
    for y in (other, wider):
        mu2, logvar2 = model.encode(y, lengths)
        torch.testing.assert_close(mu2, mu, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(logvar2, logvar, rtol=1e-5, atol=1e-5)
    # with the same z, the loss does not depend on the padding
    z = torch.randn(x.shape[0], 4)
    out = {"recon": model.decode(z, lengths, n_frames=x.shape[2]), "mu": mu, "logvar": logvar, "z": z,
           "lengths": lengths}
    a, b = model.loss_function(x, out), model.loss_function(other, out)
    assert torch.isfinite(a["loss"]) and torch.equal(a["loss"], b["loss"])
    # and equals the plain MSE over the real frames
    real = torch.cat([((out["recon"][k] - x[k]) ** 2)[:, :n].flatten() for k, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(a["reconstruction"], real.mean())


def test_lengths_are_required_and_checked():
    model = SequenceVAE()
    x, lengths = synthetic(n=3)
    with pytest.raises(ValueError, match="needs each clip's length"):
        model(x)
    with pytest.raises(ValueError, match="needs each clip's length"):
        model.decode(torch.zeros(3, 8))
    with pytest.raises(ValueError, match="needs each clip's length"):
        model.sample(2)
    with pytest.raises(ValueError, match="integer"):
        model(x, lengths.float())
    with pytest.raises(ValueError, match="shape"):
        model(x, lengths[:2])
    with pytest.raises(ValueError, match="exceeds"):
        model(x, lengths + 100)
    with pytest.raises(ValueError, match=">= 1"):
        model(x, lengths * 0)
    with pytest.raises(ValueError, match="load_sequences"):
        model(torch.zeros(3, 40, 50), lengths)


@pytest.mark.parametrize("t_max", [37, 64, 246])
def test_shapes_for_variable_lengths(t_max):
    model = SequenceVAE(latent_dim=5)
    x, lengths = synthetic(n=4, t_max=t_max)
    out = model(x, lengths)
    assert out["recon"].shape == x.shape and out["mu"].shape == (4, 5) and out["z"].shape == (4, 5)
    pad = ~length_mask(lengths, t_max)[:, None].expand_as(x)
    assert torch.all(out["recon"][pad] == 0) and torch.isfinite(out["recon"]).all()
    s = model.sample(3, cond=torch.tensor([10, 33, 21]))
    assert s.shape == (3, 80, 33) and torch.all(s[0, :, 10:] == 0)


def test_save_load_round_trip(tmp_path):
    model = build("sequence_vae", latent_dim=6, channels=16, stride=2, kernel_size=3, n_layers=1, beta=2.0)
    x, lengths = synthetic(n=3)
    path = save_model(tmp_path / "seq.pt", model, note="hi")
    loaded, meta = load_model(path)
    assert type(loaded) is SequenceVAE and meta == {"note": "hi"} and loaded.config == model.config
    model.eval()
    torch.testing.assert_close(loaded.encode(x, lengths), model.encode(x, lengths))
    z = torch.randn(3, 6)
    torch.testing.assert_close(loaded.decode(z, lengths), model.decode(z, lengths))


def test_fit_trains_on_variable_lengths(tmp_path):
    from emovae_utils.train import fit

    x, lengths = synthetic(n=24, t_max=48, seed=1)
    model = SequenceVAE(latent_dim=4, channels=16)
    hist = fit(model, x.numpy(), cond=lengths.numpy(), epochs=30, batch_size=8, lr=3e-3, progress=False,
               threads=1, device="cpu", out_dir=tmp_path / "run", checkpoint_every=None, sample_every=None)
    assert len(hist) == 30 and np.isfinite(hist["total"]).all()
    assert hist["reconstruction"].iloc[-3:].mean() < 0.75 * hist["reconstruction"].iloc[:2].mean()


def test_load_sequences_agrees_with_load_features(ravdess_dir, tmp_path):
    index = data.ravdess_index(ravdess_dir, warn=False).iloc[[0, 7, 30, 61, 100]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X, seq = data.load_sequences(ravdess_dir, tmp_path, index=index, progress=False, workers=1)
        F, fixed = data.load_features(ravdess_dir, tmp_path, index=index, progress=False, workers=1)
        Xc, _ = data.load_sequences(ravdess_dir, tmp_path, index=index, progress=False, pad_db=-100.0)
    assert len(list(tmp_path.glob("sequences-*.npz"))) == 1 and len(list(tmp_path.glob("features-*.npz"))) == 1
    n = seq["n_frames"].to_numpy()
    assert X.dtype == np.float32 and X.shape == (5, 80, n.max())
    np.testing.assert_array_equal(n, fixed["voiced_frames"].to_numpy())
    for k in range(5):
        # the fixed window is exactly fix_frames of the whole sequence
        np.testing.assert_array_equal(fix_frames(X[k, :, : n[k]], 128), F[k])
        assert np.all(X[k, :, n[k]:] == X[k, :, : n[k]].min()) and np.all(Xc[k, :, n[k]:] == -100.0)
    np.testing.assert_array_equal(np.where(Xc == -100.0, X, Xc), X)  # the cache is reused, padding aside
