"""The model family: interface, the authors' EmotionVAE on stock layers, BetaVAE, registry, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emovae_utils.models import (
    BaseVAE, BetaVAE, EmotionVAE, ModelFileError, available, build, load_model, register, save_model,
)


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
    layers = list(m.decoder)  # a ReLU directly before every transposed convolution, none after the last
    for i, l in enumerate(layers):
        if isinstance(l, torch.nn.ConvTranspose1d):
            assert isinstance(layers[i - 1], torch.nn.ReLU)
    assert isinstance(layers[-1], torch.nn.ConvTranspose1d)
    assert (m.fc_enc.in_features, m.fc_enc.out_features) == (256, 16)
    assert (m.fc_dec.in_features, m.fc_dec.out_features) == (8, 256)


def test_weights_in_pytorchs_own_layout():
    for p in EmotionVAE().parameters():
        assert p.is_contiguous()


def test_time_lengths_through_the_network():
    m = EmotionVAE()
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
        assert abs(lin.weight.std().item() / np.sqrt(2 / fan_in) - 1) < 0.1  # kaiming_normal_, ReLU gain
    for conv in m.encoder:
        if isinstance(conv, torch.nn.Conv1d):  # PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            fan_in = conv.in_channels * conv.kernel_size[0]
            assert conv.weight.abs().max().item() <= 1 / np.sqrt(fan_in) + 1e-7


def test_forward_returns_the_interface_dict_and_shapes():
    m = EmotionVAE()
    x = _x(5)
    out = m(x)
    assert set(out) >= {"recon", "mu", "logvar", "z"}
    assert out["recon"].shape == (5, 80, 128) and out["mu"].shape == out["z"].shape == (5, 8)
    with torch.no_grad():
        mu, logvar = m.encode(x)
    torch.testing.assert_close(mu, out["mu"])
    assert m.sample(3).shape == (3, 80, 128)
    assert EmotionVAE(latent_dim=4).decode(torch.zeros(2, 4)).shape == (2, 80, 128)
    assert isinstance(m, BaseVAE) and m.latent_dim == 8


def test_default_forward_has_autograd_convolution_nodes():
    out = EmotionVAE()(_x(2))
    names, stack, seen = set(), [out["recon"].grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack += [f for f, _ in node.next_functions]
    assert any("Convolution" in n for n in names), names


def test_bad_input_shape_says_what_to_do():
    with pytest.raises(ValueError, match="expected input .*load_features"):
        EmotionVAE()(torch.zeros(2, 128, 80))


def test_reparameterize():
    mu = torch.tensor([[1.0, -2.0, 0.5]])
    logvar = torch.tensor([[0.0, 2.0, -4.0]])
    torch.manual_seed(7)
    eps = torch.randn(1, 3)
    torch.manual_seed(7)
    torch.testing.assert_close(EmotionVAE.reparameterize(mu, logvar), mu + eps * torch.exp(logvar / 2))


def test_study_loss_against_hand_computation():
    rng = np.random.default_rng(0)
    x, r = rng.normal(size=(2, 80, 128)), rng.normal(size=(2, 80, 128))
    mu, lv = rng.normal(size=(2, 8)), rng.normal(size=(2, 8))
    mse = np.mean((r - x) ** 2)
    kl = np.mean([-0.5 * sum(1 + lv[i, j] - mu[i, j] ** 2 - np.exp(lv[i, j]) for j in range(8)) for i in range(2)])
    out = {"recon": torch.tensor(r), "mu": torch.tensor(mu), "logvar": torch.tensor(lv)}
    got = EmotionVAE().loss_function(torch.tensor(x), out)
    assert got["reconstruction"].item() == pytest.approx(mse, rel=1e-12)
    assert got["kl"].item() == pytest.approx(kl, rel=1e-12)
    assert got["loss"].item() == pytest.approx(mse + kl, rel=1e-12)
    z = torch.zeros(2, 8)  # the KL of the prior itself is zero
    assert EmotionVAE().loss_function(out["recon"], {**out, "mu": z, "logvar": z})["loss"].item() == 0.0


def test_beta_vae_overrides_only_the_loss():
    methods = {k for k, v in vars(BetaVAE).items() if callable(v) and not k.startswith("_")}
    assert methods == {"loss_function"}
    torch.manual_seed(0)
    a = EmotionVAE()
    torch.manual_seed(0)
    b = BetaVAE(beta=4.0)
    x = _x(2)
    torch.manual_seed(1)
    oa = a(x)
    torch.manual_seed(1)
    ob = b(x)
    torch.testing.assert_close(oa["recon"], ob["recon"])
    la, lb = a.loss_function(x, oa), b.loss_function(x, ob)
    torch.testing.assert_close(lb["loss"], la["reconstruction"] + 4.0 * la["kl"])


def test_beta_vae_capacity_grows_with_training_steps():
    m = BetaVAE(capacity_max=10.0, capacity_steps=4, gamma=2.0)
    x = _x(2)
    caps = []
    for _ in range(6):
        out = m(x)
        losses = m.loss_function(x, out)
        caps.append(losses["capacity"].item())
        torch.testing.assert_close(losses["loss"], losses["reconstruction"] + 2.0 * (losses["kl"] - caps[-1]).abs())
    assert caps == [2.5, 5.0, 7.5, 10.0, 10.0, 10.0]
    m.eval()
    m.loss_function(x, m(x))
    assert m.steps.item() == 6  # evaluation does not advance the schedule


def test_registry_build_and_errors():
    assert {"emotion_vae", "beta_vae"} <= set(available())
    assert type(build("beta_vae", beta=2.0)) is BetaVAE
    with pytest.raises(KeyError, match="available"):
        build("no_such_vae")
    with pytest.raises(ValueError, match="already registered"):
        register("emotion_vae")(BetaVAE)


@pytest.mark.parametrize("name, config", [("emotion_vae", {"latent_dim": 4}),
                                          ("beta_vae", {"beta": 4.0, "capacity_max": 5.0})])
def test_save_and_load_round_trip(tmp_path, name, config):
    torch.manual_seed(3)
    m = build(name, **config)
    m.loss_function(_x(1), m(_x(1)))  # advances BetaVAE's step buffer when capacity is on
    path = save_model(tmp_path / "sub" / "m.pt", m, epochs=12, note="test")
    assert path.exists() and not [p for p in path.parent.iterdir() if "tmp" in p.name]
    loaded, meta = load_model(path)
    assert type(loaded) is type(m) and loaded.config == m.config
    assert meta == {"epochs": 12, "note": "test"}
    for (k, a), (k2, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_first_format_files_load_and_broken_ones_say_how_to_retrain(tmp_path):
    torch.manual_seed(0)
    m = EmotionVAE()
    # the study's first files: no name, conv weights stored in another memory order
    state = {k: (v.permute(2, 1, 0).contiguous().permute(2, 1, 0) if v.dim() == 3 else v)
             for k, v in m.state_dict().items()}
    torch.save({"config": {"latent_dim": 8, "n_mels": 80}, "state_dict": state, "metadata": {"seed": 0}},
               tmp_path / "old.pt")
    loaded, meta = load_model(tmp_path / "old.pt")
    assert type(loaded) is EmotionVAE and meta == {"seed": 0}
    assert all(p.is_contiguous() for p in loaded.parameters())
    for k, v in m.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    torch.save({"config": {"latent_dim": 4, "n_mels": 80}, "state_dict": state}, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="retrain"):
        load_model(tmp_path / "bad.pt")
    torch.save({"format": 2, "name": "gone_vae", "config": {}, "state_dict": {}}, tmp_path / "gone.pt")
    with pytest.raises(ModelFileError, match="not registered"):
        load_model(tmp_path / "gone.pt")


def test_unregistered_subclass_cannot_be_saved(tmp_path):
    class Mine(EmotionVAE):
        pass

    with pytest.raises(ValueError, match="register"):
        save_model(tmp_path / "m.pt", Mine())


# --- what each model declares (the common base, models.Model) ------------------------------------------------

#: name -> (condition, labels, generative, config, representation width)
DECLARED = {
    "emotion_vae": (None, None, True, {"latent_dim": 6}, 6),
    "beta_vae": (None, None, True, {"latent_dim": 6}, 6),
    "sigma_vae": (None, None, True, {"latent_dim": 6}, 6),
    "tc_vae": (None, None, True, {"latent_dim": 6}, 6),
    "speaker_vae": ("speaker_code", None, True, {"latent_dim": 6, "condition_encoder": True}, 6),
    "supervised_vae": (None, "labels", True, {"latent_dim": 6, "emotion_dims": 2}, 2),
    "sequence_vae": ("lengths", None, True, {"latent_dim": 6}, 6),
    "factorised_vae": ("lengths", "labels", True, {"content_dim": 2, "speaker_dim": 3, "emotion_dim": 4}, 4),
    "emotion_cnn": (None, "emotion", False, {"hidden": 5, "channels": (4,)}, 5),
}


def test_every_registered_model_declares_what_it_needs():
    from emovae_utils.conditions import CONDITIONS
    from emovae_utils.models import Model, model_class

    assert sorted(DECLARED) == available()
    for name, (condition, labels, generative, _, _) in DECLARED.items():
        cls = model_class(name)
        assert issubclass(cls, Model)
        assert (cls.condition, cls.labels, cls.generative) == (condition, labels, generative), name
        assert condition is None or condition in CONDITIONS
        assert labels is None or labels in CONDITIONS
        assert issubclass(cls, BaseVAE) == generative


def _inputs(name):
    """Three clips and the condition the model declares (built as the trials build it)."""
    import pandas as pd

    from emovae_utils.conditions import make_condition

    x = _x(3)
    index = pd.DataFrame({"actor": [1, 1, 2], "n_frames": [128, 100, 60]})
    condition = DECLARED[name][0]
    return x, None if condition is None else torch.as_tensor(make_condition(condition, x.numpy(), index))


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_representation_has_its_declared_width(name):
    *_, config, width = DECLARED[name]
    torch.manual_seed(0)
    model = build(name, **config).eval()
    x, cond = _inputs(name)
    assert model.representation_dim == width
    with torch.no_grad():
        r = model.representation(x, cond)
    assert r.shape == (3, width)
    R = model.represent(x.numpy(), None if cond is None else cond.numpy(), batch_size=2)
    assert R.shape == (3, width) and R.dtype == np.float32
    np.testing.assert_allclose(R, r.numpy(), rtol=1e-5, atol=1e-5)
    if model.condition is None:  # only a conditioned model brings a condition picker
        assert model.explorer_defaults() == {}
    if model.generative:  # a VAE probes its posterior mean (or the part of it it declares)
        np.testing.assert_array_equal(r.numpy(), model.encode(x, cond)[0][:, :width].detach().numpy())


@pytest.mark.parametrize("name", ["supervised_vae", "emotion_cnn"])
def test_labels_never_reach_forward(name):
    from emovae_utils.train import fit

    *_, config, _ = DECLARED[name]
    model = build(name, **config)
    seen = {"forward": [], "loss": []}
    forward, loss_function = model.forward, model.loss_function

    def spy_forward(x, cond=None):
        seen["forward"].append(cond)
        return forward(x, cond)

    def spy_loss(x, out, labels=None):
        seen["loss"].append(labels)
        return loss_function(x, out, labels)

    model.forward, model.loss_function = spy_forward, spy_loss
    labels = np.array([[0, 1], [3, -1], [-1, 2], [7, 0]]) if name == "supervised_vae" else np.array([0, 3, -1, 7])
    fit(model, _x(4).numpy(), epochs=1, batch_size=2, labels=labels, progress=False)
    assert seen["forward"] == [None, None]
    assert sorted(torch.cat(seen["loss"]).tolist()) == sorted(labels.tolist())
    with pytest.raises(ValueError, match="declares no condition"):
        fit(build(name, **config), _x(4).numpy(), epochs=1, cond=labels, progress=False)


def test_labels_for_a_model_without_labels_are_refused():
    from emovae_utils.train import fit

    with pytest.raises(ValueError, match="declares no training labels"):
        fit(build("emotion_vae"), _x(2).numpy(), epochs=1, labels=np.array([0, 1]), progress=False)


def test_losses_have_one_home():
    from emovae_utils.models import base, losses

    assert base.gaussian_kl is losses.gaussian_kl  # the re-export tests and callers may use
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    terms = losses.elbo_terms(torch.tensor(2.0), mu, logvar, beta=3.0)
    torch.testing.assert_close(terms["loss"], 2.0 + 3.0 * losses.gaussian_kl(mu, logvar).sum(1).mean())


# --- model files are read without running code (item 7) ----------------------------------------------------

@pytest.mark.parametrize("name", sorted(DECLARED))
def test_save_model_writes_only_what_weights_only_reads(tmp_path, name):
    model = build(name, **DECLARED[name][3])
    path = save_model(tmp_path / "m.pt", model, seed=np.int64(3), mean=np.float32(0.5), where=tmp_path,
                      lengths=np.arange(3), spec={"fit": {"epochs": 2}, "tags": ["a", ("b", None)]})
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    payload = torch.load(path, weights_only=True)  # no allow-list needed
    assert payload["name"] == name and type(payload["torch_version"]) is str
    loaded, meta = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert meta["seed"] == 3 and type(meta["seed"]) is int and meta["where"] == str(tmp_path)
    assert torch.equal(meta["lengths"], torch.arange(3)) and meta["spec"]["tags"] == ["a", ("b", None)]


def test_files_saved_by_the_earlier_code_still_load(tmp_path):
    """Earlier save_model stored torch's TorchVersion and numpy scalars of the metadata as they were."""
    torch.manual_seed(0)
    m = build("beta_vae", latent_dim=4)
    torch.save({"format": 2, "name": "beta_vae", "config": m.config, "state_dict": m.state_dict(),
                "metadata": {"actor": np.int64(3), "epochs": 10}, "torch_version": torch.__version__},
               tmp_path / "old.pt")
    loaded, meta = load_model(tmp_path / "old.pt")
    assert meta == {"actor": 3, "epochs": 10}
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values()))


