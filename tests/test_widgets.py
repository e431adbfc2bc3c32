"""The latent explorer's logic, without a browser (emovae_utils.widgets).

The browser side (JupyterLab, Chromium) is tests/test_widget_browser.py.
"""
from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch import nn

from emovae_utils import generate as gen
from emovae_utils import widgets

try:  # the model family (emovae_utils.models); the single-module model before it
    from emovae_utils.models import EmotionVAE
except ImportError:  # pragma: no cover
    from emovae_utils.model import EmotionVAE

N_MELS, N_FRAMES, HOP = 80, 128, 256
EXPECTED_SAMPLES = HOP * (N_FRAMES - 1)  # 32512
EMOS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


@pytest.fixture(autouse=True)
def _no_figures_from_earlier_tests():
    """Figures left open by other test files must not count against the explorer."""
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return EmotionVAE(latent_dim=8).eval()


@pytest.fixture(scope="module")
def model4() -> nn.Module:
    torch.manual_seed(1)
    return EmotionVAE(latent_dim=4).eval()


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    X = rng.normal(-40, 12, size=(6, N_MELS, N_FRAMES)).astype(np.float32)
    index = pd.DataFrame({
        "actor": [1, 1, 1, 2, 2, 2],
        "emotion": ["happy", "happy", "sad", "sad", "neutral", "happy"],
        "intensity": [2, 1, 1, 2, 1, 2],
        "statement": [1] * 6,
        "repetition": [2, 1, 1, 1, 2, 1],
    })
    return X, index


class KnownKL(nn.Module):
    """Encoder with a known KL per dimension: ``mu_i = s_i * c`` (c: the clip's level), ``logvar = 0``.

    ``KL_i = s_i² · mean(c²) / 2``: dimension 1 (``s = 0``) is collapsed (KL exactly 0).
    ``encode``/``decode`` take no ``cond`` argument and there is no ``latent_dim``
    attribute, to check that the explorer needs only the interface.
    """

    def __init__(self, scales=(0.5, 0.0, 2.0, 1.0)) -> None:
        super().__init__()
        self.register_buffer("s", torch.tensor(scales, dtype=torch.float32))
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(len(scales), N_MELS, N_FRAMES, generator=g))

    def encode(self, x):
        c = (x.mean(dim=(1, 2)) + 40.0) / 10.0
        mu = c[:, None] * self.s[None]
        return mu, torch.zeros_like(mu)

    def decode(self, z):
        return -40.0 + 10.0 * torch.tanh(torch.einsum("nd,dmt->nmt", z, self.w))


def _level_clips(levels):
    return np.stack([np.full((N_MELS, N_FRAMES), -40.0 + 10.0 * c, np.float32) for c in levels])


# ------------------------------------------------------------ basics
def test_sliders_follow_latent_dim_and_update_continuously(model4):
    ex = widgets.LatentExplorer(model4, audio=False)
    assert len(ex.sliders) == 4
    for s in ex.sliders:
        assert (s.min, s.max, s.value, s.continuous_update) == (-4.0, 4.0, 0.0, True)
        assert s.step <= 0.01
    assert ex.png_bytes.startswith(b"\x89PNG") and ex.image.value == ex.png_bytes
    w = widgets.latent_explorer(model4, audio=False)
    import ipywidgets

    assert isinstance(w, ipywidgets.Widget) and len(w.explorer.sliders) == 4
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == [], "the explorer must not leave pyplot figures open"


def test_slider_change_renders_image_and_audio(model):
    ex = widgets.LatentExplorer(model, threaded=False)
    png0, wav0, n0 = ex.png_bytes, ex.wav_bytes, ex.n_updates
    y, sr = sf.read(io.BytesIO(wav0))
    assert sr == 16000 and len(y) == EXPECTED_SAMPLES
    assert ex.audio.value == wav0 and ex.audio.autoplay is False and ex.audio.format == "wav"
    ex.sliders[3].value = 2.5
    assert ex.n_updates == n0 + 1
    assert ex.z[3] == pytest.approx(2.5)
    assert ex.png_bytes != png0 and ex.image.value == ex.png_bytes
    assert ex.wav_bytes != wav0 and ex.audio.value == ex.wav_bytes
    np.testing.assert_allclose(ex.spectrogram, gen.traverse(model, [2.5], dims=[3])[0, 0], rtol=1e-5, atol=1e-5)
    # set_latent renders exactly once; the image depends on the latent only
    ex.set_latent(np.zeros(8))
    assert ex.n_updates == n0 + 2 and ex.png_bytes == png0
    ex.set_latent(np.full(8, 9.0), update=False)  # clamped to the slider range
    assert [s.value for s in ex.sliders] == [4.0] * 8 and ex.n_updates == n0 + 2
    with pytest.raises(ValueError):
        ex.set_latent(np.zeros(3))


