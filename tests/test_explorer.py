"""The explorer's parts without widgets: its state, its settings (ExplorerConfig), the render worker.

The widgets themselves: tests/test_widgets.py (and tests/test_widget_browser.py in a real browser).
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from emovae_utils import generate as gen
from emovae_utils.explorer import ExplorerConfig, ExplorerState, RenderWorker, latent_explorer
from emovae_utils.explorer.state import ORIGIN, checked_dims, start_points

MU = np.array([[1.0, 2.0, 0.0], [3.0, -6.0, 1.0], [-1.0, 0.5, 2.0]], np.float32)
INDEX = pd.DataFrame({"actor": [1, 1, 2], "emotion": ["happy", "sad", "happy"], "intensity": [1, 2, 1],
                      "statement": [1, 1, 1], "repetition": [1, 1, 2]})


def test_the_state_module_needs_no_widgets():
    code = ("import sys, emovae_utils.explorer.state as s, emovae_utils.explorer.config, "
            "emovae_utils.explorer.worker; assert 'ipywidgets' not in sys.modules and "
            "'anywidget' not in sys.modules, sorted(m for m in sys.modules if 'widget' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------ start points
def test_start_points_origin_emotion_means_and_clips():
    starts, labels, means = start_points(MU, INDEX, 3)
    assert list(starts) == [ORIGIN, "mean:happy", "mean:sad", "clip:0", "clip:1", "clip:2"]
    np.testing.assert_allclose(means["happy"], MU[[0, 2]].mean(0))
    assert labels["mean:happy"] == "mean: happy (n=2)" and labels["clip:1"] == "Actor 01 · sad · strong · rep 1"
    assert starts["clip:1"] is not None and starts["clip:1"].dtype == np.float32
    # no clips: the origin only; clips without an index: numbered
    assert list(start_points(None, None, 3)[0]) == [ORIGIN]
    assert start_points(MU, None, 3)[1]["clip:2"] == "clip 2"
    # clips without an emotion label are left out of the means
    idx = INDEX.assign(emotion=["happy", None, "happy"])
    assert list(start_points(MU, idx, 3)[2]) == ["happy"]


def test_checked_dims():
    assert checked_dims([2, 0], 3) == [0, 2]
    for bad in ([0, 3], [1, 1], []):
        with pytest.raises(ValueError):
            checked_dims(bad, 3)


# ------------------------------------------------------------ the point
def test_select_goes_to_the_start_and_clamps_the_sliders_only():
    s = ExplorerState(3, MU, INDEX)
    assert s.start == ORIGIN and s.get_latent().tolist() == [0, 0, 0] and not s.clamped
    s.select("clip:1")
    assert s.start == "clip:1" and s.get_latent().tolist() == [3.0, -4.0, 1.0] and s.clamped
    assert "clamped" in s.status_note()
    s.set_value(2, 0.25)  # by hand: no longer clamped
    assert not s.clamped and s.get_latent().tolist() == [3.0, -4.0, 0.25]
    s.back_to_start()
    assert s.get_latent().tolist() == [3.0, -4.0, 1.0]
    with pytest.raises(KeyError):
        s.select("clip:9")
    with pytest.raises(ValueError):
        s.set_latent([1.0, 2.0])


def test_dimensions_without_a_slider_keep_the_exact_start_values():
    s = ExplorerState(3, MU, INDEX, dims=[0, 2], value_range=(-1.0, 1.0))
    s.select("clip:1")
    assert s.get_latent().tolist() == [1.0, -6.0, 1.0]  # z1 has no slider: not clamped
    assert s.clamped  # z0 was


def test_emotion_direction_mixes_toward_the_mean():
    s = ExplorerState(3, MU, INDEX)
    assert s.direction == "happy" and s.amount == 0.0
    s.select("clip:1")
    s.set_direction("sad", 0.5)
    np.testing.assert_allclose(s.current_latent(), 0.5 * s.get_latent() + 0.5 * MU[1], rtol=1e-6)
    s.set_direction("happy", 3.0)  # clipped to 1: the mean itself
    assert s.amount == 1.0
    np.testing.assert_allclose(s.current_latent(), MU[[0, 2]].mean(0), rtol=1e-6)
    assert s.status_note().startswith(" · 1.00 toward happy")
    s.back_to_start()  # the amount goes back to 0
    assert s.amount == 0.0 and s.current_latent().tolist() == s.get_latent().tolist()
    with pytest.raises(KeyError):
        s.set_direction("angry", 0.5)


def test_pad_blends_its_corners():
    s = ExplorerState(3, MU, INDEX)
    assert s.corners == ["mean:happy", "mean:sad", "clip:0", "clip:1"]  # emotion means, then clips
    assert s.corner_labels()[1] == "mean: sad (n=1)"
    s.set_pad(1.0, 0.0)  # top right
    np.testing.assert_allclose(s.get_latent(), np.clip(MU[1], -4, 4))
    s.set_pad(0.5, 2.0)  # y clipped: between the bottom corners
    assert s.pad_position == [0.5, 1.0]
    np.testing.assert_allclose(s.pad_latent(0.5, 1.0), (MU[0] + MU[1]) / 2)
    s.set_corner(3, "")  # a missing corner: the others renormalised
    np.testing.assert_allclose(s.pad_latent(0.0, 1.0), MU[0])  # bottom left
    np.testing.assert_allclose(s.pad_latent(1.0, 1.0), np.mean([s.starts[k] for k in s.corners[:3]], axis=0))
    for j in range(4):
        s.set_corner(j, "")
    assert s.pad_latent(0.3, 0.3).tolist() == s.get_latent().tolist()
    with pytest.raises(KeyError):
        s.set_corner(0, "clip:7")


def test_condition_selection():
    conditions = {"1.0 s": np.array(63), "3.0 s": np.array(188)}
    s = ExplorerState(3, conditions=conditions)
    assert s.condition == "1.0 s" and int(s.cond) == 63
    s.set_condition("3.0 s")
    assert int(s.cond) == 188 and s.status_note() == " · condition 3.0 s"
    with pytest.raises(KeyError):
        s.set_condition("9 s")
    assert ExplorerState(3, conditions=conditions, condition="3.0 s").condition == "3.0 s"
    with pytest.raises(ValueError, match="no conditions"):
        ExplorerState(3).set_condition("1.0 s")
    with pytest.raises(ValueError, match="needs conditions"):
        ExplorerState(3, condition="1.0 s")
    assert ExplorerState(3).cond is None


# ------------------------------------------------------------ settings
def test_config_builds_from_keywords_and_checks_them():
    from emovae_utils.dsp import PreprocessConfig

    c = ExplorerConfig.build(audio=False, value_range=(-2, 2), conditions={"a": [0.5, 1.0], "b": 3})
    assert c.audio is False and c.value_range == (-2.0, 2.0) and c.threaded is True
    assert c.conditions["a"].dtype == np.float32 and c.conditions["b"].dtype == np.int64
    assert ExplorerConfig.build(c, dims=[1]).dims == [1] and ExplorerConfig.build(c) is c
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.audio = True
    pre = PreprocessConfig()
    assert ExplorerConfig.build(pre).preprocess is pre  # the former keyword config= (a PreprocessConfig)
    with pytest.raises(ValueError, match="method"):
        ExplorerConfig(method="vocoder")
    with pytest.raises(ValueError, match="empty"):
        ExplorerConfig(conditions={})
    with pytest.raises(KeyError):
        ExplorerConfig(conditions={"a": 1}, condition="b")
    with pytest.raises(ValueError, match="needs conditions"):
        ExplorerConfig(condition="a")
    with pytest.raises(ValueError, match="numeric"):
        ExplorerConfig(conditions={"a": "x"})
    with pytest.raises(TypeError):
        ExplorerConfig.build(colour="red")


def test_config_and_keywords_give_the_same_explorer():
    from emovae_utils.models import EmotionVAE

    torch.manual_seed(0)
    model = EmotionVAE(latent_dim=4).eval()
    X = np.random.default_rng(0).normal(-40, 12, size=(3, 80, 128)).astype(np.float32)
    a = latent_explorer(model, X, audio=False, threaded=False, dims=[0, 2]).explorer
    b = latent_explorer(model, X, config=ExplorerConfig(audio=False, threaded=False, dims=[0, 2])).explorer
    assert a.settings == b.settings and a.dims == b.dims == [0, 2]
    a.select("clip:1")
    b.select("clip:1")
    assert a.png_bytes == b.png_bytes
    # the explorer's posteriors are generate's (one batched encode)
    np.testing.assert_array_equal(a.mu, gen.encode_posterior(model, X)[0])
    mu, sigma = gen.encode_posterior(model, X, batch_size=2)
    mu2, logvar = gen.encode_batched(model, X, batch_size=2)
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_allclose(sigma, np.exp(0.5 * logvar), rtol=1e-6)


# ------------------------------------------------------------ the render worker
def test_worker_coalesces_a_burst_and_renders_the_latest_state():
    state = {"value": 0}
    seen = []

    def render():
        time.sleep(0.02)
        seen.append(state["value"])

    worker = RenderWorker(render)
    for v in range(1, 21):
        state["value"] = v
        worker.request()
    assert worker.wait_idle(10.0)
    assert seen[-1] == 20 and len(seen) < 20
    n = len(seen)
    worker.close()
    time.sleep(0.05)
    worker.request()  # closed: nothing more is rendered
    time.sleep(0.05)
    assert len(seen) == n


def test_unusable_clips_are_left_out_of_the_means_and_refused():
    from emovae_utils.explorer.state import unusable_clips

    mu = MU.copy()
    mu[2, 1] = np.nan
    assert unusable_clips(mu).tolist() == [2] and unusable_clips(MU, None).tolist() == []
    s = ExplorerState(3, mu, INDEX, unusable=[2])
    np.testing.assert_array_equal(s.emotion_means["happy"], MU[0])  # clip 2 (happy) left out
    assert s.start_labels["clip:2"].endswith("(NaN: unusable)") and "clip:2" not in s.corners
    assert "clip 2 (Actor 02 · happy · normal · rep 2) has NaN" in s.start_problem("clip:2")
    for refused in (lambda: s.select("clip:2"), lambda: s.set_corner(0, "clip:2")):
        with pytest.raises(ValueError, match="has NaN"):
            refused()
