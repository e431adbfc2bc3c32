"""EmotionVAE layout, loss and (de)serialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emovae_utils.model import IMPLEMENTATIONS, EmotionVAE, load_model, save_model, vae_loss


def _x(n=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 80, 128, generator=g) * 20 - 40).to(dtype)


def test_parameter_count():
    assert sum(p.numel() for p in EmotionVAE().parameters()) == 283_744
    # latent size only changes the two Linear layers: 256*2L + 2L + L*256 + 256
    assert sum(p.numel() for p in EmotionVAE(latent_dim=4).parameters()) == 283_744 - 3 * 256 * 4 - 8


def test_layer_list_is_the_authors():
    m = EmotionVAE()
    convs = [l for l in m.encoder if isinstance(l, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (80, 64, 4, 2, 1), (64, 32, 4, 2, 1), (32, 16, 4, 2, 1), (16, 16, 4, 2, 1),
        (16, 128, 4, 2, 1), (128, 256, 3, 2, 0),
    ]
    assert sum(isinstance(l, torch.nn.ReLU) for l in m.encoder) == 6
    tconvs = [l for l in m.decoder if isinstance(l, torch.nn.ConvTranspose1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in tconvs] == [
        (256, 128, 3, 1, 0), (128, 16, 4, 2, 0), (16, 16, 4, 2, 1), (16, 32, 4, 2, 1),
        (32, 64, 4, 2, 1), (64, 80, 4, 2, 1),
    ]
    # a ReLU directly before every transposed convolution, none after the last
    layers = list(m.decoder)
    for i, l in enumerate(layers):
        if isinstance(l, torch.nn.ConvTranspose1d):
            assert isinstance(layers[i - 1], torch.nn.ReLU)
    assert isinstance(layers[-1], torch.nn.ConvTranspose1d)
    assert (m.fc_enc.in_features, m.fc_enc.out_features) == (256, 16)
    assert (m.fc_dec.in_features, m.fc_dec.out_features) == (8, 256)


def test_time_lengths_through_the_network():
    m = EmotionVAE()
    m.impl = "torch"
    lengths = []
    hooks = [l.register_forward_hook(lambda mod, i, o: lengths.append(o.shape[-1]))
             for l in list(m.encoder) + list(m.decoder)
             if isinstance(l, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))]
    m(_x(2))
    for h in hooks:
        h.remove()
    assert lengths == [64, 32, 16, 8, 4, 1, 3, 8, 16, 32, 64, 128]


def test_init_kaiming_on_linear_only():
    torch.manual_seed(0)
    m = EmotionVAE()
    for lin, fan_in in ((m.fc_enc, 256), (m.fc_dec, 8)):
        std = lin.weight.std().item()
        assert abs(std / np.sqrt(2 / fan_in) - 1) < 0.1  # kaiming_normal_, ReLU gain
    for conv in m.encoder:
        if isinstance(conv, torch.nn.Conv1d):  # PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            fan_in = conv.in_channels * conv.kernel_size[0]
            assert conv.weight.abs().max().item() <= 1 / np.sqrt(fan_in) + 1e-7


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_shapes(impl):
    m = EmotionVAE()
    m.impl = impl
    x = _x(5)
    with torch.no_grad():  # (with autograd on, encode/decode use the nn modules)
        mu, logvar = m.encode(x)
        assert mu.shape == logvar.shape == (5, 8)
        assert m.decode(mu).shape == (5, 80, 128)
        recon, mu2, logvar2 = m(x)
    assert recon.shape == (5, 80, 128)
    assert torch.equal(mu, mu2) and torch.equal(logvar, logvar2)
    m4 = EmotionVAE(latent_dim=4)
    m4.impl = impl
    assert m4.encode(x)[0].shape == (5, 4)
    assert m4.decode(torch.zeros(2, 4)).shape == (2, 80, 128)
    assert m(_x(1))[0].shape == (1, 80, 128)


def test_bad_input_shape():
    with pytest.raises(ValueError, match="expected input"):
        EmotionVAE()(torch.zeros(2, 128, 80))


def _dim_order(t: torch.Tensor) -> list[int]:
    return sorted(range(t.dim()), key=lambda d: -t.stride(d))


@pytest.mark.parametrize("layout", ["channel-major", "time-major"])
def test_gemm_and_torch_paths_agree_with_gradients(layout):
    """The fast path computes the same function and gradients as the nn modules."""
    torch.manual_seed(0)
    m = EmotionVAE().double()
    results = {}
    for impl in IMPLEMENTATIONS:
        x = _x(4, dtype=torch.float64)
        if layout == "time-major" and impl == "gemm":  # same values, (N, 128, 80) storage
            x = x.transpose(1, 2).contiguous().transpose(1, 2)
            assert not x.is_contiguous()
        x.requires_grad_(True)
        m.impl = impl
        m.zero_grad()
        torch.manual_seed(1)
        recon, mu, logvar = m(x)
        if impl == "gemm":  # the reconstruction keeps the input's memory order
            assert _dim_order(recon) == _dim_order(x)
        total, _, _ = vae_loss(recon, x, mu, logvar)
        (total + recon.pow(3).mean() * 1e-3).backward()  # a non-trivial output gradient
        results[impl] = [recon.detach(), mu.detach(), logvar.detach(), x.grad.clone()] + [
            p.grad.clone() for p in m.parameters()
        ]
    for a, b in zip(results["gemm"], results["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # and float32 agrees to rounding
    m = m.float()
    x = _x(4)
    outs = {}
    for impl in IMPLEMENTATIONS:
        m.impl = impl
        with torch.no_grad():
            outs[impl] = m.decode(m.encode(x)[0])
    torch.testing.assert_close(outs["gemm"], outs["torch"], rtol=1e-4, atol=1e-4)


def test_unknown_impl():
    m = EmotionVAE()
    m.impl = "fast"
    with pytest.raises(ValueError, match="impl"):
        m(_x(1))


def test_reparameterize():
    mu = torch.tensor([[1.0, -2.0, 0.5]])
    logvar = torch.tensor([[0.0, 2.0, -4.0]])
    torch.manual_seed(7)
    eps = torch.randn(1, 3)
    torch.manual_seed(7)
    z = EmotionVAE.reparameterize(mu, logvar)
    torch.testing.assert_close(z, mu + eps * torch.exp(logvar / 2))


def test_vae_loss_against_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4))
    r = rng.normal(size=(2, 3, 4))
    mu = rng.normal(size=(2, 3))
    lv = rng.normal(size=(2, 3))
    mse = np.mean((r - x) ** 2)
    kl_per_item = [-0.5 * sum(1 + lv[i, j] - mu[i, j] ** 2 - np.exp(lv[i, j]) for j in range(3))
                   for i in range(2)]
    kl = (kl_per_item[0] + kl_per_item[1]) / 2
    t = [torch.tensor(a) for a in (r, x, mu, lv)]
    total, rec, klt = vae_loss(*t)
    assert rec.item() == pytest.approx(mse, rel=1e-12)
    assert klt.item() == pytest.approx(kl, rel=1e-12)
    assert total.item() == pytest.approx(mse + kl, rel=1e-12)
    total2, _, _ = vae_loss(*t, beta=0.25)
    assert total2.item() == pytest.approx(mse + 0.25 * kl, rel=1e-12)
    # the KL of the prior itself is zero
    z = torch.zeros(2, 3)
    assert vae_loss(t[0], t[0], z, z)[0].item() == 0.0


def test_save_and_load_latent_4(tmp_path):
    torch.manual_seed(3)
    m = EmotionVAE(latent_dim=4)
    path = save_model(tmp_path / "sub" / "m4.pt", m, epochs=12, note="test")
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    loaded, meta = load_model(path)
    assert loaded.latent_dim == 4 and loaded.n_mels == 80
    assert meta == {"epochs": 12, "note": "test"}
    for (k, a), (k2, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    z = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.equal(m.decode(z), loaded.decode(z))
    # a default model does not accept these weights
    with pytest.raises(RuntimeError):
        EmotionVAE().load_state_dict(loaded.state_dict())


@pytest.mark.parametrize("layout", ["channel-major", "time-major"])
@pytest.mark.parametrize("beta", [1.0, 0.25])
def test_loss_and_grad_equals_autograd_of_the_loss(layout, beta):
    """The fused, autograd-free step of fit(): same loss and gradients as the nn modules + backward."""
    torch.manual_seed(0)
    m = EmotionVAE().double()
    x = _x(4, dtype=torch.float64)
    if layout == "time-major":
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    m.impl = "torch"
    m.zero_grad()
    torch.manual_seed(1)
    recon, mu, logvar = m(x)
    ref = vae_loss(recon, x, mu, logvar, beta)
    ref[0].backward()
    ref_grads = [p.grad.clone() for p in m.parameters()]
    m.impl = "gemm"
    params = list(m.parameters())
    for i, p in enumerate(params):  # stale gradients are overwritten, whatever their layout
        p.grad = torch.full(p.shape, 7.0, dtype=p.dtype) if i % 2 else torch.full_like(p, -3.0)
    torch.manual_seed(1)  # same random numbers
    got = m.loss_and_grad(x, beta)
    for a, b in zip(got, ref):
        assert a.requires_grad is False
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=0)
    for p, g in zip(params, ref_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-9, atol=1e-12)
    for p in params:  # missing gradients are created, in the parameter's memory layout
        p.grad = None
    torch.manual_seed(1)
    m.loss_and_grad(x, beta)
    for p, g in zip(params, ref_grads):
        assert p.grad.stride() == p.stride()
        torch.testing.assert_close(p.grad, g, rtol=1e-9, atol=1e-12)


def test_conv_weights_stored_in_matrix_order_with_the_usual_shapes(tmp_path):
    m = EmotionVAE()
    enc, dec = m._convs()
    assert enc[0].weight.shape == (64, 80, 4)
    assert enc[0].weight.permute(2, 1, 0).is_contiguous()  # (tap, in, out) in memory
    assert dec[-1].weight.shape == (64, 80, 4)
    assert dec[-1].weight.permute(0, 2, 1).is_contiguous()  # (in, tap, out) in memory
    # a state dict from contiguous weights loads into it unchanged
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    m2 = EmotionVAE()
    m2.load_state_dict(state)
    assert m2._convs()[0][0].weight.permute(2, 1, 0).is_contiguous()
    for k, v in m2.state_dict().items():
        assert torch.equal(v, state[k])
    loaded, _ = load_model(save_model(tmp_path / "m.pt", m2))
    assert loaded._convs()[0][0].weight.permute(2, 1, 0).is_contiguous()
    x = _x(2)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x)[0], m2.encode(x)[0])


def test_loss_and_grad_reuses_its_buffers_correctly():
    """Kept buffers across calls: changing weights, alternating batch sizes, gathered batches."""
    import copy

    torch.manual_seed(0)
    m = EmotionVAE().double()
    ref = copy.deepcopy(m)
    ref.impl = "torch"
    X = _x(10, seed=4, dtype=torch.float64).transpose(1, 2).contiguous().transpose(1, 2)
    g = torch.Generator().manual_seed(1)
    for step, size in enumerate([4, 4, 3, 4, 3]):
        with torch.no_grad():  # a different model at every step, same for both
            for a, b in zip(m.parameters(), ref.parameters()):
                a.add_(0.01 * torch.randn(a.shape, generator=g, dtype=a.dtype))
                b.copy_(a)
        idx = torch.randperm(10, generator=g)[:size]
        torch.manual_seed(step)
        got = m.loss_and_grad(X, 0.5, index=idx)
        ref.zero_grad()
        torch.manual_seed(step)
        xb = X[idx]
        recon, mu, logvar = ref(xb)
        want = vae_loss(recon, xb, mu, logvar, 0.5)
        want[0].backward()
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=0)
        for a, b in zip(m.parameters(), ref.parameters()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    assert len(m._memos) == 2  # one set of buffers per batch size, reused
    assert "_memos" not in copy.deepcopy(m).__dict__
