"""Variants that separate emotion from speaker: speaker-conditioned VAE, emotion-supervised VAE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from emovae_utils.accel import select, why_not
from emovae_utils.models import (
    EmotionSupervisedVAE, EmotionVAE, SpeakerConditionedVAE, build, load_model, save_model,
)
from emovae_utils.models.conditional_vae import clip_codes, speaker_codes
from emovae_utils.models.supervised_vae import emotion_sublatent, grad_reverse
from emovae_utils.train import fit


def _x(n=4, seed=0, n_mels=80):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_mels, 128, generator=g) * 17.5 - 40  # dB-like


def _labels(n=4):
    return torch.stack([torch.arange(n) % 8, torch.arange(n) // 2], 1)  # (emotion, speaker)


# --- both models -------------------------------------------------------------------------------------------------

CONFIGS = [("speaker_vae", SpeakerConditionedVAE, {"latent_dim": 6, "cond_dim": 80, "condition_encoder": True}),
           ("speaker_vae", SpeakerConditionedVAE, {"condition_encoder": False}),
           ("supervised_vae", EmotionSupervisedVAE, {"emotion_dims": 3, "n_speakers": 5, "classifier_weight": 2.0,
                                                     "adversary_weight": 0.5})]


def _cond_for(model, x):
    if isinstance(model, SpeakerConditionedVAE):
        return torch.as_tensor(speaker_codes(x, [0, 0, 1, 1][: x.shape[0]]))
    return _labels(x.shape[0])


@pytest.mark.parametrize("name, cls, config", CONFIGS)
def test_build_by_name_and_save_load_round_trip(tmp_path, name, cls, config):
    torch.manual_seed(0)
    model = build(name, **config)
    assert type(model) is cls and isinstance(model, EmotionVAE)
    assert {k: model.config[k] for k in config} == config
    path = save_model(tmp_path / "m.pt", model, note="x")
    loaded, meta = load_model(path)
    assert type(loaded) is cls and loaded.config == model.config and meta == {"note": "x"}
    assert list(loaded.state_dict()) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = _x(4)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x, _cond_for(model, x)), model.encode(x, _cond_for(model, x)),
                                   rtol=0, atol=0)


@pytest.mark.parametrize("name, cls, config", CONFIGS)
def test_accelerator_refuses_both(name, cls, config):
    model = build(name, **config)
    assert cls.__name__ in why_not(model)
    assert select(model, "auto", "cpu")[0] is None


def test_fit_with_speaker_codes_trains_the_condition_layers():
    x = _x(4)
    cond = speaker_codes(x, [1, 1, 2, 2])
    torch.manual_seed(0)
    model = build("speaker_vae", condition_encoder=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = fit(model, x, cond=cond, epochs=2, progress=False, accel="auto")
    assert list(history.columns) == ["epoch", "reconstruction", "kl", "total"]
    assert np.isfinite(history.to_numpy()).all()
    for k in ("cond_dec.weight", "cond_enc.weight", "fc_dec.weight", "encoder.0.weight"):
        assert not torch.equal(before[k], model.state_dict()[k]), k


def test_fit_with_labels_has_the_supervised_columns():
    x = _x(4)
    cond = _labels(4)
    cond[1, 0] = -1  # an unlabeled clip
    torch.manual_seed(0)
    model = build("supervised_vae", n_speakers=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = fit(model, x, labels=cond.numpy(), epochs=2, batch_size=2, progress=False)
    assert list(history.columns) == ["epoch", "reconstruction", "kl", "total", "emotion_ce", "speaker_ce",
                                     "emotion_acc"]
    assert np.isfinite(history.to_numpy()).all()
    assert ((history["emotion_acc"] >= 0) & (history["emotion_acc"] <= 1)).all()
    for k in ("emotion_head.weight", "speaker_head.weight", "fc_enc.weight"):
        assert not torch.equal(before[k], model.state_dict()[k]), k


# --- speaker-conditioned VAE -------------------------------------------------------------------------------------

def test_speaker_vae_keeps_the_authors_layers_and_adds_one_linear_per_network():
    base = EmotionVAE()
    for enc in (False, True):
        m = SpeakerConditionedVAE(condition_encoder=enc)
        base_shapes = {k: v.shape for k, v in base.state_dict().items()}
        assert {k: v.shape for k, v in m.state_dict().items() if k in base_shapes} == base_shapes
        added = {k: tuple(v.shape) for k, v in m.state_dict().items() if k not in base_shapes}
        want = {"cond_dec.weight": (256, 80), "cond_dec.bias": (256,)}
        if enc:
            want.update({"cond_enc.weight": (256, 80), "cond_enc.bias": (256,)})
        assert added == want


def test_untrained_speaker_vae_computes_the_emotion_vae_of_the_same_seed():
    x, c = _x(2), torch.as_tensor(clip_codes(_x(2, seed=3)))
    torch.manual_seed(5)
    base = EmotionVAE().eval()
    torch.manual_seed(5)
    m = SpeakerConditionedVAE(condition_encoder=True).eval()
    with torch.no_grad():
        assert torch.equal(m.encode(x, c)[0], base.encode(x)[0])
        z = torch.randn(2, 8)
        assert torch.equal(m.decode(z, c), base.decode(z))


def test_decoder_output_changes_when_only_the_condition_changes():
    x = _x(4)
    cond = speaker_codes(x, [0, 0, 1, 1])
    torch.manual_seed(0)
    m = SpeakerConditionedVAE()
    fit(m, x, cond=cond, epochs=2, progress=False)
    m.eval()
    z = torch.randn(3, 8)
    c1 = torch.as_tensor(clip_codes(_x(3, seed=1)))
    c2 = c1 + 5.0
    with torch.no_grad():
        a, b, a2 = m.decode(z, c1), m.decode(z, c2), m.decode(z, c1)
    assert torch.equal(a, a2) and (a - b).abs().max() > 1e-3
    with torch.no_grad():
        # the addition is the documented one: fc_dec(z) + cond_dec(c) into the authors' decoder stack
        torch.testing.assert_close(a, m.decoder((m.fc_dec(z) + m.cond_dec(c1)).unsqueeze(-1)))
        # one code (cond_dim,) is broadcast to every row
        torch.testing.assert_close(m.decode(z, c1[0]), m.decode(z, c1[:1].expand(3, -1)))


def test_encoder_uses_the_condition_only_when_asked():
    x, c = _x(2), torch.as_tensor(clip_codes(_x(2, seed=3)))
    torch.manual_seed(0)
    plain = SpeakerConditionedVAE(condition_encoder=False).eval()
    torch.manual_seed(0)
    cond_enc = SpeakerConditionedVAE(condition_encoder=True).eval()
    torch.nn.init.normal_(cond_enc.cond_enc.weight, std=1e-3)  # as after some training (it starts at zero)
    with torch.no_grad():
        assert torch.equal(plain.encode(x)[0], plain.encode(x, c + 10)[0])
        assert (cond_enc.encode(x, c)[0] - cond_enc.encode(x, c + 10)[0]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="encode needs cond"):
        cond_enc.encode(x)


def test_condition_is_required_with_a_clear_error():
    m = SpeakerConditionedVAE()
    with pytest.raises(ValueError, match="sample needs cond.*speaker_codes"):
        m.sample(2)
    with pytest.raises(ValueError, match="decode needs cond"):
        m.decode(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="forward|decode needs cond"):
        m(_x(2))
    with pytest.raises(ValueError, match=r"cond must be \(2, 80\)"):
        m.decode(torch.zeros(2, 8), torch.zeros(2, 40))
    assert m.sample(2, torch.full((2, 80), -40.0)).shape == (2, 80, 128)


def test_speaker_codes_one_code_per_speaker():
    x = _x(5).numpy()
    speakers = np.array([7, 3, 7, 3, 9])
    codes = speaker_codes(x, speakers)
    assert codes.shape == (5, 80) and codes.dtype == np.float32
    np.testing.assert_array_equal(codes[0], codes[2])
    np.testing.assert_array_equal(codes[1], codes[3])
    assert np.abs(codes[0] - codes[1]).max() > 0.1 and np.abs(codes[0] - codes[4]).max() > 0.1
    np.testing.assert_allclose(codes[0], x[[0, 2]].mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(codes[4], x[4].mean(axis=1), rtol=1e-5)
    # formable for one (e.g. unseen test) speaker from their own clips alone
    np.testing.assert_array_equal(speaker_codes(x[[1, 3]], speakers[[1, 3]]), codes[[1, 3]])
    # tensors in, string ids
    np.testing.assert_allclose(speaker_codes(torch.as_tensor(x), ["a", "b", "a", "b", "c"]), codes)
    with pytest.raises(ValueError, match="one id per clip"):
        speaker_codes(x, speakers[:3])


def test_clip_codes_are_time_means():
    x = _x(3).numpy()
    np.testing.assert_allclose(clip_codes(x), x.mean(axis=2), rtol=1e-5)
    assert clip_codes(x).shape == (3, 80)


# --- emotion-supervised VAE --------------------------------------------------------------------------------------

def test_grad_reverse_flips_and_scales_the_gradient_only():
    x = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    w = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.25, 1.0]])
    target = torch.tensor([1])
    (g_plain,) = torch.autograd.grad(F.cross_entropy(x @ w, target), x)
    y = grad_reverse(x, 2.0)
    assert torch.equal(y, x)
    (g_rev,) = torch.autograd.grad(F.cross_entropy(y @ w, target), x)
    torch.testing.assert_close(g_rev, -2.0 * g_plain)
    assert (torch.sign(g_rev) == -torch.sign(g_plain)).all()
    (g0,) = torch.autograd.grad(F.cross_entropy(grad_reverse(x, 0.0) @ w, target), x)
    assert torch.equal(g0, torch.zeros_like(x))


def test_encoder_gradient_from_the_speaker_head_is_reversed():
    torch.manual_seed(0)
    m = EmotionSupervisedVAE(n_speakers=3, adversary_weight=1.0)
    x, s = _x(4), torch.tensor([0, 1, 2, 0])
    enc_params = [m.fc_enc.weight, m.encoder[0].weight]
    torch.manual_seed(1)
    out = m(x)
    speaker_ce = m.loss_function(x, out, torch.stack([torch.full((4,), -1), s], 1))["speaker_ce"]
    g_adv = torch.autograd.grad(speaker_ce, enc_params + [m.speaker_head.weight])
    # a plain head on the same sub-latent, no reversal
    plain = F.cross_entropy(m.speaker_head(m.encode(x)[0][:, : m.emotion_dims]), s)
    g_plain = torch.autograd.grad(plain, enc_params + [m.speaker_head.weight])
    for a, b in zip(g_adv[:-1], g_plain[:-1]):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, -b)
    torch.testing.assert_close(g_adv[-1], g_plain[-1])  # the head itself learns normally
    # the emotion head's gradient is not reversed
    out = m(x)
    g_emo = torch.autograd.grad(m.loss_function(x, out, torch.stack([s, torch.full((4,), -1)], 1))["emotion_ce"],
                                m.fc_enc.weight)[0]
    plain = F.cross_entropy(m.emotion_head(m.encode(x)[0][:, : m.emotion_dims]), s)
    torch.testing.assert_close(g_emo, torch.autograd.grad(plain, m.fc_enc.weight)[0])


def test_unknown_labels_are_left_out_of_the_cross_entropy_means():
    torch.manual_seed(0)
    m = EmotionSupervisedVAE(n_speakers=4, classifier_weight=3.0)
    x = _x(5)
    labels = torch.tensor([[0, 1], [-1, 2], [5, -1], [-1, -1], [7, 3]])
    torch.manual_seed(2)
    out = m(x)
    losses = m.loss_function(x, out, labels)
    e_known, s_known = labels[:, 0] >= 0, labels[:, 1] >= 0
    emo_ce = F.cross_entropy(out["emotion_logits"][e_known], labels[e_known, 0])
    spk_ce = F.cross_entropy(out["speaker_logits"][s_known], labels[s_known, 1])
    base = EmotionVAE.loss_function(m, x, out)
    torch.testing.assert_close(losses["emotion_ce"], emo_ce)
    torch.testing.assert_close(losses["speaker_ce"], spk_ce)
    torch.testing.assert_close(losses["reconstruction"], base["reconstruction"])  # every clip
    torch.testing.assert_close(losses["loss"], base["loss"] + 3.0 * emo_ce + spk_ce)
    acc = (out["emotion_logits"][e_known].argmax(1) == labels[e_known, 0]).float().mean()
    torch.testing.assert_close(losses["emotion_acc"], acc)
    # no labels at all (None or all -1): the study's loss, finite, CE terms 0
    for labels in (None, torch.full((5, 2), -1)):
        torch.manual_seed(2)
        out = m(x)
        losses = m.loss_function(x, out, labels)
        torch.testing.assert_close(losses["loss"], EmotionVAE.loss_function(m, x, out)["loss"])
        assert losses["emotion_ce"].item() == losses["speaker_ce"].item() == losses["emotion_acc"].item() == 0.0


def test_bad_labels_say_what_is_expected():
    m = EmotionSupervisedVAE(n_speakers=4)
    x = _x(2)
    out = m(x)
    with pytest.raises(ValueError, match="integer tensor"):
        m.loss_function(x, out, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="integer tensor"):
        m.loss_function(x, out, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="speaker indices must be in 0..3.*actor - 1"):
        m.loss_function(x, out, torch.tensor([[0, 4], [1, 0]]))
    with pytest.raises(ValueError, match="emotion indices"):
        m.loss_function(x, out, torch.tensor([[8, 0], [-2, 0]]))


def test_supervised_model_is_unconditional_at_test_time():
    torch.manual_seed(0)
    m = EmotionSupervisedVAE().eval()
    x = _x(3)
    with torch.no_grad():
        assert torch.equal(m.encode(x)[0], m.encode(x, _labels(3))[0])
        z = torch.randn(3, 8)
        assert torch.equal(m.decode(z), m.decode(z, _labels(3)))
    assert m.sample(2).shape == (2, 80, 128)
    with pytest.raises(ValueError, match="emotion_dims"):
        EmotionSupervisedVAE(latent_dim=4, emotion_dims=5)


def test_emotion_sublatent_is_the_posterior_mean_in_eval_mode():
    torch.manual_seed(0)
    m = EmotionSupervisedVAE(emotion_dims=3).train()
    x = _x(5)
    e = emotion_sublatent(m, x.numpy(), batch_size=2)
    assert m.training and e.shape == (5, 3) and e.dtype == np.float32
    with torch.no_grad():
        np.testing.assert_allclose(e, m.encode(x)[0][:, :3].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(e, emotion_sublatent(m, x, batch_size=2))  # deterministic: no sampling


def test_a_spectral_emotion_pattern_is_learned_above_chance():
    """8 emotions, each a raised mel band; 16 clips of 8 bands, 150 full-batch steps (~1-2 s)."""
    def data(seed, n=16, n_mels=8):
        g = torch.Generator().manual_seed(seed)
        emo = torch.arange(n) % 8
        x = torch.randn(n, n_mels, 128, generator=g)
        x[torch.arange(n), emo] += 3.0
        return x, emo

    x, emo = data(0)
    cond = torch.stack([emo, torch.arange(16) // 8], 1)
    torch.manual_seed(0)
    m = build("supervised_vae", n_mels=8, n_speakers=2, classifier_weight=10.0)
    history = fit(m, x, labels=cond, epochs=150, lr=3e-3, progress=False)
    assert history["emotion_acc"].iloc[-10:].mean() >= 0.75  # chance is 1/8
    assert history["emotion_ce"].iloc[-1] < 0.5 * history["emotion_ce"].iloc[0]
    x_new, emo_new = data(1)  # fresh clips of the same pattern
    with torch.no_grad():
        pred = m.emotion_head(torch.as_tensor(emotion_sublatent(m, x_new))).argmax(1)
    assert (pred == emo_new).float().mean().item() >= 0.5


def test_conditions_refuse_clips_without_what_they_need():
    """Own recordings (data.audio_index: nullable columns, <NA> where the name says nothing) have no emotion and
    no speaker: each condition that needs them says so instead of returning a sentinel number for every clip."""
    import pandas as pd

    from emovae_utils.conditions import make_condition

    X = np.zeros((3, 80, 128), np.float32)
    known = pd.DataFrame({"actor": pd.array([1, 1, 2], dtype="Int64"), "emotion_id": pd.array([1, 5, 8], dtype="Int64"),
                          "n_frames": [128, 60, 90]})
    assert make_condition("emotion", X, known).tolist() == [0, 4, 7]
    assert make_condition("labels", X, known).tolist() == [[0, 0], [4, 0], [7, 1]]
    gaps = known.assign(actor=pd.array([1, None, 2], dtype="Int64"), emotion_id=[1.0, np.nan, 8.0])
    for name, what in [("emotion", "emotion"), ("labels", "emotion"), ("speaker_code", "speaker")]:
        with pytest.raises(ValueError, match=rf"'{name}' needs each clip's {what}, but 1 of 3 clips have none"):
            make_condition(name, X, gaps)
    assert make_condition("clip_code", X, gaps).shape == (3, 80)  # needs neither
    assert make_condition("lengths", X, gaps).tolist() == [128, 60, 90]


def test_several_conditions_route_one_by_one_and_a_role_only_once():
    from emovae_utils.conditions import route_condition
    from emovae_utils.models import model_class

    assert route_condition(["lengths"], model_class("sequence_vae")) == {"cond": None}
    assert route_condition(("labels",), model_class("supervised_vae")) == {"labels": None}
    with pytest.raises(ValueError, match="two of them"):
        route_condition(["labels", "emotion"], model_class("supervised_vae"))
    with pytest.raises(ValueError, match="takes no"):
        route_condition(["lengths", "labels"], model_class("sequence_vae"))  # no training labels declared
