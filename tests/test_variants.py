"""Variants beyond the report: σ-VAE (calibrated decoder) and β-TCVAE (KL decomposition)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from emovae_utils.accel import why_not
from emovae_utils.models import EmotionVAE, SigmaVAE, TCVAE, build, gaussian_kl, load_model, save_model
from emovae_utils.models.sigma_vae import softclip
from emovae_utils.models.tc_vae import _log_weights, tc_decomposition
from emovae_utils.train import fit

N_ELEMENTS = 80 * 128


def _x(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 80, 128, generator=g) * 17.5 - 40  # dB-like: the study's data std is ~17.5 dB


def _posterior_batch(b=256, d=8, seed=0):
    """Posterior parameters of a batch and one sample z_i ~ q(z|x_i) each."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g)
    logvar = -1.0 + 0.3 * torch.randn(b, d, generator=g)
    z = mu + torch.randn(b, d, generator=g) * (0.5 * logvar).exp()
    return z, mu, logvar


VARIANTS = [("sigma_vae", SigmaVAE, {"sigma_mode": "optimal", "beta": 2.0}),
            ("sigma_vae", SigmaVAE, {"sigma_mode": "learned", "min_log_sigma": -4.0}),
            ("tc_vae", TCVAE, {"alpha": 0.5, "beta": 6.0, "gamma": 2.0, "dataset_size": 1440})]


@pytest.mark.parametrize("name, cls, config", VARIANTS)
def test_built_by_name_overriding_only_the_loss(name, cls, config):
    m = build(name, latent_dim=4, **config)
    assert type(m) is cls and isinstance(m, EmotionVAE) and m.latent_dim == 4
    assert m.config == {**type(m)().config, "latent_dim": 4, **config}
    methods = {k for k, v in vars(cls).items() if callable(v) and not k.startswith("_")}
    assert methods == {"loss_function"}
    # same architecture as the study's model: only the learnable log σ is added
    extra = {k for k, _ in m.named_parameters()} - {k for k, _ in EmotionVAE(latent_dim=4).named_parameters()}
    assert extra == ({"log_sigma"} if config.get("sigma_mode") == "learned" else set())


@pytest.mark.parametrize("name, cls, config", VARIANTS)
def test_save_and_load_round_trip(tmp_path, name, cls, config):
    torch.manual_seed(5)
    m = build(name, **config)
    if config.get("sigma_mode") == "learned":
        with torch.no_grad():
            m.log_sigma.fill_(1.25)
    path = save_model(tmp_path / "m.pt", m, epochs=3)
    loaded, meta = load_model(path)
    assert type(loaded) is cls and loaded.config == m.config and meta == {"epochs": 3}
    sa, sb = m.state_dict(), loaded.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="sigma_mode"):
        SigmaVAE(sigma_mode="fixed")
    with pytest.raises(ValueError, match="dataset_size"):
        TCVAE(dataset_size=0)
    with pytest.raises(ValueError, match="smaller than the batch"):
        tc_decomposition(*_posterior_batch(8, 2), dataset_size=4)


@pytest.mark.parametrize("name, config, extra", [
    ("sigma_vae", {}, ["nll", "log_sigma"]),
    ("tc_vae", {"dataset_size": 4}, ["mi", "tc", "dimwise_kl"]),
])
def test_fit_trains_them_through_autograd(tmp_path, name, config, extra):
    torch.manual_seed(0)
    m = build(name, **config)
    assert why_not(m) is not None and type(m).__name__ in why_not(m)  # the accelerator refuses subclasses
    before = [p.detach().clone() for p in m.parameters()]
    history = fit(m, _x(4), epochs=2, accel="auto", out_dir=tmp_path, progress=False, sample_every=None,
                  checkpoint_every=None)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["accel"] is None and run["accel_reason"].startswith("autograd")
    assert type(m).__name__ in run["accel_reason"] and run["model"]["name"] == name
    assert list(history.columns) == ["epoch", "reconstruction", "kl", "total", *extra]
    assert len(history) == 2 and history.notna().all().all()
    assert any(not torch.equal(a, p) for a, p in zip(before, m.parameters()))