def test_dropdown_sets_clip_mu_and_emotion_mean_and_stays_on_its_choice(model, clips):
    X, index = clips
    ex = widgets.LatentExplorer(model, X=X, index=index, audio=False, threaded=False)
    mu = gen.encode_mu(model, X)
    labels = [label for label, _ in ex.dropdown.options]
    assert labels[0].startswith("origin")
    assert "Actor 01 · happy · strong · rep 2" in labels
    assert any(label.startswith("mean: happy") for label in labels)
    key = dict(ex.dropdown.options)["Actor 02 · neutral · normal · rep 2"]
    n0 = ex.n_updates
    ex.dropdown.value = key  # as a user would
    np.testing.assert_allclose(ex.get_latent(), np.clip(mu[4], -4, 4), atol=1e-6)
    assert ex.n_updates == n0 + 1
    np.testing.assert_allclose(ex.spectrogram, gen.decode_latents(model, ex.get_latent()), rtol=1e-5, atol=1e-5)
    happy = [k for label, k in ex.dropdown.options if label.startswith("mean: happy")][0]
    ex.dropdown.value = happy
    np.testing.assert_allclose(ex.get_latent(), mu[[0, 1, 5]].mean(0), atol=1e-5)
    # a slider move keeps the drop-down on its choice (it used to go blank) ...
    ex.sliders[0].value = 1.0
    assert ex.dropdown.value == happy
    assert ex.get_latent()[0] == pytest.approx(1.0)
    # ... and "back to start" returns to it
    ex.back_button.click()
    np.testing.assert_allclose(ex.get_latent(), mu[[0, 1, 5]].mean(0), atol=1e-5)
    ex.reset()
    np.testing.assert_array_equal(ex.get_latent(), np.zeros(8))
    assert ex.dropdown.value == "origin"
    np.testing.assert_allclose(ex.spectrogram, gen.decode_latents(model, np.zeros(8)), rtol=1e-5, atol=1e-5)


def test_mu_only_and_shape_checks(model):
    mu = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)
    ex = widgets.LatentExplorer(model, mu=mu, audio=False)
    assert [label for label, _ in ex.dropdown.options] == ["origin (all 0)", "clip 0", "clip 1", "clip 2"]
    ex.select("clip:1")
    np.testing.assert_allclose(ex.get_latent(), mu[1], atol=1e-6)
    # no log-variances: ordered by the spread of mu, no KL shown, nothing inactive
    assert ex.usage["kl"].isna().all() and ex.active.all()
    assert ex.order == list(np.argsort(-mu.std(0), kind="stable"))
    with pytest.raises(ValueError):
        widgets.LatentExplorer(model, mu=np.zeros((3, 5)), audio=False)
    with pytest.raises(ValueError):
        widgets.LatentExplorer(model, mu=mu, index=pd.DataFrame({"actor": [1, 2]}), audio=False)
    with pytest.raises(ValueError):
        widgets.LatentExplorer(model, audio=False, method="vocoder")


# ------------------------------------------------------------ continuous updates
def test_burst_renders_the_last_value_and_drops_stale_ones(model):
    ex = widgets.LatentExplorer(model)  # threaded, with audio: a render takes tens of ms
    assert ex.wait_idle()
    n0 = ex.n_updates
    values = np.linspace(-2, 2, 40)
    t0 = time.perf_counter()
    for v in values:  # what a fast drag sends; each observer only records the request
        ex.sliders[2].value = float(v)
    t_burst = time.perf_counter() - t0
    assert ex.wait_idle(60)
    renders = ex.n_updates - n0
    assert 1 <= renders <= 4, f"{renders} renders for a burst of 40 changes"
    assert ex.z[2] == pytest.approx(values[-1]) and ex.get_latent()[2] == pytest.approx(values[-1])
    np.testing.assert_allclose(ex.spectrogram, gen.decode_latents(model, ex.z), rtol=1e-5, atol=1e-5)
    assert ex.image.value == ex.png_bytes and ex.audio.value == ex.wav_bytes
    # the observers did not render: 40 changes took far less than 40 renders
    assert t_burst < 0.5 * 40 * np.median(ex.render_ms)
    ex.close()


def test_without_the_worker_every_change_renders(model4):
    ex = widgets.LatentExplorer(model4, audio=False, threaded=False)
    n0 = ex.n_updates
    for v in np.linspace(0, 1, 10):
        ex.sliders[0].value = float(v)
    assert ex.n_updates - n0 == 9  # the first value (0.0) is no change


