"""EmotionCNN: learning a separable set, labels, fit history, save/load, the accelerator guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import emovae_utils.models.classifier  # noqa: F401  (registers "emotion_cnn")
from emovae_utils import accel
from emovae_utils.accel import AcceleratorUnavailable
from emovae_utils.models import build, load_model, registered_name, save_model
from emovae_utils.models.classifier import EmotionCNN
from emovae_utils.train import fit


def separable(n_per_class: int = 8, n_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """-40 dB +- 3 dB noise; class k raises mel bands 10k .. 10k+9 by 12 dB in the middle frames."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = rng.normal(-40, 3, (len(y), 80, 128)).astype(np.float32)
    for i, k in enumerate(y):
        X[i, 10 * k: 10 * k + 10, 30:100] += 12
    return X, y


def small(**kw) -> EmotionCNN:
    torch.manual_seed(0)
    return build("emotion_cnn", **{"channels": (16, 16), "hidden": 16, "n_classes": 4, **kw})


def test_registered_and_config_round_trips():
    model = build("emotion_cnn", channels=(8, 8), kernel=3)
    assert registered_name(model) == "emotion_cnn"
    assert model.config["channels"] == (8, 8) and model.config["kernel"] == 3
    assert EmotionCNN(**model.config).config == model.config


def test_default_size_is_small():
    n = sum(p.numel() for p in EmotionCNN().parameters())
    assert 50_000 <= n <= 300_000


def test_learns_a_separable_set():
    X, y = separable()
    model = small()
    history = fit(model, X, labels=y, epochs=40, batch_size=16, lr=3e-3, progress=False)
    assert history["accuracy"].iloc[-5:].mean() > 0.9
    Xt, yt = separable(seed=1)
    assert (model.predict(Xt) == yt).mean() >= 0.9
    assert model.training  # predict restores the mode


def test_fit_history_columns_for_a_classifier(tmp_path):
    X, y = separable(n_per_class=2)
    history = fit(small(), X, labels=y, epochs=2, progress=False, out_dir=tmp_path, sample_every=1)
    assert list(history.columns) == ["epoch", "total", "accuracy"]
    assert not (tmp_path / "training_samples").exists()  # sample_every is ignored for a classifier
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["sample_every"] is None and run["model"]["name"] == "emotion_cnn"


def test_fit_refuses_gemm_for_a_classifier_and_auto_uses_autograd():
    X, y = separable(n_per_class=1)
    with pytest.raises(AcceleratorUnavailable, match="EmotionVAE"):
        fit(small(), X, labels=y, epochs=1, accel="gemm", progress=False)
    assert fit(small(), X, labels=y, epochs=1, accel="auto", progress=False).shape == (1, 3)
    with pytest.raises(ValueError, match="labels"):  # no labels: a zero loss, refused
        fit(small(), X, epochs=1, accel="auto", progress=False)


def test_accelerator_selection_never_picks_a_classifier():
    model = EmotionCNN()
    assert accel.select(model, "auto", "cpu")[0] is None
    with pytest.raises(AcceleratorUnavailable):
        accel.select(model, "gemm", "cpu")


def test_labels_one_or_two_columns_and_unknown_ignored():
    model = small().eval()
    x = torch.as_tensor(separable(n_per_class=1)[0])
    one = model.loss_function(x, model(x), torch.tensor([0, 1, -1, -1]))
    two = model.loss_function(x, model(x), torch.tensor([[0, 5], [1, -1], [-1, 3], [-1, -1]]))
    torch.testing.assert_close(one["loss"], two["loss"])
    first_two = model.loss_function(x[:2], model(x[:2]), torch.tensor([0, 1]))
    torch.testing.assert_close(one["loss"], first_two["loss"])
    none = model.loss_function(x, model(x))
    assert none["loss"].item() == 0.0 and none["accuracy"].item() == 0.0


@pytest.mark.parametrize("labels, match", [(torch.tensor([0.0, 1.0]), "integer"), (torch.tensor([0, 4]), "0..3"),
                                           (torch.tensor([0, 1, 2]), r"\(2,\)")])
def test_bad_labels_say_what_to_give(labels, match):
    model = small()
    x = torch.zeros(2, 80, 128)
    with pytest.raises(ValueError, match=match):
        model.loss_function(x, model(x), labels)


def test_bad_input_shape_says_what_to_give():
    with pytest.raises(ValueError, match="load_features"):
        EmotionCNN()(torch.zeros(2, 64, 128))


def test_outputs_and_embed_shapes():
    model = EmotionCNN(hidden=32)
    X = np.zeros((3, 80, 128), np.float32)
    assert model.predict_logits(X).shape == (3, 8)
    assert model.embed(X).shape == (3, 32)
    assert model.predict(X).shape == (3,)
    assert model.embed(X[:0]).shape == (0, 32)


def test_eval_is_deterministic_and_training_augments():
    model = small()
    x = torch.as_tensor(separable(n_per_class=1)[0])
    model.eval()
    torch.testing.assert_close(model(x)["logits"], model(x)["logits"])
    model.train()
    torch.manual_seed(1)
    a = model(x)["embedding"]
    torch.manual_seed(2)
    assert not torch.equal(a, model(x)["embedding"])


def test_save_load_round_trip(tmp_path):
    X, y = separable(n_per_class=2)
    model = small(kernel=3)
    fit(model, X, labels=y, epochs=2, progress=False)
    path = save_model(tmp_path / "cnn.pt", model, epochs=2)
    loaded, meta = load_model(path)
    assert type(loaded) is EmotionCNN and meta == {"epochs": 2} and not loaded.training
    np.testing.assert_array_equal(loaded.predict_logits(X), model.predict_logits(X))


def test_fit_says_when_loss_function_lacks_loss():
    class NoLoss(EmotionCNN):
        def loss_function(self, x, out, labels=None):
            return {"accuracy": out["logits"].sum()}

    X, y = separable(n_per_class=1)
    with pytest.raises(KeyError, match="'loss'"):
        fit(NoLoss(channels=(4,), hidden=4, n_classes=4), X, labels=y, epochs=1, progress=False)