def test_sigma_vae_optimal_sigma_is_the_batch_rmse():
    torch.manual_seed(1)
    m = SigmaVAE(beta=3.0)
    x = _x(3)
    out = m(x)
    losses = m.loss_function(x, out)
    mse = ((out["recon"] - x) ** 2).mean()
    torch.testing.assert_close(losses["reconstruction"], mse)  # still the study's element-mean MSE (dB²)
    torch.testing.assert_close(losses["log_sigma"], softclip(0.5 * mse.log(), -6.0))  # exactly, with the soft clamp
    assert losses["log_sigma"].item() == pytest.approx(0.5 * math.log(mse.item()), abs=1e-3)  # far above the clamp
    sigma = losses["log_sigma"].exp()
    nll = (0.5 * ((x - out["recon"]) / sigma) ** 2 + sigma.log() + 0.5 * math.log(2 * math.pi)).sum() / 3
    torch.testing.assert_close(losses["nll"], nll)  # summed over the 80 x 128 elements, mean over clips
    kl = gaussian_kl(out["mu"], out["logvar"]).sum(1).mean()
    torch.testing.assert_close(losses["kl"], kl)
    torch.testing.assert_close(losses["loss"], nll + 3.0 * kl)
    # a perfect reconstruction hits the soft clamp instead of log(0)
    perfect = m.loss_function(out["recon"].detach(), {**out, "recon": out["recon"].detach()})
    assert torch.isfinite(perfect["loss"]) and perfect["log_sigma"].item() == pytest.approx(-6.0)


def test_sigma_vae_weighs_reconstruction_n_over_2_sigma2_times_more():
    """The gradient through σ* vanishes (σ* minimises the NLL), and relative to the
    study's loss the reconstruction gradient is scaled by N / (2 σ²)."""
    x = _x(2, seed=3)
    recon = (x + 5.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))).requires_grad_()
    z = torch.zeros(2, 8)
    out = {"recon": recon, "mu": z, "logvar": z}
    m = SigmaVAE()
    (g_sigma,) = torch.autograd.grad(m.loss_function(x, out)["loss"], recon)
    mse = ((recon - x) ** 2).mean().detach()
    detached = 0.5 * N_ELEMENTS * ((recon - x) ** 2).mean() / mse  # σ² = MSE held fixed
    (g_fixed,) = torch.autograd.grad(detached, recon)
    torch.testing.assert_close(g_sigma, g_fixed, rtol=1e-4, atol=1e-9)
    (g_study,) = torch.autograd.grad(EmotionVAE().loss_function(x, out)["loss"], recon)
    ratio = (g_sigma.norm() / g_study.norm()).item()
    assert ratio == pytest.approx(N_ELEMENTS / (2 * mse.item()), rel=1e-4)  # ~205 for an MSE of 25 dB²
    assert ratio > 100


def test_sigma_vae_learned_log_sigma_gets_a_gradient():
    torch.manual_seed(2)
    m = SigmaVAE(sigma_mode="learned")
    assert m.log_sigma.item() == 0.0 and m.log_sigma.requires_grad
    x = _x(2)
    losses = m.loss_function(x, m(x))
    losses["loss"].backward()
    g = m.log_sigma.grad
    assert g is not None and torch.isfinite(g)
    # d nll / d raw = N (1 - mse / σ²) * sigmoid(raw - min): negative, since σ = 1 dB is far below the RMSE
    mse = losses["reconstruction"].item()
    sigma2 = math.exp(2 * losses["log_sigma"].item())
    expected = N_ELEMENTS * (1 - mse / sigma2) * torch.sigmoid(torch.tensor(6.0)).item()
    assert g.item() == pytest.approx(expected, rel=1e-4) and g.item() < 0
    assert losses["log_sigma"].item() == pytest.approx(softclip(torch.tensor(0.0), -6.0).item())