# ------------------------------------------------------------ meaningful controls
def test_kl_ordering_and_the_inactive_dimension():
    X = _level_clips([1.0, -1.0, 2.0, -2.0, 0.5, 1.5])
    stub = KnownKL()
    ex = widgets.LatentExplorer(stub, X=X, audio=False)
    c2 = np.mean(np.array([1.0, -1.0, 2.0, -2.0, 0.5, 1.5]) ** 2)
    expected_kl = 0.5 * np.array([0.5, 0.0, 2.0, 1.0]) ** 2 * c2
    np.testing.assert_allclose(ex.usage["kl"], expected_kl, rtol=1e-5, atol=1e-7)
    assert ex.order == [2, 3, 0, 1]
    assert ex.active.tolist() == [True, False, True, True]
    # the collapsed dimension is greyed and folded away; the others are labelled with their KL
    assert "emovae-inactive-slider" in ex.sliders[1]._dom_classes
    assert ex.inactive_box is not None and ex.inactive_box.selected_index is None
    folded = ex.inactive_box.children[0].children
    assert [row.children[0] for row in folded] == [ex.sliders[1]]
    assert "1 inactive dimension" in ex.inactive_box.get_title(0)
    labels = {row.children[0].description: row.children[1].value for row in folded}
    assert labels == {"z1": "0.00 nats · inactive"}
    # the active sliders appear in KL order, each with its value beside it
    box = ex.widget.children[1].children[0]  # left column
    rows = [c for c in box.children if hasattr(c, "children") and c.children
            and getattr(c.children[0], "description", "").startswith("z")]
    assert [r.children[0].description for r in rows] == ["z2", "z3", "z0"]
    assert rows[0].children[1].value == f"{expected_kl[2]:.2f} nats"
    # a smaller threshold makes it active; show_inactive unfolds
    ex2 = widgets.LatentExplorer(stub, X=X, audio=False, kl_threshold=-1.0)
    assert ex2.active.all() and ex2.inactive_box is None
    ex3 = widgets.LatentExplorer(stub, X=X, audio=False, show_inactive=True)
    assert ex3.inactive_box.selected_index == 0


def test_dimension_usage_table():
    mu = np.array([[0.0, 1.0], [0.0, -1.0]])
    u = widgets.dimension_usage(mu, np.zeros_like(mu))
    assert u["kl"].tolist() == [0.0, 0.5] and u["active"].tolist() == [False, True]
    assert u["rank"].tolist() == [1, 0]


def test_emotion_direction_reaches_the_mean_at_amount_1(model, clips):
    X, index = clips
    ex = widgets.LatentExplorer(model, X=X, index=index, audio=False, threaded=False)
    means = gen.emotion_mean_latents(gen.encode_mu(model, X), index["emotion"])
    cols = [f"z{i}" for i in range(8)]
    assert list(ex.direction.options) == list(means.index)
    ex.select("clip:2")
    base = ex.get_latent()
    sad = means.loc["sad", cols].to_numpy(np.float32)
    ex.set_direction("sad", 1.0)
    np.testing.assert_array_equal(ex.z, sad)
    np.testing.assert_allclose(ex.spectrogram, gen.decode_latents(model, sad), rtol=1e-5, atol=1e-5)
    ex.set_direction("sad", 0.5)
    np.testing.assert_allclose(ex.z, 0.5 * (base + sad), atol=1e-6)
    np.testing.assert_array_equal(ex.get_latent(), base)  # the sliders keep the point moved from
    ex.set_direction("sad", 0.0)
    np.testing.assert_array_equal(ex.z, base)
    # the amount slider, as a user moves it, renders
    n0 = ex.n_updates
    ex.direction.value = "happy"
    ex.amount.value = 1.0
    assert ex.n_updates == n0 + 2
    np.testing.assert_allclose(ex.z, means.loc["happy", cols].to_numpy(np.float32), atol=1e-6)
    assert "toward happy" in ex.status.value
    # choosing a start point sets the amount back to 0
    ex.select("clip:0")
    assert ex.amount.value == 0.0
    with pytest.raises(KeyError):
        ex.set_direction("angry", 1.0)


def test_pad_blends_four_corners(model, clips):
    X, index = clips
    ex = widgets.LatentExplorer(model, X=X, index=index, audio=False, threaded=False)
    keys = [d.value for d in ex.pad_corners]
    assert keys[:3] == ["mean:neutral", "mean:happy", "mean:sad"] and keys[3] == "clip:0"
    assert ex.pad.labels == [ex.start_labels[k] for k in keys]
    corners = [ex.starts[k] for k in keys]
    for (x, y), c in zip([(0, 0), (1, 0), (0, 1), (1, 1)], corners):
        ex.set_pad(x, y)
        np.testing.assert_allclose(ex.get_latent(), np.clip(c, -4, 4), atol=1e-6)
    ex.set_pad(0.5, 0.5)
    np.testing.assert_allclose(ex.z, np.mean(corners, axis=0), atol=1e-5)
    # the pad as the browser moves it (one trait change)
    n0 = ex.n_updates
    ex.pad.position = [0.25, 0.0]
    assert ex.n_updates == n0 + 1
    np.testing.assert_allclose(ex.z, 0.75 * corners[0] + 0.25 * corners[1], atol=1e-5)
    # a corner left empty: the others are renormalised
    ex.pad_corners[3].value = ""
    assert ex.pad.labels[3] == ""
    ex.set_pad(1.0, 1.0)  # at the empty corner: the three others, equally
    np.testing.assert_allclose(ex.z, np.mean(corners[:3], axis=0), atol=1e-5)
    np.testing.assert_allclose(widgets.blend_weights(0.5, 0.0, [True, True, False, False]), [0.5, 0.5, 0, 0])


