"""The opt-in gemm accelerator: agrees with the stock model in float64, refuses what it was not written for."""

from __future__ import annotations

import copy

import pytest
import torch

from emovae_utils.accel import AcceleratorUnavailable, GemmAccelerator, select, why_not
from emovae_utils.models import BetaVAE, EmotionVAE, build
from emovae_utils.train import fit


def _x(n=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 80, 128, generator=g) * 20 - 40).to(dtype)


def _time_major(x):
    return x.transpose(1, 2).contiguous().transpose(1, 2)


def _dim_order(t):
    return sorted(range(t.dim()), key=lambda d: -t.stride(d))


@pytest.mark.parametrize("layout", ["channel-major", "time-major"])
def test_forward_and_gradients_agree_with_the_nn_modules_in_float64(layout):
    torch.manual_seed(0)
    m = EmotionVAE().double()
    ref = copy.deepcopy(m)
    acc = GemmAccelerator(m)
    acc.store_weights()
    results = []
    for use_acc in (True, False):
        x = _x(4, dtype=torch.float64)
        if layout == "time-major" and use_acc:
            x = _time_major(x)
        x.requires_grad_(True)
        torch.manual_seed(1)
        if use_acc:
            recon, mu, logvar = acc.forward(x)
            assert _dim_order(recon) == _dim_order(x)  # keeps the input's memory order
            params = list(m.parameters())
        else:
            out = ref(x)
            recon, mu, logvar = out["recon"], out["mu"], out["logvar"]
            params = list(ref.parameters())
        loss = ref.loss_function(x, {"recon": recon, "mu": mu, "logvar": logvar})["loss"]
        (loss + recon.pow(3).mean() * 1e-3).backward()  # a non-trivial output gradient
        results.append([recon.detach(), mu.detach(), logvar.detach(), x.grad.clone()]
                       + [p.grad.clone() for p in params])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    acc.restore_weights()
    assert all(p.is_contiguous() for p in m.parameters())


@pytest.mark.parametrize("layout", ["channel-major", "time-major"])
def test_loss_and_grad_equals_autograd_of_loss_function(layout):
    torch.manual_seed(0)
    m = EmotionVAE().double()
    ref = copy.deepcopy(m)
    x = _x(4, dtype=torch.float64)
    if layout == "time-major":
        x = _time_major(x)
    torch.manual_seed(1)
    want = ref.loss_function(x, ref(x))
    want["loss"].backward()
    acc = GemmAccelerator(m)
    acc.store_weights()
    params = list(m.parameters())
    for i, p in enumerate(params):  # stale gradients are overwritten, whatever their layout
        p.grad = torch.full(p.shape, 7.0, dtype=p.dtype) if i % 2 else torch.full_like(p, -3.0)
    torch.manual_seed(1)  # same random numbers
    got = acc.loss_and_grad(x)
    for k in ("loss", "reconstruction", "kl"):
        assert not got[k].requires_grad
        torch.testing.assert_close(got[k], want[k].detach(), rtol=1e-12, atol=0)
    for p, q in zip(params, ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12)


def test_loss_and_grad_reuses_its_buffers_correctly():
    """Kept buffers across calls: changing weights, alternating batch sizes, gathered batches."""
    torch.manual_seed(0)
    m = EmotionVAE().double()
    ref = copy.deepcopy(m)
    acc = GemmAccelerator(m)
    acc.store_weights()
    X = _time_major(_x(10, seed=4, dtype=torch.float64))
    g = torch.Generator().manual_seed(1)
    for step, size in enumerate([4, 4, 3, 4, 3]):
        with torch.no_grad():  # a different model at every step, same for both
            for a, b in zip(m.parameters(), ref.parameters()):
                a.add_(0.01 * torch.randn(a.shape, generator=g, dtype=a.dtype))
                b.copy_(a)
        idx = torch.randperm(10, generator=g)[:size]
        torch.manual_seed(step)
        got = acc.loss_and_grad(X, index=idx)
        ref.zero_grad()
        torch.manual_seed(step)
        xb = X[idx]
        want = ref.loss_function(xb, ref(xb))
        want["loss"].backward()
        torch.testing.assert_close(got["loss"], want["loss"].detach(), rtol=1e-12, atol=0)
        for a, b in zip(m.parameters(), ref.parameters()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    assert len(acc._memos) == 2  # one set of buffers per batch size, reused


def test_refuses_models_it_was_not_written_for_with_a_reason():
    class OwnDecode(EmotionVAE):
        def decode(self, z, cond=None):
            return super().decode(z, cond) * 2

    assert "EmotionVAE exactly" in why_not(BetaVAE())
    assert "EmotionVAE exactly" in why_not(OwnDecode())
    patched = EmotionVAE()
    patched.loss_function = lambda x, out: {}
    assert "replaced" in why_not(patched)
    wider = EmotionVAE()
    wider.encoder[0] = torch.nn.Conv1d(80, 64, 5, stride=2, padding=2)
    assert "layers differ" in why_not(wider)
    hooked = EmotionVAE()
    hooked.encoder[1].register_forward_hook(lambda *a: None)
    assert "hooks" in why_not(hooked)
    assert why_not(EmotionVAE(latent_dim=4)) is None
    with pytest.raises(AcceleratorUnavailable, match="EmotionVAE exactly"):
        GemmAccelerator(BetaVAE())
    with pytest.raises(AcceleratorUnavailable, match="EmotionVAE exactly"):
        fit(OwnDecode(), _x(4), epochs=1, accel="gemm", progress=False)
    assert select(BetaVAE(), "auto", "cpu")[0] is None
    assert "EmotionVAE exactly" in select(BetaVAE(), "auto", "cpu")[1]
    assert select(EmotionVAE(), "auto", "cuda")[0] is None
    with pytest.raises(ValueError, match="accel must be"):
        select(EmotionVAE(), "fast", "cpu")


def test_fit_with_the_accelerator_matches_the_stock_path_and_gives_weights_back():
    X = _x(6, seed=2)
    hist, models = [], []
    for accel in (None, "gemm"):
        torch.manual_seed(0)
        m = EmotionVAE()
        hist.append(fit(m, X, epochs=4, batch_size=4, seed=1, threads=1, accel=accel, progress=False))
        models.append(m)
    torch.testing.assert_close(torch.tensor(hist[0].to_numpy()), torch.tensor(hist[1].to_numpy()),
                               rtol=1e-4, atol=1e-4)
    assert all(p.is_contiguous() and p.grad is None for p in models[1].parameters())
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        # Adam's step is about lr whatever the gradient's size, so float32 rounding in
        # near-zero gradients can move a weight by up to 2 * lr per step (8 steps here)
        torch.testing.assert_close(a, b, rtol=0, atol=8 * 2e-3)
