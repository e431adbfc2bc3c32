"""FactorisedSequenceVAE: content/speaker/emotion latents of variable-length log-mels, padding never seen."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from emovae_utils.models import FactorisedSequenceVAE, build
from emovae_utils.models.sequence_vae import length_mask
from synthetic_sequences import padded_log_mels

SMALL = {"content_dim": 3, "speaker_dim": 5, "emotion_dim": 8, "channels": 16, "max_frames": 64}


def synthetic(n: int = 6, t_max: int = 50, seed: int = 0):
    return padded_log_mels(n, t_max, seed, min_length=9)


def labels_for(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, 8, (n,), generator=g), torch.randint(0, 24, (n,), generator=g)], dim=1)


def model(**config) -> FactorisedSequenceVAE:
    torch.manual_seed(0)
    return FactorisedSequenceVAE(**{**SMALL, **config})


@pytest.mark.parametrize("stride,content_stride,t_max", [(4, 8, 50), (4, 4, 37), (2, 8, 64), (4, 16, 9)])
def test_content_latent_follows_the_length(stride, content_stride, t_max):
    m = model(stride=stride, content_stride=content_stride).eval()
    x, lengths = synthetic(t_max=t_max)
    with torch.no_grad():
        parts = m.encode_parts(x, lengths)
        mu, logvar = m.encode(x, lengths)
    steps = -(-t_max // content_stride)  # ceil(T / content_stride) steps for the padded array
    assert parts["content"].shape == (6, 3, steps)
    assert parts["speaker"].shape == (6, 5) and parts["emotion"].shape == (6, 8)
    for k, n in enumerate(lengths.tolist()):  # a clip's own steps: ceil(length / content_stride), zero after
        real = -(-n // content_stride)
        assert bool((parts["content"][k, :, real:] == 0).all())
        assert bool((parts["content"][k, :, real - 1] != 0).any())
    # the flat latent is [emotion | speaker | content], zero-padded to max_frames' steps
    assert mu.shape == logvar.shape == (6, m.latent_dim)
    assert m.latent_dim == 8 + 5 + 3 * -(-64 // content_stride)
    flat = m.split_latent(mu)
    torch.testing.assert_close(flat["content"][:, :, :steps], parts["content"])
    assert bool((flat["content"][:, :, steps:] == 0).all())
    assert bool((m.split_latent(logvar)["content"][:, :, steps:] == 0).all())
    torch.testing.assert_close(flat["emotion"], parts["emotion"])
    torch.testing.assert_close(m.join_latent(parts["content"], parts["speaker"], parts["emotion"]), mu)


def test_another_emotion_changes_only_the_output():
    m = model().eval()
    x, lengths = synthetic()
    with torch.no_grad():
        before = m.encode_parts(x, lengths)
        args = {k: v.clone() for k, v in before.items()}
        same = m.decode_parts(args["content"], args["speaker"], args["emotion"], lengths, n_frames=50)
        other = args["emotion"] + torch.randn(6, 8)
        converted = m.decode_parts(args["content"], args["speaker"], other, lengths, n_frames=50)
        after = m.encode_parts(x, lengths)
    assert converted.shape == same.shape == x.shape
    assert not torch.allclose(converted, same)  # the emotion reaches the output...
    for k in before:  # ...while the encoding of the same input and the content and speaker arguments are unchanged
        assert torch.equal(after[k], before[k]) and torch.equal(args[k], before[k])
    # decoding the flat latent is decoding its parts
    z = m.join_latent(before["content"], before["speaker"], before["emotion"])
    with torch.no_grad():
        torch.testing.assert_close(m.decode(z, lengths, n_frames=50), same)
    for k, n in enumerate(lengths.tolist()):  # zeros past each length
        assert bool((converted[k, :, n:] == 0).all())


def _loss_and_grads(m, x, lengths, labels):
    m.zero_grad()
    x = x.clone().requires_grad_(True)
    torch.manual_seed(1)  # the same draws of every latent
    losses = m.loss_function(x, m(x, lengths), labels)
    losses["loss"].backward()
    return losses, {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}, x.grad


def test_padded_frames_never_reach_the_loss_or_the_gradients():
    m = model(content_adversary_weight=0.5, speaker_adversary_weight=0.5)
    x, lengths = synthetic()
    labels = labels_for(6)
    mask = length_mask(lengths, x.shape[2])[:, None]
    other = torch.where(mask, x, torch.randn_like(x) * 1e3)
    short = int(torch.argmin(lengths))
    other[short, :, -1] = float("inf")  # even inf in the padding is never read
    a, grads_a, gx = _loss_and_grads(m, x, lengths, labels)
    b, grads_b, _ = _loss_and_grads(m, other, lengths, labels)
    assert set(a) == set(b) and all(torch.isfinite(v) for v in a.values())
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == len(list(m.parameters()))
    for name in grads_a:
        assert torch.equal(grads_a[name], grads_b[name]), name
    assert bool((gx[~mask.expand_as(gx)] == 0).all())  # no gradient reaches a padded input value
    # the reconstruction is the plain MSE over the real frames
    with torch.no_grad():
        torch.manual_seed(1)
        out = m(x, lengths)
    real = torch.cat([((out["recon"][k] - x[k]) ** 2)[:, :n].flatten() for k, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(a["reconstruction"], real.mean())
    # more padding changes no posterior mean of the real steps
    wider = torch.cat([x, torch.full((6, 80, 13), -7.0)], dim=2)
    with torch.no_grad():
        p, q = m.encode_parts(x, lengths), m.encode_parts(wider, lengths)
    for k in ("speaker", "emotion"):
        torch.testing.assert_close(q[k], p[k], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q["content"][:, :, : p["content"].shape[2]], p["content"], rtol=1e-5, atol=1e-5)


def test_loss_terms_heads_and_masked_labels():
    m = model()
    x, lengths = synthetic(n=4)
    torch.manual_seed(1)
    out = m(x, lengths)
    labels = torch.tensor([[0, 1], [-1, 3], [5, -1], [-1, -1]])
    losses = m.loss_function(x, out, labels)
    for key in ("loss", "reconstruction", "kl", "kl_content", "kl_speaker", "kl_emotion", "emotion_ce", "emotion_acc",
                "speaker_ce", "content_emotion_ce", "content_speaker_ce", "speaker_emotion_ce"):
        assert key in losses and losses[key].dim() == 0, key
    torch.testing.assert_close(losses["kl"], losses["kl_content"] + losses["kl_speaker"] + losses["kl_emotion"])
    # -1 rows are left out of each cross-entropy
    torch.testing.assert_close(losses["emotion_ce"], F.cross_entropy(out["emotion_logits"][[0, 2]], labels[[0, 2], 0]))
    torch.testing.assert_close(losses["speaker_ce"], F.cross_entropy(out["speaker_logits"][[0, 1]], labels[[0, 1], 1]))
    # no labels at all: every head's term is 0 and the heads get no gradient
    none = m.loss_function(x, out, torch.full((4, 2), -1))
    assert all(none[k].item() == 0 for k in none if k.endswith("_ce") or k.endswith("_acc"))
    none["loss"].backward()
    assert m.emotion_head.weight.grad is None or bool((m.emotion_head.weight.grad == 0).all())
    with pytest.raises(ValueError, match="emotion indices"):
        m.loss_function(x, out, torch.tensor([[8, 0]] * 4))


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_the_speaker_adversary_reverses_into_the_emotion_encoder(weight):
    m = model(adversary_weight=weight)
    x, lengths = synthetic(n=4)
    out = m(x, lengths)
    F.cross_entropy(out["speaker_logits"], torch.tensor([0, 1, 2, 3])).backward()
    assert bool((m.speaker_head.weight.grad != 0).any())  # the head always learns
    moved = any(bool((p.grad != 0).any()) for p in m.emotion_encoder.parameters() if p.grad is not None)
    assert moved == (weight > 0)
    assert all(p.grad is None for p in m.content_encoder.parameters())


def test_fit_trains_it_with_lengths_and_labels():
    from emovae_utils.train import fit

    x, lengths = synthetic(n=8, t_max=40)
    labels = labels_for(8).numpy()
    labels[1] = -1
    m = model()
    history = fit(m, x.numpy(), epochs=2, batch_size=4, cond=lengths.numpy(), labels=labels, progress=False)
    assert len(history) == 2 and np.isfinite(history.drop(columns="epoch").to_numpy()).all()
    assert {"reconstruction", "kl", "total", "emotion_ce", "speaker_ce", "kl_content"} <= set(history.columns)
    with pytest.raises(ValueError, match="trains on labels"):
        fit(model(), x.numpy(), epochs=1, cond=lengths.numpy(), progress=False)
    with pytest.raises(ValueError, match="needs each clip's length"):
        fit(model(), x.numpy(), epochs=1, labels=labels, progress=False)


def test_sample_and_representation():
    m = model().eval()
    x, lengths = synthetic()
    assert m.sample(3, cond=torch.tensor([30, 50, 12])).shape == (3, 80, 50)
    with torch.no_grad():
        torch.testing.assert_close(m.representation(x, lengths), m.encode_parts(x, lengths)["emotion"])
    assert m.representation_dim == 8 and m.represent(x.numpy(), lengths.numpy(), batch_size=4).shape == (6, 8)


def test_arguments_are_checked():
    x, lengths = synthetic(n=3)
    with pytest.raises(ValueError, match="multiple of stride"):
        build("factorised_vae", stride=4, content_stride=6)
    with pytest.raises(ValueError, match="content_dim=0"):
        build("factorised_vae", content_dim=0)
    with pytest.raises(ValueError, match="max_frames=32"):
        model(max_frames=32)(x, lengths)
    with pytest.raises(ValueError, match="needs each clip's length"):
        model()(x)
    with pytest.raises(ValueError, match=r"content must be \(N, 3"):
        model().decode_parts(torch.zeros(3, 3, 2), torch.zeros(3, 5), torch.zeros(3, 8), lengths, n_frames=50)


def test_the_flat_latent_works_with_the_generic_encode_and_decode():
    from emovae_utils.generate import decode_latents, encode_posterior

    m = model().eval()
    x, lengths = synthetic()
    mu, sigma = encode_posterior(m, x.numpy(), batch_size=4, cond=lengths.numpy())
    assert mu.shape == sigma.shape == (6, m.latent_dim)
    with torch.no_grad():
        parts = m.encode_parts(x, lengths)
        expected = m.decode_parts(parts["content"], parts["speaker"], parts["emotion"], lengths, n_frames=50)
    np.testing.assert_allclose(decode_latents(m, mu, lengths)[:, :, :50], expected.numpy(), rtol=1e-4, atol=1e-3)


def test_the_conversion_loss_makes_the_decoder_answer_for_the_emotion_latent():
    torch.manual_seed(0)
    model = FactorisedSequenceVAE(conversion_weight=2.0)
    x, lengths = torch.randn(4, 80, 64) * 10 - 40, torch.tensor([64, 40, 64, 33])
    labels = torch.tensor([[0, 0], [1, 1], [2, 2], [-1, 3]])
    out = model(x, lengths)
    assert sorted(out["conversion_source"].tolist()) == [0, 1, 2, 3]
    losses = model.loss_function(x, out, labels)
    assert {"conversion_ce", "conversion_acc"} <= set(losses)
    model.zero_grad()
    losses["conversion_ce"].backward()
    assert model.dec_film.weight.grad.abs().sum() > 0  # the decoder's use of the emotion latent is trained
    assert model.emotion_out.weight.grad is not None
    model.eval()  # evaluation: no conversion pass, and the same loss terms as without the option
    plain = FactorisedSequenceVAE().eval()
    assert "conversion_logits" not in model(x, lengths)
    assert set(model.loss_function(x, model(x, lengths), labels)) == set(
        plain.loss_function(x, plain(x, lengths), labels))