def test_ab_plays_the_start_then_the_current_point(model, clips):
    X, index = clips
    ex = widgets.LatentExplorer(model, X=X, index=index, threaded=False)
    ex.select("clip:1")
    ex.sliders[0].value = 2.0
    data = ex.ab_bytes(gap_s=0.25)
    y, sr = sf.read(io.BytesIO(data), dtype="float32")
    a = ex.start_audio("clip:1")
    assert sr == 16000 and len(y) == len(a) + 4000 + EXPECTED_SAMPLES
    np.testing.assert_allclose(y[:len(a)], a, atol=2 / 32767)
    assert not np.any(y[len(a):len(a) + 4000])
    # A is the clip's own input spectrogram rendered, not its decoding
    from emovae_utils import inversion

    own = widgets.prepare_audio(inversion.log_mel_to_audio(X[1], method="fast"))
    np.testing.assert_allclose(a, own, atol=1e-6)
    ex.ab_button.click()
    assert bytes(ex.ab_audio.value) == ex.ab_bytes() and ex.ab_audio.autoplay is True


def test_autoplay_is_optional_and_off_by_default(model4):
    ex = widgets.LatentExplorer(model4, audio=False)
    assert ex.autoplay.value is False and ex.audio.autoplay is False
    ex.autoplay.value = True
    assert ex.audio.autoplay is True
    assert widgets.LatentExplorer(model4, audio=False, autoplay=True).audio.autoplay is True


# ------------------------------------------------------------ image and audio
def test_spectrogram_image_axes_and_orientation():
    r = widgets.SpectrogramRenderer(clim=(-80.0, 0.0))
    S = np.full((N_MELS, N_FRAMES), -80.0, np.float32)
    S[-10:, :64] = 0.0  # high bands, first half: bright top-left
    import matplotlib.pyplot as plt

    img = plt.imread(io.BytesIO(r.png(S)))[..., :3]
    assert img.shape[:2][::-1] == r.size
    area = img[r.r0:r.r1, r.c0:r.c1]
    h, w = area.shape[:2]
    bright, dark = r.lut[-1] / 255, r.lut[0] / 255
    np.testing.assert_allclose(area[2, 2], bright, atol=1 / 255)
    np.testing.assert_allclose(area[h - 3, 2], dark, atol=1 / 255)
    np.testing.assert_allclose(area[2, w - 3], dark, atol=1 / 255)
    assert plt.get_fignums() == []
    # out-of-range and NaN values do not break the lookup
    S[0, 0], S[0, 1] = np.nan, 1e9
    assert r.png(S).startswith(b"\x89PNG")
    with pytest.raises(ValueError):
        r.png(S[:, :10])