def test_a_file_that_would_run_code_is_refused_and_the_code_does_not_run(tmp_path):
    ran = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (ran.mkdir, ())

    torch.save({"name": "emotion_vae", "config": {}, "state_dict": {}, "metadata": {"x": Hostile()}},
               tmp_path / "m.pt")
    with pytest.raises(ModelFileError, match="without running"):
        load_model(tmp_path / "m.pt")
    assert not ran.exists()


def test_a_config_that_no_longer_builds_is_a_model_file_error(tmp_path):
    m = build("emotion_vae", latent_dim=4)
    torch.save({"format": 2, "name": "emotion_vae", "config": {"latent_dim": 0}, "state_dict": m.state_dict()},
               tmp_path / "m.pt")
    with pytest.raises(ModelFileError, match=r"latent_dim=0.*retrain"):
        load_model(tmp_path / "m.pt")


# --- constructor arguments are checked in one place (item 8) -------------------------------------------------

def _defaults(name):
    import inspect

    from emovae_utils.models import model_class

    return {p.name: p.default for p in inspect.signature(model_class(name).__init__).parameters.values()
            if p.name != "self"}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_every_numeric_argument_is_checked_and_named(name):
    """Ints refuse 2.5 and '8', floats refuse nan, bools refuse 'yes': each error names the argument and value."""
    checked = 0
    for arg, default in _defaults(name).items():
        if isinstance(default, bool):
            bad = ["yes"]
        elif isinstance(default, int):
            bad = [2.5, "8", True]
        elif isinstance(default, float):
            bad = [float("nan"), float("inf"), "1.0"]
        else:
            continue
        for value in bad:
            with pytest.raises(ValueError, match=f"{arg}={value!r}".replace("(", r"\(")) as err:
                build(name, **{arg: value})
            assert "must be" in str(err.value)
            checked += 1
    assert checked >= 3


