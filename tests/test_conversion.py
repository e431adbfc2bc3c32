"""Emotion conversion: per-emotion means, sub-latent swap, scores, the speaker classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from emovae_utils.conversion import conversion_scores, convert_emotion, emotion_means, speaker_classifier
from emovae_utils.models import build
from emovae_utils.models.supervised_vae import emotion_sublatent


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("supervised_vae", latent_dim=6, emotion_dims=2)


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(-40, 5, (7, 80, 128)).astype(np.float32)


def test_emotion_means_are_group_means_of_the_sublatent(model, X):
    emotions = np.array(["sad", "happy", "sad", "angry", "happy", "sad", "angry"])
    means = emotion_means(model, X, emotions)
    e = emotion_sublatent(model, X)
    assert list(means.index) == ["angry", "happy", "sad"] and list(means.columns) == ["z0", "z1"]
    np.testing.assert_allclose(means.loc["sad"].to_numpy(), e[emotions == "sad"].mean(axis=0), rtol=1e-6)


def test_emotion_means_needs_one_label_per_clip(model, X):
    with pytest.raises(ValueError, match="one label per clip"):
        emotion_means(model, X, ["sad"] * 3)


@torch.no_grad()
def _expected(model, X, target):
    model.eval()
    mu, _ = model.encode(torch.as_tensor(X))
    z = torch.cat([torch.as_tensor(target, dtype=torch.float32).expand(len(X), model.emotion_dims),
                   mu[:, model.emotion_dims:]], dim=1)
    return model.decode(z).numpy()


def test_convert_decodes_target_with_the_rest_of_mu(model, X):
    model.train()
    target = np.array([1.5, -0.5], np.float32)
    out = convert_emotion(model, X, target)
    assert model.training  # mode restored
    assert out.shape == X.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, _expected(model, X, target), rtol=1e-5, atol=1e-4)


def test_convert_with_one_target_per_clip_and_batches(model, X):
    targets = np.random.default_rng(1).normal(size=(len(X), 2)).astype(np.float32)
    out = convert_emotion(model, X, targets, batch_size=3)
    want = np.stack([_expected(model, X[i:i + 1], targets[i])[0] for i in range(len(X))])
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)


def test_convert_with_own_sublatent_is_the_reconstruction(model, X):
    own = emotion_sublatent(model, X)
    model.eval()
    with torch.no_grad():
        recon = model.decode(model.encode(torch.as_tensor(X))[0]).numpy()
    np.testing.assert_allclose(convert_emotion(model, X, own), recon, rtol=1e-5, atol=1e-4)


def test_convert_refuses_bad_targets_and_models(model, X):
    with pytest.raises(ValueError, match="emotion_means"):
        convert_emotion(model, X, np.zeros(3))
    with pytest.raises(TypeError, match="supervised_vae"):
        convert_emotion(build("emotion_vae"), X, np.zeros(2))


def test_conversion_scores_on_hand_made_predictions():
    target = ["sad"] * 4 + ["angry"] * 2
    emotion_pred = ["sad", "sad", "sad", "calm", "angry", "sad"]
    source = [1, 1, 2, 2, 3, 3]
    speaker_pred = [1, 2, 2, 2, 3, 1]
    scores = conversion_scores(emotion_pred, target, speaker_pred, source)
    assert list(scores.index) == ["angry", "sad", "all"]
    assert scores.loc["sad", "emotion_rate"] == 0.75 and scores.loc["angry", "emotion_rate"] == 0.5
    assert scores.loc["sad", "speaker_rate"] == 0.75 and scores.loc["angry", "speaker_rate"] == 0.5
    assert scores.loc["all", "n"] == 6 and scores.loc["all", "emotion_rate"] == pytest.approx(4 / 6)
    assert (scores["emotion_chance"] == 0.125).all()


def test_conversion_scores_needs_equal_lengths():
    with pytest.raises(ValueError, match="one entry per converted clip"):
        conversion_scores([1, 2], [1, 2, 3], [1, 2], [1, 2])


def test_speaker_classifier_separates_synthetic_speakers():
    rng = np.random.default_rng(0)
    actors = np.repeat([1, 2, 3], 8)
    X = rng.normal(-40, 2, (len(actors), 80, 128))
    for k in (1, 2, 3):
        X[actors == k, 20 * k: 20 * k + 15] += 8  # each speaker's own formant region
    clf = speaker_classifier(X[::2], actors[::2])
    assert isinstance(clf.steps[1][1], StandardScaler) and isinstance(clf.steps[-1][1], LogisticRegression)
    assert clf.steps[-1][1].class_weight == "balanced"
    assert (clf.predict(X[1::2]) == actors[1::2]).mean() == 1.0


def test_speaker_classifier_refuses_bad_input():
    with pytest.raises(ValueError, match="one label per clip"):
        speaker_classifier(np.zeros((4, 80, 128)), [1, 2])
    with pytest.raises(ValueError, match="at least 2 speakers"):
        speaker_classifier(np.zeros((4, 80, 128)), [1] * 4)


def test_conversion_serves_any_model_that_declares_an_emotion_latent():
    import torch

    from emovae_utils.models import build
    from emovae_utils.models.sequence_vae import length_mask

    model = build("factorised_vae", channels=16, max_frames=64)
    lengths = np.array([64, 40, 24])
    X = np.where(length_mask(torch.as_tensor(lengths), 64)[:, None].numpy(),
                 np.random.default_rng(0).normal(-40, 3, (3, 80, 64)), 0.0).astype(np.float32)
    means = emotion_means(model, X, ["sad", "angry", "sad"], cond=lengths)
    assert means.shape == (2, model.emotion_dims)
    out = convert_emotion(model, X, means.loc["angry"].to_numpy(), cond=lengths)
    assert out.shape == X.shape and np.all(out[2, :, 24:] == 0)  # the clip's length is kept: padding stays silent
    with pytest.raises(TypeError, match="emotion_dims"):
        emotion_means(build("emotion_vae"), X[:, :, :32], ["a", "b", "a"])