def test_png_encoder_round_trips():
    import matplotlib.pyplot as plt

    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    back = (plt.imread(io.BytesIO(widgets.encode_png(rgb)))[..., :3] * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(back, rgb)


def test_prepare_audio_levels_and_fades():
    sr = 16000
    t = np.arange(sr) / sr
    y = (0.01 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    out = widgets.prepare_audio(y, sr, loudness_dbfs=-20.0, fade_ms=10.0)
    mid = out[sr // 4: 3 * sr // 4]
    assert 20 * np.log10(np.sqrt(np.mean(mid.astype(np.float64) ** 2))) == pytest.approx(-20.0, abs=0.3)
    assert abs(out[0]) < 1e-3 and abs(out[-1]) < 1e-3
    assert np.max(np.abs(out[:160])) < np.max(np.abs(mid))
    loud = widgets.prepare_audio(np.r_[np.zeros(1000), 1.0, np.zeros(1000)].astype(np.float32), sr)
    assert np.max(np.abs(loud)) <= 0.97 + 1e-6  # the peak guard wins over the loudness target
    assert not np.any(widgets.prepare_audio(np.zeros(100, np.float32), sr))


def test_wav_bytes_is_16_bit_pcm():
    y = np.linspace(-1, 1, 101).astype(np.float32)
    back, sr = sf.read(io.BytesIO(widgets.wav_bytes(y, 16000, normalise=False)), dtype="float32")
    assert sr == 16000 and sf.info(io.BytesIO(widgets.wav_bytes(y))).subtype == "PCM_16"
    np.testing.assert_allclose(back, y, atol=2 / 32767)


def test_static_view_says_it_needs_a_live_kernel(model4):
    w = widgets.latent_explorer(model4, audio=False)
    bundle = w._repr_mimebundle_()
    assert "live" in bundle["text/plain"] and "kernel" in bundle["text/plain"]
    assert "HBox(" not in bundle["text/plain"] and "VBox(" not in repr(w)
    assert "data:image/png;base64," in bundle["text/html"]
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == w.model_id


def test_ab_without_live_audio(model4):
    ex = widgets.LatentExplorer(model4, audio=False, threaded=False)
    y, sr = sf.read(io.BytesIO(ex.ab_bytes(gap_s=0.1)))
    assert sr == 16000 and len(y) == 2 * EXPECTED_SAMPLES + 1600 and np.any(y)


def test_first_status_says_a_live_kernel_is_needed(model4):
    ex = widgets.LatentExplorer(model4, audio=False, threaded=False)
    assert "live kernel" in ex.status.value  # what a saved (static) copy shows
    ex.sliders[0].value = 1.0
    assert "live kernel" not in ex.status.value


# ------------------------------------------------------------ every model variant
def _variant_clips(n=8):
    rng = np.random.default_rng(3)
    X = rng.normal(-40, 12, size=(n, N_MELS, N_FRAMES)).astype(np.float32)
    index = pd.DataFrame({"actor": [1, 1, 2, 2, 3, 3, 4, 4][:n], "emotion": (EMOS * 2)[:n]})
    X += 6.0 * index["actor"].to_numpy(np.float32)[:, None, None]  # each voice its own level
    return X, index


def _build(name, **kw):
    from emovae_utils.models import build

    torch.manual_seed(0)
    return build(name, latent_dim=6, **kw).eval()


class FakeSequenceVAE(nn.Module):
    """The interface of a variable-length model: ``cond`` = lengths (N,) in frames, required by ``decode``.

    ``decode(z, lengths)`` gives (N, n_mels, max(lengths)), frames past a row's
    length at -80 dB; ``encode(x, lengths)`` averages the frames within each length.
    """

    latent_dim = 3

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(3, N_MELS, generator=g))

    def encode(self, x, cond=None):
        T = x.shape[-1]
        lengths = torch.full((x.shape[0],), T) if cond is None else torch.as_tensor(cond)
        assert lengths.dtype == torch.int64 and lengths.shape == (x.shape[0],)
        mask = (torch.arange(T)[None] < lengths[:, None]).float()  # (N, T)
        level = (x.mean(1) * mask).sum(1) / mask.sum(1)  # (N,)
        mu = ((level + 40.0) / 10.0)[:, None] * torch.tensor([1.0, -0.5, 0.25])
        return mu, torch.zeros_like(mu)

    def decode(self, z, cond=None):
        if cond is None:
            raise ValueError("FakeSequenceVAE.decode needs cond, the lengths (N,) in frames")
        lengths = torch.as_tensor(cond)
        assert lengths.dtype == torch.int64 and lengths.shape == (z.shape[0],), (lengths.dtype, lengths.shape)
        T = int(lengths.max())
        t = torch.arange(T, dtype=torch.float32)
        S = -40.0 + 10.0 * torch.tanh(z @ self.w)[:, :, None] * torch.cos(t / 7.0)[None, None]
        return torch.where(t[None, None] < lengths[:, None, None], S, torch.full_like(S, -80.0))


def test_speaker_vae_with_conditions_renders_and_the_picker_changes_the_image():
    from emovae_utils.models.conditional_vae import speaker_codes

    model = _build("speaker_vae")
    with torch.no_grad():  # untrained, the condition's pathway is zero: give it a weight
        model.cond_dec.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    X, index = _variant_clips()
    codes = speaker_codes(X, index["actor"])
    conditions = {"Actor 01": codes[0], "Actor 02": torch.as_tensor(codes[2])}
    ex = widgets.LatentExplorer(model, X=X, index=index, conditions=conditions, cond=codes,
                                audio=False, threaded=False)
    assert ex.condition is not None and list(ex.condition.options) == ["Actor 01", "Actor 02"]
    assert ex.condition.value == "Actor 01" and "emovae-condition" in ex.condition._dom_classes
    assert ex.spectrogram.shape == (N_MELS, N_FRAMES) and ex.png_bytes.startswith(b"\x89PNG")
    with torch.no_grad():
        expected = model.decode(torch.zeros(1, 6), torch.as_tensor(codes[:1]))[0].numpy()
    np.testing.assert_allclose(ex.spectrogram, expected, rtol=1e-5, atol=1e-4)
    png0, n0 = ex.png_bytes, ex.n_updates
    ex.condition.value = "Actor 02"  # as a user would
    assert ex.n_updates == n0 + 1 and ex.png_bytes != png0 and ex.image.value == ex.png_bytes
    with torch.no_grad():
        expected = model.decode(torch.zeros(1, 6), torch.as_tensor(codes[2:3]))[0].numpy()
    np.testing.assert_allclose(ex.spectrogram, expected, rtol=1e-5, atol=1e-4)
    assert "condition Actor 02" in ex.status.value
    ex.set_condition("Actor 01")
    assert ex.png_bytes == png0
    # the condition goes into the A/B's decoding too (start = origin), and the sliders still work
    y, sr = sf.read(io.BytesIO(ex.ab_bytes(gap_s=0.1)))
    assert sr == 16000 and len(y) == 2 * EXPECTED_SAMPLES + 1600
    ex.sliders[0].value = 1.5
    assert ex.z[0] == pytest.approx(1.5)
    with pytest.raises(KeyError):
        ex.set_condition("Actor 99")


def test_a_model_that_needs_cond_without_conditions_fails_clearly():
    model = _build("speaker_vae")
    X, index = _variant_clips()
    with pytest.raises(ValueError, match=r"conditions="):
        widgets.LatentExplorer(model, X=X, index=index, audio=False, threaded=False)
    with pytest.raises(ValueError, match=r"conditions="):
        widgets.LatentExplorer(FakeSequenceVAE(), audio=False, threaded=False)
    with pytest.raises(ValueError, match="empty"):
        widgets.LatentExplorer(model, conditions={}, audio=False)
    with pytest.raises(ValueError, match="one condition per clip"):
        widgets.LatentExplorer(model, X=X, conditions={"a": np.zeros(80)}, cond=np.zeros((3, 80)), audio=False)


def test_supervised_vae_emotion_sub_latent_sliders_first_and_labelled(clips):
    X, index = clips
    model = _build("supervised_vae", emotion_dims=2)
    ex = widgets.LatentExplorer(model, X=X, index=index, audio=False, threaded=False)
    assert ex.emotion_dims == [0, 1] and ex.slider_order[:2] == [0, 1] and len(ex.sliders) == 6
    assert [ex.slider_of[d].description for d in (0, 1, 2)] == ["z0 (emotion)", "z1 (emotion)", "z2"]
    box = ex.widget.children[1].children[0]  # left column
    rows = [c for c in box.children if hasattr(c, "children") and c.children
            and getattr(c.children[0], "description", "").startswith("z")]
    assert [r.children[0].description for r in rows[:2]] == ["z0 (emotion)", "z1 (emotion)"]
    import ipywidgets

    notes = [c.value for c in box.children if isinstance(c, ipywidgets.HTML)]
    assert any("emotion sub-latent" in v for v in notes)  # the note above the sliders
    # only some dimensions: those get sliders, the others keep the start point's values
    ex2 = widgets.LatentExplorer(model, X=X, index=index, dims=[0, 1], audio=False, threaded=False)
    assert ex2.dims == [0, 1] and len(ex2.sliders) == 2
    assert all("emotion" in s.description for s in ex2.sliders)
    ex2.select("clip:2")
    mu = ex2.mu[2]
    np.testing.assert_allclose(ex2.get_latent(), mu, atol=1e-6)  # hidden dims: exact, not clamped
    ex2.sliders[1].value = 3.0
    expected = mu.copy()
    expected[1] = 3.0
    np.testing.assert_allclose(ex2.z, expected, atol=1e-6)
    np.testing.assert_allclose(ex2.spectrogram, gen.decode_latents(model, expected), rtol=1e-5, atol=1e-4)
    ex2.back_button.click()
    np.testing.assert_allclose(ex2.z, mu, atol=1e-6)
    # a plain model with dims: no emotion labels, usage order kept
    ex3 = widgets.LatentExplorer(_build("beta_vae"), X=X, dims=[4, 1], audio=False)
    assert ex3.dims == [1, 4] and [s.description for s in ex3.sliders] == ["z1", "z4"]
    assert ex3.slider_order == [d for d in ex3.order if d in (1, 4)]
    with pytest.raises(ValueError):
        widgets.LatentExplorer(model, dims=[0, 9], audio=False)


def test_a_condition_can_change_the_output_width():
    X = _level_clips([1.0, -1.0, 0.5, 2.0])
    lengths = np.array([128, 100, 64, 128])
    conditions = {"1.0 s": 63, "2.05 s": 128, "3.0 s": 188}
    ex = widgets.LatentExplorer(FakeSequenceVAE(), X=X, cond=lengths, conditions=conditions, threaded=False)
    assert ex.spectrogram.shape == (N_MELS, 63) and ex.renderer.n_frames == 63
    y, sr = sf.read(io.BytesIO(ex.wav_bytes))
    assert len(y) == HOP * (63 - 1)
    # the clips were encoded with their own lengths
    np.testing.assert_allclose(ex.mu[:, 0], [1.0, -1.0, 0.5, 2.0], atol=1e-5)
    png63 = ex.png_bytes
    ex.condition.value = "3.0 s"
    assert ex.spectrogram.shape == (N_MELS, 188) and ex.renderer.n_frames == 188
    assert ex.renderer.size == ex._renderer_for((N_MELS, 63)).size  # same image size, another time axis
    assert ex.renderer.clim == ex.clim
    y, sr = sf.read(io.BytesIO(ex.wav_bytes))
    assert sr == 16000 and len(y) == HOP * (188 - 1)
    ex.sliders[0].value = 1.0  # warm start at the new width
    assert len(sf.read(io.BytesIO(ex.wav_bytes))[0]) == HOP * (188 - 1)
    ex.set_condition("1.0 s")
    ex.set_latent(np.zeros(3))
    assert ex.png_bytes == png63
    import matplotlib.pyplot as plt

    img = plt.imread(io.BytesIO(ex.png_bytes))
    assert img.shape[1::-1] == ex.renderer.size
    # the renderer draws any width, with a readable time axis
    for T in (1, 20, 700):
        r = widgets.SpectrogramRenderer(n_frames=T, clim=(-80.0, 0.0))
        assert r.png(np.zeros((N_MELS, T), np.float32)).startswith(b"\x89PNG")
    assert widgets.spectrogram_png(np.zeros((N_MELS, 188), np.float32)).startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["emotion_vae", "beta_vae", "sigma_vae", "tc_vae", "speaker_vae", "supervised_vae"])
def test_explorer_for_every_variant(name):
    X, index = _variant_clips()
    model = _build(name)
    w = widgets.explorer_for(model, X, index, audio=False, threaded=False)
    ex = w.explorer
    assert ex.n_updates == 1 and ex.png_bytes.startswith(b"\x89PNG")
    assert ex.spectrogram.shape == (N_MELS, N_FRAMES) and len(ex.sliders) == 6
    assert any(label.startswith("mean: ") for label, _ in ex.dropdown.options)
    if name == "speaker_vae":
        assert list(ex.conditions) == ["Actor 01", "Actor 02", "Actor 03", "Actor 04"]
        from emovae_utils.models.conditional_vae import speaker_codes

        np.testing.assert_allclose(ex.cond, speaker_codes(X, index["actor"]))
        np.testing.assert_allclose(ex.conditions["Actor 03"], ex.cond[4])
        ex.set_condition("Actor 04")
        assert ex.n_updates == 2
    else:
        assert ex.condition is None and ex.conditions == {}
    if name == "supervised_vae":
        assert ex.sliders[0].description == "z0 (emotion)"
    else:
        assert ex.emotion_dims == [] and all("emotion" not in s.description for s in ex.sliders)


def test_explorer_for_a_sequence_model():
    from emovae_utils.models.base import BaseVAE
    from emovae_utils.models.sequence_vae import SequenceVAE

    class FakeSequenceModel(FakeSequenceVAE, BaseVAE):
        """The fake as a model of the package, with the sequence VAE's explorer defaults."""

        explorer_lengths = SequenceVAE.explorer_lengths
        explorer_defaults = SequenceVAE.explorer_defaults

        def loss_function(self, x, out):
            raise NotImplementedError

    X = _level_clips([1.0, -1.0, 0.5, 2.0])
    index = pd.DataFrame({"actor": [1, 1, 2, 2], "emotion": ["happy", "sad", "happy", "sad"],
                          "n_frames": [128, 90, 64, 300]})
    ex = widgets.explorer_for(FakeSequenceModel(), X, index, audio=False, threaded=False).explorer
    assert ex.conditions.keys() == widgets.SEQUENCE_LENGTHS.keys()
    np.testing.assert_array_equal(ex.cond, [128, 90, 64, 128])  # at most the width of X
    assert ex.spectrogram.shape == (N_MELS, 63)
    ex.set_condition("2.05 s")
    assert ex.spectrogram.shape == (N_MELS, 128)
    # without an n_frames column: every clip at the full width
    ex = widgets.explorer_for(FakeSequenceModel(), X, index.drop(columns="n_frames"), audio=False).explorer
    np.testing.assert_array_equal(ex.cond, [128] * 4)
    # a module outside the package's models (no explorer_defaults): no conditions
    ex = widgets.explorer_for(KnownKL(), _level_clips([1.0, 2.0]), audio=False).explorer
    assert ex.conditions == {} and ex.n_updates == 1


# ------------------------------------------------------------ bad input (issue "Nothing surprises a newcomer", 11)
BAD_X = [  # (case, X made from the six clips, what the error says)
    ("one clip, 2-D", lambda X: X[0], r"\(N, 80, 128\).*got float32 of shape \(80, 128\)"),
    ("4-D", lambda X: X[:, None], r"\(N, 80, 128\).*got float32 of shape \(6, 1, 80, 128\)"),
    ("text", lambda X: X.astype(str), r"\(N, 80, 128\).*got <U"),
    ("40 bands", lambda X: X[:, :40], r"\(N, 80, 128\), the shape of EmotionVAE's decodings, got \(6, 40, 128\)"),
    ("64 frames", lambda X: X[:, :, :64], r"\(N, 80, 128\), the shape of EmotionVAE's decodings, got \(6, 80, 64\)"),
]


@pytest.mark.parametrize("case, make, message", BAD_X, ids=[c[0] for c in BAD_X])
def test_x_of_the_wrong_shape_is_named_before_the_model_is_blamed(model, clips, case, make, message):
    with pytest.raises(ValueError, match=message):
        widgets.LatentExplorer(model, X=make(clips[0]), index=clips[1], audio=False, threaded=False)


NAN_CLIPS = [  # (case, clips spoilt, value, the clips the warning names)
    ("one NaN clip", [2], np.nan, ["clip 2 (Actor 01 · sad · normal · rep 1)"]),
    ("one inf clip", [4], np.inf, ["clip 4 (Actor 02 · neutral · normal · rep 2)"]),
    ("two NaN clips", [0, 5], np.nan, ["clip 0 (Actor 01 · happy · strong · rep 2)",
                                       "clip 5 (Actor 02 · happy · strong · rep 1)"]),
]


@pytest.mark.parametrize("case, bad, value, names", NAN_CLIPS, ids=[c[0] for c in NAN_CLIPS])
def test_a_nan_clip_is_named_left_out_of_the_statistics_and_refused_as_start(model, clips, case, bad, value, names):
    import warnings

    X, index = clips
    X = X.copy()
    X[bad, 10, 20] = value
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ex = widgets.LatentExplorer(model, X=X, index=index, audio=False, threaded=False)
    assert [w.category for w in caught] == [RuntimeWarning], [str(w.message) for w in caught]  # one, ours
    assert all(n in str(caught[0].message) for n in names) and "left out of the statistics" in str(caught[0].message)
    good = [i for i in range(len(X)) if i not in bad]
    mu, logvar = gen.encode_batched(model, X[good], 256)
    expected = widgets.dimension_usage(mu, logvar, 0.01)
    np.testing.assert_allclose(ex.usage["kl"], expected["kl"], rtol=1e-5)
    assert ex.active.tolist() == expected["active"].tolist() and ex.active.any()
    happy = [i for i in good if index.emotion[i] == "happy"]
    np.testing.assert_allclose(ex.emotion_means["happy"], ex.mu[happy].mean(0), rtol=1e-5)
    assert np.isfinite(ex.clim).all() and np.isfinite(ex.spectrogram).all()
    with pytest.raises(ValueError, match=rf"clip {bad[0]} \(.*\) has NaN"):
        ex.select(f"clip:{bad[0]}")
    assert all(f"clip:{b}" not in [k for _, k in ex.pad_corners[0].options] for b in bad)
    ex.dropdown.value = f"clip:{bad[0]}"  # as a user picks it: said in the status, the start stays
    assert "has NaN" in ex.status.value and ex.dropdown.value == "origin" and ex.state.start == "origin"
    ex.select(f"clip:{good[0]}")
    np.testing.assert_allclose(ex.get_latent(), np.clip(ex.mu[good[0]], -4, 4), atol=1e-6)


def test_the_sliders_show_the_point_along_the_emotion_direction(model, clips):
    X, index = clips
    ex = widgets.LatentExplorer(model, X=X, index=index, audio=False, threaded=False)
    ex.select("clip:2")
    ex.direction.value = "happy"
    ex.amount.value = 0.5  # as a user drags it
    shown = np.array([s.value for s in ex.sliders])
    np.testing.assert_allclose(shown, np.clip(ex.z, -4, 4), atol=1e-6)
    # a slider moved from there moves the rendered point: the amount goes back to 0
    ex.sliders[0].value = 1.0
    assert ex.amount.value == 0.0
    expected = shown.astype(np.float32)
    expected[0] = 1.0
    np.testing.assert_allclose(ex.z, expected, atol=1e-5)


# ------------------------------------------------------------ a saved copy (issue "Nothing surprises a newcomer", 15)
@pytest.mark.parametrize("audio, players", [(True, 1), (False, 0)])
def test_a_saved_copy_shows_a_snapshot_and_no_empty_players(model4, audio, players):
    ex = widgets.LatentExplorer(model4, audio=audio, threaded=False)
    for static in (ex.snapshot.value, ex.widget._repr_mimebundle_()["text/html"]):
        assert static.count("data:image/png;base64,") == 1 and static.count("<audio") == players
    assert "emovae-snapshot" in ex.snapshot._dom_classes and ex.snapshot in ex.widget.children
    shown = _descendants(ex.widget)
    assert (ex.audio in shown) == audio  # no dead player without audio
    assert ex.ab_row.layout.display == "none"  # no empty A/B player ...
    ex.play_ab()
    assert ex.ab_row.layout.display is None and ex.ab_audio.value  # ... until A/B is pressed
    ex.sliders[0].value = 1.0  # the snapshot follows once the renders pause
    old = ex.snapshot.value
    deadline = time.monotonic() + 10
    while ex.snapshot.value == old and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ex.snapshot.value != old and ex.snapshot.value.count("<audio") == players
    ex.close()


def _descendants(w):
    out = [w]
    for c in getattr(w, "children", ()):
        out += _descendants(c)
    return out


def test_the_browser_rounding_a_shown_value_is_not_a_move(model, clips):
    X, index = clips
    ex = widgets.LatentExplorer(model, X=X, index=index, audio=False, threaded=False)
    ex.select("clip:1")
    ex.set_direction("sad", 0.5)
    n0, z0 = ex.n_updates, ex.z.copy()
    for s in ex.sliders:  # what the browser's slider sends back: the value shown, rounded to its step
        s.value = round(s.value, 2)
    assert ex.n_updates == n0 and ex.amount.value == 0.5 and ex.state.amount == 0.5
    np.testing.assert_array_equal(ex.z, z0)