def test_healthy_arguments_are_kept_as_given():
    m = build("beta_vae", latent_dim=np.int64(6), beta=np.float64(0.5), capacity_steps=0)
    assert m.config["latent_dim"] == 6 and type(m.config["latent_dim"]) is int
    assert m.beta == 0.5 and m.capacity_steps == 0 and build("beta_vae", beta=0).beta == 0.0
    assert build("emotion_cnn", channels=[8, 8], dropout=0).channels == (8, 8)
    assert build("tc_vae", dataset_size=None).dataset_size is None
    assert build("sigma_vae", min_log_sigma=-10).min_log_sigma == -10.0
    for name, (*_, config, _) in DECLARED.items():
        assert build(name, **config).config == build(name, **build(name, **config).config).config


def test_weights_below_zero_are_refused():
    for name, arg in [("beta_vae", "beta"), ("beta_vae", "gamma"), ("tc_vae", "alpha"), ("sigma_vae", "beta"),
                      ("supervised_vae", "adversary_weight"), ("sequence_vae", "beta")]:
        with pytest.raises(ValueError, match=rf"{arg}=-1.*>= 0"):
            build(name, **{arg: -1})


# --- build's docstring lists the registry (item 9) ------------------------------------------------------------

def test_build_docstring_lists_every_registered_model():
    from emovae_utils.models import describe_models, model_class

    doc = build.__doc__
    assert describe_models().splitlines()[0] in doc
    for name in available():
        cls = model_class(name)
        [line] = [ln for ln in doc.splitlines() if f"``{name}``" in ln]
        assert f"condition={cls.condition!r}" in line and f"labels={cls.labels!r}" in line
        for arg, default in _defaults(name).items():
            assert f"{arg}={default!r}" in line, (name, arg)