def test_tc_parts_sum_to_the_kl_on_a_posterior_batch():
    """mi + tc + dimwise_kl telescopes to the one-sample KL estimate mean_i[log q(z_i|x_i) - log p(z_i)]
    (to float precision, for either estimator of q(z)); that estimate is within 4 standard errors
    (~0.8 nats here, KL ~5.7 nats) of the study's analytic KL for 256 latents."""
    z, mu, logvar = _posterior_batch(256)
    log_ratio = (-0.5 * (logvar + (z - mu) ** 2 / logvar.exp()) + 0.5 * z ** 2).sum(1)
    kl = gaussian_kl(mu, logvar).sum(1).mean()
    for dataset_size in (None, 1440):
        parts = tc_decomposition(z, mu, logvar, dataset_size)
        total = parts["mi"] + parts["tc"] + parts["dimwise_kl"]
        torch.testing.assert_close(total, log_ratio.mean(), rtol=1e-5, atol=1e-4)
        assert abs(total.item() - kl.item()) < 4 * log_ratio.std().item() / math.sqrt(256)
        assert all(v.item() > -0.05 for v in parts.values())  # each part is a KL, hence >= 0 (up to estimator noise)


def test_tc_is_zero_for_independent_and_large_for_correlated_latents():
    g = torch.Generator().manual_seed(0)
    b, d = 256, 8
    # independent: every dimension's mean drawn separately; the aggregate N(0, 0.75 I) factorises, TC = 0
    mu = 0.5 * torch.randn(b, d, generator=g)
    logvar = torch.full((b, d), math.log(0.5))
    z = mu + torch.randn(b, d, generator=g) * (0.5 * logvar).exp()
    for dataset_size in (None, 10_000):
        assert abs(tc_decomposition(z, mu, logvar, dataset_size)["tc"].item()) < 0.1
    # correlated: one shared factor in every dimension, aggregate N(0, 1 1^T + 0.1 I)
    s = torch.randn(b, 1, generator=g)
    mu = s.expand(b, d).clone()
    logvar = torch.full((b, d), math.log(0.1))
    z = mu + torch.randn(b, d, generator=g) * (0.5 * logvar).exp()
    cov = torch.ones(d, d, dtype=torch.float64) + 0.1 * torch.eye(d, dtype=torch.float64)
    tc_true = 0.5 * (cov.diagonal().log().sum() - torch.logdet(cov)).item()  # 7.39 nats
    for dataset_size in (None, 10_000):
        tc = tc_decomposition(z, mu, logvar, dataset_size)["tc"].item()
        assert tc > 5 and abs(tc - tc_true) < 1.0


def test_tc_estimator_weights():
    for b, n in [(2, 2), (5, 5), (16, 1440)]:
        w = _log_weights(b, n, torch.zeros(())).exp()
        torch.testing.assert_close(w.sum(1), torch.ones(b, dtype=w.dtype))
        assert torch.allclose(w.diagonal(), torch.full((b,), 1.0 / n))
    torch.testing.assert_close(_log_weights(4, None, torch.zeros(())).exp(), torch.full((4, 4), 0.25))
    parts = tc_decomposition(*_posterior_batch(1, 3), dataset_size=100)  # a last batch of one clip
    assert parts["mi"].item() == 0.0 and parts["tc"].item() == 0.0


def test_tc_vae_loss_with_unit_weights_is_the_study_loss_up_to_the_kl_estimator():
    torch.manual_seed(3)
    m = TCVAE(alpha=1.0, beta=1.0, gamma=1.0)
    x = _x(4)
    out = m(x)
    losses = m.loss_function(x, out)
    z, mu, logvar = out["z"], out["mu"], out["logvar"]
    one_sample_kl = (-0.5 * (logvar + (z - mu) ** 2 / logvar.exp()) + 0.5 * z ** 2).sum(1).mean()
    torch.testing.assert_close(losses["loss"], losses["reconstruction"] + one_sample_kl, rtol=1e-5, atol=1e-4)
    study = EmotionVAE.loss_function(m, x, out)
    torch.testing.assert_close(losses["kl"], study["kl"])
    torch.testing.assert_close(losses["reconstruction"], study["reconstruction"])
    weighted = TCVAE(alpha=0.5, beta=6.0, gamma=2.0).loss_function(x, out)
    torch.testing.assert_close(weighted["loss"], losses["reconstruction"] + 0.5 * losses["mi"]
                               + 6.0 * losses["tc"] + 2.0 * losses["dimwise_kl"])
